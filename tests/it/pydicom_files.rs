//! Every MR file shipped by `pip install pydicom pydicom-data` is read or refused with a clear
//! reason. Where pydicom decodes the pixels of a single-frame greyscale image, ours must match
//! them exactly (sum of non-negative values) and have the same size.

use cinestream::source::parse::{Unreadable, parse_dicom};

#[derive(serde::Deserialize, Debug)]
struct Row {
    path: String,
    rows: u32,
    cols: u32,
    frames: u32,
    transfer_syntax: String,
    pixel_sum: Option<u64>,
}

fn inventory() -> Option<Vec<Row>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/pydicom_inventory.py");
    let out = std::process::Command::new("python3").arg(script).output();
    match out {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        ),
        other if std::env::var("CINESTREAM_REQUIRE_TOOLS").is_ok() => {
            panic!("pydicom inventory failed (pip install pydicom pydicom-data numpy): {other:?}")
        }
        _ => None,
    }
}

#[test]
fn pydicom_mr_files_are_read_or_refused_clearly() {
    let Some(rows) = inventory() else {
        eprintln!("SKIPPED pydicom_mr_files_are_read_or_refused_clearly: python3 with pydicom not available");
        return;
    };
    assert!(rows.len() >= 15, "expected the MR files of pydicom + pydicom-data, found {}", rows.len());
    let (mut read, mut refused) = (0, 0);
    for r in &rows {
        let bytes = std::fs::read(&r.path).unwrap();
        let name = r.path.rsplit('/').next().unwrap();
        match parse_dicom(&bytes) {
            Ok(img) => {
                read += 1;
                assert_eq!((img.header.rows, img.header.cols), (r.rows, r.cols), "{name}: size");
                assert_eq!(img.pixels.len(), (r.rows * r.cols) as usize, "{name}");
                if let Some(sum) = r.pixel_sum {
                    let ours: u64 = img.pixels.iter().map(|v| *v as u64).sum();
                    assert_eq!(ours, sum, "{name}: pixel values differ from pydicom's");
                }
                eprintln!("read     {name} ({}×{}, {})", r.rows, r.cols, r.transfer_syntax);
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                eprintln!("refused  {name}: {msg}");
                assert!(msg.len() > 20, "{name}: reason too terse: {msg}");
                // A refusal must be for a reason the file really has, not a decoding gap on
                // something we claim to support.
                let pydicom_decoded_single_frame = r.pixel_sum.is_some() && r.frames == 1;
                let claimed = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70"]
                    .contains(&r.transfer_syntax.as_str());
                if pydicom_decoded_single_frame && claimed {
                    assert!(
                        matches!(e, Unreadable::Corrupt(_) | Unreadable::MissingAttribute(_)),
                        "{name}: pydicom decodes it and we claim {}, yet refused: {msg}",
                        r.transfer_syntax
                    );
                }
            }
        }
    }
    eprintln!("{read} read, {refused} refused of {}", rows.len());
    assert!(read >= 8, "most MR files are plain and must be read ({read} read)");
}
