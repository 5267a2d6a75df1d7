//! Every MR file shipped by `pip install pydicom pydicom-data` is read or refused with a clear
//! reason. Where pydicom decodes a greyscale image, ours must match it exactly, frame by frame
//! (sum of non-negative values), and have the same size: the enhanced multi-frame MR files in
//! every transfer syntax they ship (explicit and big endian, RLE, JPEG-LS, JPEG 2000) included.

use cinestream::source::parse::{Unreadable, decode_frames, parse_dicom};

#[derive(serde::Deserialize, Debug)]
struct Row {
    path: String,
    rows: u32,
    cols: u32,
    frames: u32,
    transfer_syntax: String,
    pixel_sums: Option<Vec<u64>>,
}

fn inventory() -> Option<Vec<Row>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/pydicom_inventory.py");
    let out = std::process::Command::new("python3").arg(script).output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()),
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
            Ok(images) => {
                read += 1;
                assert_eq!(images.len(), r.frames as usize, "{name}: one image per frame");
                for (i, img) in images.iter().enumerate() {
                    assert_eq!((img.header.rows, img.header.cols), (r.rows, r.cols), "{name}: size");
                    assert_eq!(img.pixels.len(), (r.rows * r.cols) as usize, "{name}");
                    if let Some(sums) = &r.pixel_sums {
                        let ours: u64 = img.pixels.iter().map(|v| *v as u64).sum();
                        assert_eq!(ours, sums[i], "{name}: frame {} pixel values differ from pydicom's", i + 1);
                    }
                }
                eprintln!("read     {name} ({}×{}, {} frame(s), {})", r.rows, r.cols, r.frames, r.transfer_syntax);
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                eprintln!("refused  {name}: {msg}");
                assert!(msg.len() > 20, "{name}: reason too terse: {msg}");
                // A refusal must be for a reason the file really has, not a decoding gap on
                // something we claim to support.
                let claimed = [
                    "1.2.840.10008.1.2",
                    "1.2.840.10008.1.2.1",
                    "1.2.840.10008.1.2.2",
                    "1.2.840.10008.1.2.5",
                    "1.2.840.10008.1.2.4.50",
                    "1.2.840.10008.1.2.4.70",
                    "1.2.840.10008.1.2.4.80",
                    "1.2.840.10008.1.2.4.81",
                    "1.2.840.10008.1.2.4.90",
                    "1.2.840.10008.1.2.4.91",
                ]
                .contains(&r.transfer_syntax.as_str());
                if r.pixel_sums.is_some() && claimed {
                    assert!(
                        matches!(e, Unreadable::Corrupt(_) | Unreadable::MissingAttribute(_) | Unreadable::MultiFrame(_)),
                        "{name}: pydicom decodes it and we claim {}, yet refused: {msg}",
                        r.transfer_syntax
                    );
                }
            }
        }
    }
    // The enhanced MR files (emri_small*, anonymised down to no geometry at all: no functional
    // groups, no position) cannot be placed, and say so; their frames decode to pydicom's
    // pixels in every transfer syntax pydicom decodes them in.
    let enhanced: Vec<&Row> = rows.iter().filter(|r| r.path.contains("emri_small") && r.pixel_sums.is_some()).collect();
    let syntaxes: std::collections::BTreeSet<&str> = enhanced.iter().map(|r| r.transfer_syntax.as_str()).collect();
    assert!(syntaxes.len() >= 5, "enhanced MR in explicit/big endian, RLE, JPEG-LS and JPEG 2000: {syntaxes:?}");
    for r in &enhanced {
        let bytes = std::fs::read(&r.path).unwrap();
        match parse_dicom(&bytes) {
            Err(Unreadable::MultiFrame(m)) => assert!(m.contains("frame 1 of 10") && m.contains("ImagePositionPatient"), "{m}"),
            other => panic!("{}: no geometry, yet {:?}", r.path, other.map(|i| i.len())),
        }
        let frames = decode_frames(&bytes).unwrap_or_else(|e| panic!("{}: {e}", r.path));
        let sums: Vec<u64> = frames.iter().map(|f| f.iter().map(|v| *v as u64).sum()).collect();
        assert_eq!(&sums, r.pixel_sums.as_ref().unwrap(), "{} ({}): frames differ from pydicom's", r.path, r.transfer_syntax);
    }
    eprintln!("{read} read, {refused} refused of {}", rows.len());
    assert!(read >= 8, "most MR files are plain and must be read ({read} read)");
}

/// Real files outside the Kaggle layout: grouped by StudyInstanceUID under pseudonymous ids,
/// unreadable ones quarantined, counts reconciled, and no UID in any output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_files_outside_the_kaggle_layout_are_grouped_by_uid() {
    let Some(rows) = inventory() else {
        eprintln!("SKIPPED real_files_outside_the_kaggle_layout_are_grouped_by_uid: python3 with pydicom not available");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    let mut uids = std::collections::BTreeSet::new();
    let mut refused = 0;
    for r in &rows {
        let name = r.path.rsplit('/').next().unwrap();
        let bytes = std::fs::read(&r.path).unwrap();
        match parse_dicom(&bytes) {
            Ok(images) => uids.extend(images.into_iter().flat_map(|img| img.header.study_uid.into_iter().chain(img.header.series_uid))),
            Err(_) => refused += 1,
        }
        std::fs::write(flat.join(name), bytes).unwrap();
    }
    let data = dir.path().join("data");
    let mut cfg = cinestream::ingest::IngestConfig::new(flat.to_str().unwrap(), data.to_str().unwrap());
    cfg.pseudonym_key = Some(cinestream::source::pseudonym::PseudonymKey::new(b"pydicom-test-key-0123456789", "test").unwrap());
    let report = cinestream::ingest::run(&cfg, std::sync::Arc::new(cinestream::progress::Quiet)).await.unwrap();
    assert_eq!(report.image_files, rows.len());
    assert_eq!(report.files_quarantined, refused, "every refused file is quarantined, none dropped");
    assert_eq!(report.image_files + report.extra_frames, report.frames_from_files + report.files_quarantined + report.files_excluded);
    assert!(report.studies_written >= 2, "{report:?}");
    let b = crate::common::sql(data.to_str().unwrap(), "SELECT DISTINCT study_id FROM frames").await;
    for id in crate::common::strs(&b, "study_id") {
        let id = id.unwrap();
        assert!(id.len() == 17 && id.starts_with('s') && id[1..].chars().all(|c| c.is_ascii_hexdigit()), "pseudonymous id: {id}");
    }
    let matcher = aho_corasick::AhoCorasick::new(uids.iter()).unwrap();
    for (name, bytes) in crate::common::output_texts(&data) {
        assert!(matcher.find(&bytes).is_none(), "a UID reached {name}");
    }
    assert!(!uids.is_empty());
}
