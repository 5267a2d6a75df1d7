//! synth → storage → ingest → tables read back with DataFusion, on file:// and on S3; the CLI
//! quickstart; the Delta log as the only source of truth.

use arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::common::*;
use cinestream::tables::delta::{self, AsOf};

async fn roundtrip(raw: &str, data: &str) {
    let report = synth(raw, 5, 42, "none").await;
    let ingest = ingest_phantom(raw, data).await;
    let images: usize = report.studies.iter().map(|s| s.n_slices * s.n_frames).sum();
    assert_eq!(ingest.image_files, images);
    assert_eq!(ingest.frames_from_files, images);
    assert_eq!((ingest.files_quarantined, ingest.files_excluded, ingest.frames_filled), (0, 0, 0));
    assert_eq!(ingest.side_files, 5 + 4, "5 truth parquet files, 3 CSVs and synth.json are not images");

    let counts = sql(data, "SELECT (SELECT COUNT(*) FROM frames) AS f, (SELECT COUNT(*) FROM labels) AS l, (SELECT COUNT(*) FROM studies) AS s, (SELECT COUNT(*) FROM curation_log) AS c").await;
    assert_eq!(
        (i64s(&counts, "f")[0], i64s(&counts, "l")[0], i64s(&counts, "s")[0], i64s(&counts, "c")[0]),
        (images as i64, images as i64, 5, 0)
    );

    let studies = sql(data, "SELECT study_id, split, n_slices, n_frames, truth_esv_ml, truth_edv_ml FROM studies ORDER BY study_id").await;
    let vols = label_volumes(data).await;
    for (i, id) in strs(&studies, "study_id").into_iter().enumerate() {
        let id = id.unwrap();
        let t = report.studies.iter().find(|s| s.study_id == id).unwrap();
        assert_eq!(strs(&studies, "split")[i].as_deref(), Some(t.split.as_str()));
        assert_eq!((i64s(&studies, "n_slices")[i] as usize, i64s(&studies, "n_frames")[i] as usize), (t.n_slices, t.n_frames));
        // Truth columns come from the CSVs (4 decimals); volumes from the masks equal them.
        assert!((f64s(&studies, "truth_esv_ml")[i].unwrap() - t.esv_ml).abs() < 1e-4);
        assert!((f64s(&studies, "truth_edv_ml")[i].unwrap() - t.edv_ml).abs() < 1e-4);
        let (esv, edv) = vols[&id];
        assert!(rel(esv, t.esv_ml) < 1e-9 && rel(edv, t.edv_ml) < 1e-9, "{id}: {esv} {edv} vs {} {}", t.esv_ml, t.edv_ml);
    }
    // Slice 0 is the most apical: its LV is the smallest non-empty cross-section at ED.
    let apex =
        sql(data, "SELECT slice_index, slice_location_mm FROM frames WHERE study_id = '1' AND frame_index = 0 ORDER BY slice_index").await;
    let locs: Vec<f64> = f64s(&apex, "slice_location_mm").into_iter().map(Option::unwrap).collect();
    assert!(locs.windows(2).all(|w| w[0] > w[1]), "slice_location_mm decreases from apex to base: {locs:?}");
    // Pixels are u16 little-endian, height × width.
    let px = sql(data, "SELECT height, width, pixels FROM frames LIMIT 3").await;
    let blobs: Vec<usize> = px
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name("pixels").unwrap().as_binary::<i32>().clone();
            (0..a.len()).map(move |i| a.value(i).len())
        })
        .collect();
    assert_eq!(blobs.len(), 3);
    for (i, n) in blobs.iter().enumerate() {
        assert_eq!(*n as i64, 2 * i64s(&px, "height")[i] * i64s(&px, "width")[i]);
    }
}

