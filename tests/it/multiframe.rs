//! Enhanced multi-frame MR made by software nobody here wrote: highdicom's Legacy Converted
//! Enhanced MR of the phantom (its planted defects included), once one file per slice and once
//! one file per study, ingests to the same `frames`, `labels`, `studies` and `curation_log`
//! rows as the classic series (pixels bit for bit, geometry as written), each classic object
//! key becoming `<file>#<frame>`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};

use crate::common::*;

/// Whether python3 can import highdicom (required under CINESTREAM_REQUIRE_TOOLS).
pub fn highdicom(test: &str) -> bool {
    let ok = std::process::Command::new("python3").args(["-c", "import highdicom"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(),
            "{test}: python3 cannot import highdicom (pip install highdicom==0.28.2)"
        );
        eprintln!("SKIPPED {test}: pip install highdicom");
    }
    ok
}

/// Converts the phantom in `raw` into `out` (`per_slice` or `per_study`), with its truth CSVs and
/// its masks keyed by the new keys; returns classic key → `<file>#<frame>`.
fn convert(raw: &Path, out: &Path, mode: &str) -> HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/enhanced_convert.py");
    let o = std::process::Command::new("python3").args([script, raw.to_str().unwrap(), out.to_str().unwrap(), mode]).output().unwrap();
    assert!(o.status.success(), "{mode}: {}", String::from_utf8_lossy(&o.stderr));
    let map: HashMap<String, String> = serde_json::from_slice(&o.stdout).unwrap();
    for f in ["train.csv", "validate.csv", "solution.csv"] {
        if raw.join(f).exists() {
            std::fs::copy(raw.join(f), out.join(f)).unwrap();
        }
    }
    std::fs::create_dir_all(out.join("truth")).unwrap();
    for f in files_under(&raw.join("truth")) {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader
            .map(|b| {
                let b = b.unwrap();
                let i = b.schema().index_of("object_key").unwrap();
                let keys: StringArray =
                    b.column(i).as_string::<i32>().iter().map(|k| k.map(|k| map.get(k).cloned().unwrap_or(k.into()))).collect();
                let mut cols: Vec<ArrayRef> = b.columns().to_vec();
                cols[i] = Arc::new(keys);
                RecordBatch::try_new(b.schema(), cols).unwrap()
            })
            .collect();
        let file = std::fs::File::create(out.join("truth").join(f.file_name().unwrap())).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
        batches.iter().for_each(|b| w.write(b).unwrap());
        w.close().unwrap();
    }
    map
}

/// A table's rows with every classic key in them (a whole field, or quoted in a finding's
/// detail) mapped through `map`.
fn mapped(rows: &[String], map: &HashMap<String, String>) -> Vec<String> {
    let field = |f: &str| -> String {
        if let Some(m) = map.get(f) {
            return m.clone();
        }
        f.split(' ').map(|w| map.get(w).map_or(w, String::as_str)).collect::<Vec<_>>().join(" ")
    };
    let mut out: Vec<String> = rows.iter().map(|r| r.split('|').map(field).collect::<Vec<_>>().join("|")).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_converted_enhanced_mr_ingests_as_the_classic_series() {
    if !highdicom("legacy_converted_enhanced_mr_ingests_as_the_classic_series") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    // Every planted defect (sizes, rotations, repeats, gaps, broken files), spread over 4 studies
    // (5 in a soak run, scripts/soak.sh).
    synth(raw.to_str().unwrap(), sized(4, 5), 31, "all").await;
    // The two conversions (python processes) run while the classic series is ingested.
    let conversions: Vec<_> = ["per_slice", "per_study"]
        .into_iter()
        .map(|mode| {
            let (raw, conv) = (raw.clone(), dir.path().join(mode));
            std::thread::spawn(move || (mode, convert(&raw, &conv, mode)))
        })
        .collect();
    let classic = dir.path().join("classic");
    let base = ingest_phantom(raw.to_str().unwrap(), classic.to_str().unwrap()).await;
    assert!(base.files_quarantined > 0 && base.files_excluded > 0, "the defects are there: {base:?}");
    for job in conversions {
        let (mode, map) = job.join().unwrap();
        let conv = dir.path().join(mode);
        let files = files_under(&conv).iter().filter(|f| f.extension().is_some_and(|e| e == "dcm")).count();
        let data = dir.path().join(format!("{mode}-data"));
        let report = ingest_phantom(conv.to_str().unwrap(), data.to_str().unwrap()).await;
        eprintln!(
            "{mode}: {files} files ({} frames beyond the first of multi-frame files): {} frames, {} quarantined, {} excluded",
            report.extra_frames, report.frames_from_files, report.files_quarantined, report.files_excluded
        );
        assert_eq!(report.image_files, files);
        assert_eq!(report.image_files + report.extra_frames, base.image_files, "{mode}: as many images as classic files");
        assert_eq!(
            (report.frames_from_files, report.files_quarantined, report.files_excluded, report.frames_filled),
            (base.frames_from_files, base.files_quarantined, base.files_excluded, base.frames_filled),
            "{mode}"
        );
        for table in ["frames", "labels", "studies", "curation_log"] {
            let want = mapped(&table_rows(classic.to_str().unwrap(), table, RUN_COLUMNS).await, &map);
            let got = table_rows(data.to_str().unwrap(), table, RUN_COLUMNS).await;
            assert_eq!(got.len(), want.len(), "{mode}: {table} rows");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{mode}: {table} differs from the classic ingest");
            }
        }
    }
}
