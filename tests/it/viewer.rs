//! `cinestream export --data …`: NIfTI volumes that nibabel opens with the right shape, zooms,
//! dtype and world positions (against the source DICOM read with pydicom), for a clean study, one
//! with slices rotated by 90° and one scaled down from 512 px; PNG montages; bad input.

use std::collections::BTreeMap;

use crate::common::{cli, i64s, phantom_data, png_pixels, sql, strs};

/// Runs tests/it/nifti_check.py on an export; returns its JSON lines, or `None` (skipped) when
/// nibabel or pydicom are missing and the tools are not required.
fn nifti_check(spec: &serde_json::Value, dir: &std::path::Path) -> Option<Vec<serde_json::Value>> {
    let have = std::process::Command::new("python3").args(["-c", "import nibabel, pydicom, numpy"]).status().is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(),
            "python3 with nibabel, pydicom and numpy is required (pip install nibabel==5.3.2 pydicom)"
        );
        return None;
    }
    let path = dir.join("check.json");
    std::fs::write(&path, serde_json::to_vec(spec).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/nifti_check.py");
    let out = std::process::Command::new("python3").arg(script).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "nifti_check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nifti_volumes_sit_where_the_source_dicom_says() {
    let dir = tempfile::tempdir().unwrap();
    // Study 1: two slices rotated by ±90°; study 2: 512 px images scaled to 256; study 3: clean.
    let (input, data, truth) = phantom_data(dir.path(), 3, 11, "rotated_90,large_image").await;
    let (input, data) = (input.as_str(), data.as_str());
    let out = dir.path().join("viewer");
    let out = out.to_str().unwrap();
    assert_eq!(truth.studies[0].defects, ["rotated_90"]);
    assert_eq!(truth.studies[1].defects, ["large_image"]);
    assert!(truth.studies[2].defects.is_empty());

    let (ok, stdout, err) = cli(&["export", "--data", data, "--labeller", "phantom", "--out", out]);
    assert!(ok, "export failed: {err}");
    assert!(stdout.contains("exported 3 studies"), "{stdout}");

    let mut studies = serde_json::Map::new();
    for t in &truth.studies {
        let id = &t.study_id;
        let rows = sql(data, &format!("SELECT slice_index, frame_index, source_key, resampled FROM frames WHERE study_id = '{id}' AND fill IS NULL ORDER BY slice_index, frame_index")).await;
        let (z, f, key) = (i64s(&rows, "slice_index"), i64s(&rows, "frame_index"), strs(&rows, "source_key"));
        let resampled = rows.iter().flat_map(|b| {
            let c = b.column_by_name("resampled").unwrap();
            let a = arrow::array::AsArray::as_boolean(c.as_ref()).clone();
            (0..a.len()).map(move |i| a.value(i))
        });
        let frames: Vec<serde_json::Value> =
            z.iter().zip(&f).zip(&key).zip(resampled).map(|(((z, f), k), r)| serde_json::json!([z, f, k.clone().unwrap(), r])).collect();
        let s = sql(data, &format!("SELECT width, height, n_slices, n_frames FROM studies WHERE study_id = '{id}'")).await;
        let v = sql(data, &format!("SELECT ed_frame, es_frame FROM volumes WHERE study_id = '{id}' AND labeller = 'phantom'")).await;
        studies.insert(
            id.clone(),
            serde_json::json!({
                "frames": frames,
                "shape": [i64s(&s, "width")[0], i64s(&s, "height")[0], i64s(&s, "n_slices")[0], i64s(&s, "n_frames")[0]],
                "ed": i64s(&v, "ed_frame")[0],
                "es": i64s(&v, "es_frame")[0],
            }),
        );
        // The phantom's own ED/ES frames are the labeller's.
        assert_eq!((i64s(&v, "ed_frame")[0] as usize, i64s(&v, "es_frame")[0] as usize), (t.ed_frame, t.es_frame), "study {id}");
    }
    let spec = serde_json::json!({"export": out, "input": input, "studies": studies});
    let Some(lines) = nifti_check(&spec, dir.path()) else {
        eprintln!("SKIPPED nifti_volumes_sit_where_the_source_dicom_says: python3 with nibabel and pydicom not available");
        return;
    };
    let by_study: BTreeMap<String, &serde_json::Value> = lines.iter().map(|l| (l["study"].as_str().unwrap().to_string(), l)).collect();
    let (rot, large, clean) = (&truth.studies[0].study_id, &truth.studies[1].study_id, &truth.studies[2].study_id);
    // Each kind of slice was compared: the clean study's exactly, the rotated ones and the
    // scaled study's through their mapping.
    assert!(by_study[clean]["exact_slices"].as_i64().unwrap() >= 8 && by_study[clean]["resampled_slices"] == 0, "{:?}", by_study[clean]);
    assert_eq!(by_study[rot]["resampled_slices"], 2, "{:?}", by_study[rot]);
    assert!(by_study[rot]["exact_slices"].as_i64().unwrap() >= 6, "{:?}", by_study[rot]);
    assert!(by_study[large]["resampled_slices"].as_i64().unwrap() >= 8 && by_study[large]["exact_slices"] == 0, "{:?}", by_study[large]);
    let zooms = by_study[large]["zooms"].as_array().unwrap();
    assert!(zooms[3].as_f64().unwrap() > 10.0, "the frame interval (ms) is a zoom: {zooms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_montages_and_bad_export_input() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, truth) = phantom_data(dir.path(), 2, 5, "none").await;
    let data = data.as_str();
    let out = dir.path().join("png");
    let out = out.to_str().unwrap();
    let id = &truth.studies[0].study_id;

    let (ok, _, err) =
        cli(&["export", "--data", data, "--labeller", "phantom", "--studies", id, "--format", "png", "--all-frames", "--out", out]);
    assert!(ok, "export failed: {err}");
    let s = &truth.studies[0];
    let decode = |name: &str| {
        let (w, h, px, _) = png_pixels(&std::path::Path::new(out).join(id).join(name));
        (w as usize, h as usize, px)
    };
    let rows = sql(data, &format!("SELECT height, width FROM studies WHERE study_id = '{id}'")).await;
    let (h, w) = (i64s(&rows, "height")[0] as usize, i64s(&rows, "width")[0] as usize);
    let (pw, ph, px) = decode("ed_es.png");
    assert_eq!((pw, ph), (s.n_slices * w + (s.n_slices - 1) * 2, 2 * h + 2), "one tile per slice, rows ED and ES");
    // Outlines in every class colour that the phantom has (LV and MY).
    let has = |c: [u8; 3]| px.chunks_exact(3).any(|p| p == c);
    assert!(has([235, 50, 50]) && has([40, 200, 70]), "LV and MY outlines drawn");
    let grey = px.chunks_exact(3).filter(|p| p[0] == p[1] && p[1] == p[2] && p[0] > 20 && p[0] < 250).count();
    assert!(grey > pw * ph / 4, "the images are visible ({grey} grey pixels)");
    let (_, fh, _) = decode("frames.png");
    assert_eq!(fh, s.n_frames * h + (s.n_frames - 1) * 2, "one row per frame");
    assert!(!std::path::Path::new(out).join(&truth.studies[1].study_id).exists(), "only the study asked for");

    // Unknown labeller: named, with the ones there are.
    let (ok, _, err) = cli(&["export", "--data", data, "--labeller", "nobody", "--out", out]);
    assert!(!ok && err.contains("labeller `nobody`") && err.contains("phantom (2 studies)"), "{err}");
    // A study that does not exist: named; the others are still exported; exit non-zero.
    let out2 = dir.path().join("png2");
    let (ok, stdout, err) = cli(&[
        "export",
        "--data",
        data,
        "--labeller",
        "phantom",
        "--studies",
        &format!("{id},9999"),
        "--format",
        "png",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("9999") && err.contains("not in `studies`"), "{err}");
    assert!(stdout.contains("exported 1 studies") && out2.join(id).join("ed_es.png").exists(), "{stdout}");
    // Flags that do not go together.
    let (ok, _, err) = cli(&["export", "--data", data, "--labeller", "phantom", "--all-frames", "--out", out]);
    assert!(!ok && err.contains("--format png"), "{err}");
    let (ok, _, err) = cli(&["export", "--data", data, "--labeller", "phantom", "--format", "torch", "--out", out]);
    assert!(!ok && err.contains("--model"), "{err}");
}

/// Export and evaluate write to S3 as to a folder: every file lands, readable back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_evaluate_write_to_s3() {
    let Some(bucket) = crate::common::s3_bucket("export_and_evaluate_write_to_s3") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, data, truth) = phantom_data(dir.path(), 2, 6, "none").await;
    let prefix = crate::common::unique("viewer");
    let out = format!("s3://{bucket}/{prefix}");
    let id = &truth.studies[0].study_id;
    let (ok, _, err) = cli(&["export", "--data", &data, "--labeller", "phantom", "--studies", id, "--out", &format!("{out}/nifti")]);
    assert!(ok, "export to S3 failed: {err}");
    let (ok, _, err) =
        cli(&["evaluate", "--data", &data, "--labeller", "phantom", "--reference", "truth", "--out", &format!("{out}/eval")]);
    assert!(ok, "evaluate to S3 failed: {err}");
    let loc = crate::common::open(&out);
    use futures::TryStreamExt;
    let listed: Vec<object_store::ObjectMeta> = loc.store.list(Some(&loc.prefix)).try_collect().await.unwrap();
    let names: std::collections::BTreeSet<String> = listed.iter().map(|m| loc.relative(&m.location).to_string()).collect();
    for f in ["sa.nii.gz", "seg_sa.nii.gz", "sa_ED.nii.gz", "seg_sa_ED.nii.gz", "sa_ES.nii.gz", "seg_sa_ES.nii.gz"] {
        let key = format!("nifti/{id}/{f}");
        assert!(names.contains(&key), "{key} missing: {names:?}");
        let size = listed.iter().find(|m| loc.relative(&m.location) == key).unwrap().size;
        assert!(size > 1000, "{key}: {size} bytes");
    }
    for f in [
        "nifti/export.json",
        "eval/evaluation_studies.parquet",
        "eval/evaluation_images.parquet",
        "eval/report.html",
        "eval/summary.md",
        "eval/bland_altman_ef.png",
    ] {
        assert!(names.contains(f), "{f} missing: {names:?}");
    }
}