/// `studies` places every slice in patient space where its DICOM says it is: from the origin,
/// the orientation and the slice direction alone (what a viewer needs), each acquired slice's
/// first pixel lands on its ImagePositionPatient, and the rows and columns run along its
/// ImageOrientationPatient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_geometry_places_every_slice_where_its_dicom_says() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    synth(raw.to_str().unwrap(), 3, 5, "none").await;
    ingest_phantom(raw.to_str().unwrap(), data.to_str().unwrap()).await;
    let cols = [
        "origin_x_mm",
        "origin_y_mm",
        "origin_z_mm",
        "orientation_row_x",
        "orientation_row_y",
        "orientation_row_z",
        "orientation_col_x",
        "orientation_col_y",
        "orientation_col_z",
        "slice_direction_x",
        "slice_direction_y",
        "slice_direction_z",
    ];
    let q = format!(
        "WITH l0 AS (SELECT study_id, slice_location_mm AS l0 FROM frames WHERE slice_index = 0 AND frame_index = 0) \
         SELECT f.study_id, f.source_key, l0.l0 - f.slice_location_mm AS offset, {} FROM frames f JOIN studies s ON f.study_id = s.study_id JOIN l0 ON l0.study_id = f.study_id \
         WHERE f.frame_index = 0 AND f.fill IS NULL ORDER BY f.study_id, f.slice_index",
        cols.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
    );
    let rows = sql(data.to_str().unwrap(), &q).await;
    let keys = strs(&rows, "source_key");
    let offset = f64s(&rows, "offset");
    let v: Vec<Vec<Option<f64>>> = cols.iter().map(|c| f64s(&rows, c)).collect();
    assert!(keys.len() >= 3 * 6, "{} slices", keys.len());
    for (i, key) in keys.iter().enumerate() {
        let g = |k: usize| v[k][i].unwrap_or_else(|| panic!("{} is null", cols[k]));
        let h = cinestream::source::parse::parse_header(&std::fs::read(raw.join(key.as_deref().unwrap())).unwrap()).unwrap();
        let at: Vec<f64> = (0..3).map(|a| g(a) + offset[i].unwrap() * g(9 + a)).collect();
        for a in 0..3 {
            assert!((at[a] - h.position[a]).abs() < 0.01, "{key:?}: slice origin {at:?} vs ImagePositionPatient {:?}", h.position);
            assert!(
                (g(3 + a) - h.orientation[a]).abs() < 1e-6 && (g(6 + a) - h.orientation[3 + a]).abs() < 1e-6,
                "{key:?}: orientation vs {:?}",
                h.orientation
            );
        }
        let n: f64 = (9..12).map(|k| g(k) * g(k)).sum();
        assert!((n - 1.0).abs() < 1e-9, "slice direction is a unit vector");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let raw = format!("file://{}", dir.path().join("raw").display());
    roundtrip(&raw, dir.path().join("data").to_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_roundtrip() {
    let Some(bucket) = s3_bucket("s3_roundtrip") else { return };
    let p = unique("roundtrip");
    roundtrip(&format!("s3://{bucket}/{p}/raw"), &format!("s3://{bucket}/{p}/data")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_list_checksummed_files_and_hide_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    synth(raw.to_str().unwrap(), 2, 5, "none").await;
    ingest_phantom(raw.to_str().unwrap(), data.to_str().unwrap()).await;
    let loc = open(data.to_str().unwrap());
    for table in ["frames", "labels", "studies", "sources"] {
        let t = delta::open(&loc, table, &AsOf::Latest).await.unwrap().unwrap();
        let history = delta::history(&t, None).await.unwrap();
        assert_eq!(history.len(), 2, "{table}: created, then one commit for the run");
        let info = &history[0].info["cinestream"];
        assert_eq!(info["summary"]["image_files"], info["summary"]["frames_from_files"]);
        let files = info["files"].as_array().unwrap();
        assert_eq!(files.len(), delta::active_files(&t).unwrap().len(), "{table}");
        for f in files {
            let path = loc.child(&format!("{table}/{}", f["path"].as_str().unwrap()));
            let bytes = loc.store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap(), "{table}");
            assert_eq!(hex::encode(Sha256::digest(&bytes)), f["sha256"].as_str().unwrap(), "{table}: checksum");
        }
    }
    let before = i64s(&sql(data.to_str().unwrap(), "SELECT COUNT(*) AS n FROM frames").await, "n")[0];
    // A file no commit lists (a crashed run's) is invisible to readers.
    let t = delta::open(&loc, "frames", &AsOf::Latest).await.unwrap().unwrap();
    let first = &delta::active_files(&t).unwrap()[0];
    let orphan = loc.child("frames/part-orphan-00000.parquet");
    let bytes = loc.store.get(&loc.child(&format!("frames/{}", first.path))).await.unwrap().bytes().await.unwrap();
    loc.store.put(&orphan, PutPayload::from(bytes)).await.unwrap();
    let after = i64s(&sql(data.to_str().unwrap(), "SELECT COUNT(*) AS n FROM frames").await, "n")[0];
    assert_eq!(before, after);
    let listed: Vec<_> = loc.store.list(None).try_collect().await.unwrap();
    assert!(listed.iter().any(|o| o.location == orphan));
}

/// The README's quickstart: synth + ingest on file:// through the CLI, with the summary.
#[test]
fn cli_quickstart_prints_a_reconciled_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("phantom"), dir.path().join("data"));
    let bin = env!("CARGO_BIN_EXE_cinestream");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let raw_s = raw.to_str().unwrap();
    let s = run(&["synth", "--out", raw_s, "--studies", "12", "--defects", "all"]);
    assert!(s.contains("wrote 12 studies"), "{s}");
    let truth: Vec<String> = ["train.csv", "validate.csv", "solution.csv"].iter().map(|f| format!("{raw_s}/{f}")).collect();
    let labels = format!("{raw_s}/truth");
    let mut args = vec!["ingest", "--input", raw_s, "--output", data.to_str().unwrap(), "--labels", &labels];
    for t in &truth {
        args.extend(["--truth", t.as_str()]);
    }
    let out = run(&args);
    for want in
        ["image files", "= frames written", "+ quarantined", "+ excluded", "+ skipped", "unreadable_file", "rotation", "commits (Delta)"]
    {
        assert!(out.contains(want), "summary lacks `{want}`:\n{out}");
    }
    let num = |label: &str| -> usize {
        let line = out.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label} in {out}"));
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    let skipped = |out: &str| -> usize {
        let line = out.lines().find(|l| l.trim_start().starts_with("+ skipped")).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert_eq!(num("image files"), num("= frames written") + num("+ quarantined") + num("+ excluded") + skipped(&out));
    assert_eq!(skipped(&out), 0);
    assert_eq!(num("+ quarantined"), 4);
}
