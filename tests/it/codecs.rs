//! Compressed transfer syntaxes made by software nobody here wrote: the phantom recompressed by
//! dcmtk (`dcmcjpls`, JPEG-LS lossless) and GDCM (`gdcmconv --j2k`, JPEG 2000 lossless) ingests
//! to the same rows as the uncompressed original, pixels bit for bit; a lossy JPEG 2000 copy
//! (`gdcmconv --j2k --lossy`) ingests, and each frame's difference from the original is
//! reported; a file in a transfer syntax no codec knows is quarantined with a clear reason.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::AsArray;

use crate::common::*;

/// Whether dcmtk and GDCM's command-line tools are installed (required under
/// CINESTREAM_REQUIRE_TOOLS).
fn tools(test: &str) -> bool {
    let ok = ["dcmcjpls", "gdcmconv"].iter().all(|t| std::process::Command::new(t).arg("--version").output().is_ok());
    if !ok {
        assert!(
            std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(),
            "{test}: dcmcjpls or gdcmconv missing (apt install dcmtk libgdcm-tools)"
        );
        eprintln!("SKIPPED {test}: apt install dcmtk libgdcm-tools");
    }
    ok
}

/// Copies `raw` to `out`, every DICOM file through `tool args… in out`; side files as they are.
fn recompress(raw: &Path, out: &Path, tool: &str, args: &[&str]) {
    for f in files_under(raw) {
        let dest = out.join(f.strip_prefix(raw).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if f.extension().is_some_and(|e| e == "dcm") {
            let o = std::process::Command::new(tool).args(args).arg(&f).arg(&dest).output().unwrap();
            assert!(o.status.success(), "{tool} {}: {}", f.display(), String::from_utf8_lossy(&o.stderr));
        } else {
            std::fs::copy(&f, &dest).unwrap();
        }
    }
}

/// Each frame's pixels, by (study, slice, frame).
async fn pixels(data: &str) -> BTreeMap<(String, i64, i64), Vec<u16>> {
    let b = sql(data, "SELECT study_id, slice_index, frame_index, pixels FROM frames").await;
    let mut out = BTreeMap::new();
    for batch in &b {
        let (ids, z, t) = (batch.column(0).as_string::<i32>(), batch.column(1), batch.column(2));
        let z = arrow::compute::cast(z, &arrow::datatypes::DataType::Int64).unwrap();
        let t = arrow::compute::cast(t, &arrow::datatypes::DataType::Int64).unwrap();
        let px = batch.column(3).as_binary::<i32>();
        for i in 0..batch.num_rows() {
            let v: Vec<u16> = px.value(i).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let key = (
                ids.value(i).to_string(),
                z.as_primitive::<arrow::datatypes::Int64Type>().value(i),
                t.as_primitive::<arrow::datatypes::Int64Type>().value(i),
            );
            out.insert(key, v);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_ls_and_jpeg_2000_copies_ingest_like_the_original() {
    if !tools("jpeg_ls_and_jpeg_2000_copies_ingest_like_the_original") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    synth(raw.to_str().unwrap(), 1, 17, "").await;
    let original = dir.path().join("original");
    let base = ingest_phantom(raw.to_str().unwrap(), original.to_str().unwrap()).await;
    let want: Vec<(String, Vec<String>)> = all_rows(original.to_str().unwrap()).await;
    for (name, tool, args) in [("jpeg-ls", "dcmcjpls", &[][..]), ("j2k", "gdcmconv", &["--j2k"][..])] {
        let copy = dir.path().join(name);
        recompress(&raw, &copy, tool, args);
        let data = dir.path().join(format!("{name}-data"));
        let report = ingest_phantom(copy.to_str().unwrap(), data.to_str().unwrap()).await;
        assert_eq!((report.frames_from_files, report.files_quarantined), (base.frames_from_files, 0), "{name}");
        for ((table, got), (_, want)) in all_rows(data.to_str().unwrap()).await.into_iter().zip(&want) {
            if table == "sources" {
                continue; // fingerprints of other bytes
            }
            assert!(got == *want, "{name}: {table} differs from the uncompressed original's");
        }
        eprintln!("{name}: {} frames, bit for bit", report.frames_from_files);
    }

    // Lossy JPEG 2000: same frames, pixels within what the codec lost.
    let lossy = dir.path().join("j2k-lossy");
    recompress(&raw, &lossy, "gdcmconv", &["--j2k", "--lossy", "-q", "90"]);
    let data = dir.path().join("j2k-lossy-data");
    let report = ingest_phantom(lossy.to_str().unwrap(), data.to_str().unwrap()).await;
    assert_eq!((report.frames_from_files, report.files_quarantined), (base.frames_from_files, 0));
    let (a, b) = (pixels(original.to_str().unwrap()).await, pixels(data.to_str().unwrap()).await);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let (mut worst_rms, mut changed) = (0.0f64, 0);
    for (k, x) in &a {
        let y = &b[k];
        let max = x.iter().copied().max().unwrap_or(0).max(1) as f64;
        let sq: f64 = x.iter().zip(y).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum();
        let rms = (sq / x.len() as f64).sqrt();
        let peak = x.iter().zip(y).map(|(p, q)| p.abs_diff(*q)).max().unwrap_or(0);
        eprintln!("lossy j2k {k:?}: max |Δ| {peak}, RMS Δ {rms:.2} ({:.2}% of the frame's maximum {max})", 100.0 * rms / max);
        changed += usize::from(peak > 0);
        worst_rms = worst_rms.max(rms / max);
    }
    assert!(changed > 0, "a lossy copy loses something");
    assert!(worst_rms < 0.05, "every frame within 5% RMS of its maximum (worst {:.2}%)", 100.0 * worst_rms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_syntax_nobody_decodes_is_quarantined_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let s = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
        .args(["-q", "synth", "--out", raw.to_str().unwrap(), "--studies", "1", "--seed", "3"])
        .status()
        .unwrap();
    assert!(s.success());
    let target = files_under(&raw).into_iter().find(|f| f.extension().is_some_and(|e| e == "dcm")).unwrap();
    // The file meta's transfer syntax (explicit VR little endian, 20 bytes with its padding)
    // replaced by a UID of the same length that no codec knows.
    let bytes = std::fs::read(&target).unwrap();
    let uid = b"1.2.840.10008.1.2.1\0";
    let at = bytes[..1024].windows(uid.len()).position(|w| w == uid).expect("explicit VR little endian");
    let mut patched = bytes.clone();
    patched[at..at + uid.len()].copy_from_slice(b"1.2.3.4.5.6.7.8.9.0\0");
    std::fs::write(target.with_file_name("unknown.dcm"), patched).unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = cli(&["--json", "ingest", "--input", raw.to_str().unwrap(), "--output", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(report["files_quarantined"], 1, "{report}");
    let b =
        sql(data.to_str().unwrap(), "SELECT object_key, detail FROM curation_log WHERE problem = 'unreadable_file' ORDER BY object_key")
            .await;
    let details: Vec<String> = strs(&b, "detail").into_iter().flatten().collect();
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(details[0].contains("unsupported transfer syntax 1.2.3.4.5.6.7.8.9.0 (unknown)"), "{details:?}");
    assert!(details[0].contains("gdcmconv --raw"), "says what to do: {details:?}");
}
