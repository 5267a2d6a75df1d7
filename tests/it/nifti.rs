//! NIfTI datasets as sources, with files made by software nobody here wrote:
//! - `export --format nifti` of the phantom, ingested again: the same pixels, masks, ED/ES and
//!   volumes;
//! - ACDC- and M&Ms-shaped datasets made by nibabel (`nifti_datasets.py`) from that export: expert
//!   masks at ED and ES under `expert`, in our classes, ED/ES from Info.cfg and the CSV, and
//!   `volumes` and `evaluate --reference expert` on them; bad files reported, never dropped;
//! - dcm2niix's conversion of the phantom DICOM: the same curated frames and slice positions.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::AsArray;

use crate::common::*;
use cinestream::source::layout::pseudonym;
use cinestream::source::pseudonym::PseudonymKey;

const KEY: &str = "nifti-test-key-0123456789";

/// Whether python3 has nibabel (required under CINESTREAM_REQUIRE_TOOLS).
fn nibabel(test: &str) -> bool {
    let ok = std::process::Command::new("python3").args(["-c", "import nibabel, numpy"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(), "{test}: python3 cannot import nibabel (pip install nibabel)");
        eprintln!("SKIPPED {test}: pip install nibabel");
    }
    ok
}

/// `cinestream ingest` with the test's pseudonym key; returns (success, stdout, stderr).
fn ingest(input: &str, output: &str, extra: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"))
        .args(["ingest", "--input", input, "--output", output])
        .args(extra)
        .env("CINESTREAM_PSEUDONYM_KEY", KEY)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The study id of a NIfTI folder and patient stem.
fn study_id(folder: &str, stem: &str) -> String {
    pseudonym(PseudonymKey::new(KEY.as_bytes(), "test").unwrap().secret(), &format!("nifti:{folder}/{stem}"))
}

/// (slice, frame) → bytes of `col` for one study (and labeller, for `labels`).
async fn images(data: &str, table: &str, col: &str, study: &str, labeller: Option<&str>) -> BTreeMap<(i64, i64), Vec<u8>> {
    let who = labeller.map(|l| format!(" AND labeller = '{l}'")).unwrap_or_default();
    let q = format!("SELECT slice_index, frame_index, {col} FROM {table} WHERE study_id = '{study}'{who} AND (fill IS NULL)");
    let rows = sql(data, &q).await;
    let mut out = BTreeMap::new();
    for b in &rows {
        let (z, t) = (i64s(std::slice::from_ref(b), "slice_index"), i64s(std::slice::from_ref(b), "frame_index"));
        let v = b.column_by_name(col).unwrap().as_binary::<i32>();
        for i in 0..b.num_rows() {
            out.insert((z[i], t[i]), v.value(i).to_vec());
        }
    }
    out
}

/// (dataset ED, dataset ES) of a study.
async fn dataset_ed_es(data: &str, study: &str) -> (i64, i64) {
    let b = sql(data, &format!("SELECT dataset_ed_frame, dataset_es_frame FROM studies WHERE study_id = '{study}'")).await;
    (i64s(&b, "dataset_ed_frame")[0], i64s(&b, "dataset_es_frame")[0])
}

async fn volumes(data: &str, labeller: &str) -> BTreeMap<String, (f64, f64, i64, i64)> {
    let b = sql(data, &format!("SELECT study_id, esv_ml, edv_ml, ed_frame, es_frame FROM volumes WHERE labeller = '{labeller}'")).await;
    let (ids, esv, edv, ed, es) =
        (strs(&b, "study_id"), f64s(&b, "esv_ml"), f64s(&b, "edv_ml"), i64s(&b, "ed_frame"), i64s(&b, "es_frame"));
    (0..ids.len()).map(|i| (ids[i].clone().unwrap(), (esv[i].unwrap(), edv[i].unwrap(), ed[i], es[i]))).collect()
}

/// Runs `nifti_datasets.py` on an export; returns study → (ACDC folder, M&Ms folder, ED, ES).
fn datasets(export: &Path, out: &Path) -> BTreeMap<String, (String, String, i64, i64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/nifti_datasets.py");
    let o = std::process::Command::new("python3").args([script, export.to_str().unwrap(), out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "nifti_datasets.py: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| {
            let t = |f: &str| s[f].as_str().unwrap().to_string();
            (k.clone(), (t("acdc"), t("mnms"), s["ed"].as_i64().unwrap(), s["es"].as_i64().unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_and_dataset_shaped_nifti_ingest_with_expert_masks_and_ed_es() {
    if !nibabel("exported_and_dataset_shaped_nifti_ingest_with_expert_masks_and_ed_es") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, data, truth) = phantom_data(dir.path(), 2, 23, "").await;
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (ok, _, err) = cli(&["export", "--data", &data, "--labeller", "phantom", "--out", &p("export")]);
    assert!(ok, "export: {err}");
    let phantom = volumes(&data, "phantom").await;

    // Round trip: the export (ukbb layout) ingested again.
    let (ok, out, err) = ingest(&p("export"), &p("rt"), &[]);
    assert!(ok, "ingest of the export: {err}");
    assert!(out.contains("ukbb 2") && out.contains("dataset files"), "{out}");
    let rt = volumes(&p("rt"), "expert").await;
    for s in &truth.studies {
        let (old, new) = (s.study_id.as_str(), study_id(&s.study_id, ""));
        let pixels = images(&data, "frames", "pixels", old, None).await;
        assert_eq!(images(&p("rt"), "frames", "pixels", &new, None).await, pixels, "study {old}: pixels");
        let masks = images(&data, "labels", "mask", old, Some("phantom")).await;
        assert_eq!(images(&p("rt"), "labels", "mask", &new, Some("expert")).await, masks, "study {old}: masks");
        let (esv, edv, ed, es) = phantom[old];
        assert_eq!(dataset_ed_es(&p("rt"), &new).await, (ed, es), "study {old}: ED/ES from sa_ED/sa_ES");
        let (esv2, edv2, ..) = rt[&new];
        assert!(rel(esv2, esv) < 0.005 && rel(edv2, edv) < 0.005, "study {old}: volumes {esv2}/{edv2} vs {esv}/{edv}");
    }

    // ACDC and M&Ms layouts, made by nibabel.
    let fixtures = dir.path().join("datasets");
    let sets = datasets(&dir.path().join("export"), &fixtures);
    let fx = |n: &str| fixtures.join(n).to_str().unwrap().to_string();
    for (name, input) in [("acdc", fx("acdc")), ("mnms", fx("mnms"))] {
        let out_dir = p(&format!("data_{name}"));
        let (ok, out, err) = ingest(&input, &out_dir, &[]);
        assert!(ok, "{name}: {err}");
        assert!(out.contains(&format!("{name} 2")), "{name}: {out}");
        let expert = volumes(&out_dir, "expert").await;
        for (old, (acdc, mnms, ed, es)) in &sets {
            let (folder, stem) = if name == "acdc" {
                (acdc.as_str(), acdc.rsplit('/').next().unwrap())
            } else {
                (mnms.as_str(), mnms.rsplit('/').next().unwrap())
            };
            let new = study_id(folder, stem);
            assert_eq!(
                images(&out_dir, "frames", "pixels", &new, None).await,
                images(&data, "frames", "pixels", old, None).await,
                "{name} {old}"
            );
            let masks = images(&out_dir, "labels", "mask", &new, Some("expert")).await;
            let frames: std::collections::BTreeSet<i64> = masks.keys().map(|(_, t)| *t).collect();
            assert_eq!(frames, [*ed, *es].into(), "{name} {old}: expert masks at ED and ES only");
            let want = images(&data, "labels", "mask", old, Some("phantom")).await;
            for (k, m) in &masks {
                assert_eq!(m, &want[k], "{name} {old} {k:?}: the class map turns the dataset's labels into ours");
            }
            assert_eq!(dataset_ed_es(&out_dir, &new).await, (*ed, *es), "{name} {old}: ED/ES from the metadata");
            let (esv, edv, ..) = phantom[old];
            let (esv2, edv2, ed2, es2) = expert[&new];
            assert!(rel(esv2, esv) < 0.005 && rel(edv2, edv) < 0.005 && (ed2, es2) == (*ed, *es), "{name} {old}: volumes");
        }
        let agree = sql(&out_dir, "SELECT count(*) AS n FROM dataset_esed WHERE ed_agrees AND es_agrees").await;
        assert_eq!(i64s(&agree, "n"), [2], "{name}: the saved dataset_esed compares the dataset's ED/ES with the volumes rule");
    }
    let acdc = p("data_acdc");
    if crate::label_onnx::onnx_tools("exported_and_dataset_shaped_nifti_ingest_with_expert_masks_and_ed_es").is_some() {
        let model = dir.path().join("levels.onnx");
        crate::label_onnx::level_model(&model, "nchw");
        let contract = dir.path().join("levels.toml");
        std::fs::write(&contract, crate::label_onnx::contract("nchw", "{ kind = \"pad_multiple\", multiple = 16 }", false)).unwrap();
        let (ok, _, err) = cli(&[
            "label",
            "--data",
            &acdc,
            "--model",
            model.to_str().unwrap(),
            "--contract",
            contract.to_str().unwrap(),
            "--labeller",
            "levels",
        ]);
        assert!(ok, "label: {err}");
        let (ok, out, err) = cli(&["evaluate", "--data", &acdc, "--labeller", "levels", "--reference", "expert", "--out", &p("eval")]);
        assert!(ok, "evaluate --reference expert: {err}");
        let st = crate::evaluate::read_parquet(&dir.path().join("eval").join("evaluation_studies.parquet"));
        assert!(out.contains("studies evaluated") && strs(&st, "study_id").len() == 2, "{out}");
    }

    // Bad input: reported with its reason, the rest ingested, the summary reconciled.
    let (ok, out, err) = ingest(&fx("bad"), &p("data_bad"), &[]);
    assert!(ok, "a bad file does not stop the run: {err}");
    assert!(out.contains("image files           3") && out.contains("quarantined       1"), "{out}");
    let log = sql(&p("data_bad"), "SELECT study_id, problem, resolution, detail FROM curation_log").await;
    let details: Vec<(String, String)> =
        strs(&log, "study_id").into_iter().zip(strs(&log, "detail")).map(|(s, d)| (s.unwrap(), d.unwrap())).collect();
    let about = |patient: &str| {
        let id = study_id(patient, patient);
        details.iter().filter(|(s, _)| *s == id).map(|(_, d)| d.clone()).collect::<Vec<_>>().join(" | ")
    };
    assert!(about("patient901").contains("no affine: qform_code and sform_code are both 0"), "{details:?}");
    assert!(about("patient902").contains("voxels but its image"), "{details:?}");
    assert!(about("patient903").contains("label value 7") && about("patient903").contains("--class-map"), "{details:?}");
    let labelled = sql(&p("data_bad"), "SELECT count(*) AS n FROM labels").await;
    assert_eq!(i64s(&labelled, "n"), [0], "ill-fitting masks are ignored whole");
    let frames = sql(&p("data_bad"), "SELECT count(DISTINCT study_id) AS n FROM frames").await;
    assert_eq!(i64s(&frames, "n"), [2], "the images of patients 902 and 903 are ingested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcm2niix_conversion_ingests_to_the_same_frames_and_positions() {
    let have = std::process::Command::new("dcm2niix").arg("--version").output().is_ok_and(|o| !o.stdout.is_empty());
    if !have {
        assert!(std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(), "dcm2niix is required (pip install dcm2niix)");
        eprintln!("SKIPPED: pip install dcm2niix");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (input, data, truth) = phantom_data(dir.path(), 1, 31, "").await;
    let study = &truth.studies[0].study_id;
    let series_root = files_under(Path::new(&input)).into_iter().find(|f| f.extension().is_some_and(|e| e == "dcm")).unwrap();
    let study_dir = series_root.parent().unwrap().parent().unwrap().to_path_buf();
    let out = dir.path().join("niix").join(study);
    std::fs::create_dir_all(&out).unwrap();
    for series in std::fs::read_dir(&study_dir).unwrap() {
        let s = series.unwrap().path();
        let o = std::process::Command::new("dcm2niix").args(["-z", "y", "-b", "y", "-f", "%f", "-o"]).arg(&out).arg(&s).output().unwrap();
        assert!(o.status.success(), "dcm2niix {}: {}", s.display(), String::from_utf8_lossy(&o.stderr));
    }
    let niix = dir.path().join("niix").to_str().unwrap().to_string();
    let nd = dir.path().join("data_niix").to_str().unwrap().to_string();
    let (ok, summary, err) = ingest(&niix, &nd, &[]);
    assert!(ok, "{err}");
    assert!(summary.contains("nifti 1"), "{summary}");
    let new = study_id(study, "");
    // dcm2niix stores rows bottom-up (its affine says so), so the curated grid may run the other
    // way along a row or a column: the same pixel must sit at the same place in the patient.
    let grid = |d: &str, s: &str| {
        let q = format!(
            "SELECT height, width, orientation_row_x, orientation_row_y, orientation_row_z, orientation_col_x, orientation_col_y, orientation_col_z FROM studies WHERE study_id = '{s}'"
        );
        let d = d.to_string();
        async move {
            let b = sql(&d, &q).await;
            let v = |c: &str| f64s(&b, c)[0].unwrap();
            let dims = (i64s(&b, "height")[0] as usize, i64s(&b, "width")[0] as usize);
            (
                dims,
                [v("orientation_row_x"), v("orientation_row_y"), v("orientation_row_z")],
                [v("orientation_col_x"), v("orientation_col_y"), v("orientation_col_z")],
            )
        }
    };
    let ((h, w), row_a, col_a) = grid(&data, study).await;
    let (dims_b, row_b, col_b) = grid(&nd, &new).await;
    assert_eq!((h, w), dims_b, "curated size");
    let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let (flip_cols, flip_rows) = (dot(row_a, row_b) < -0.999, dot(col_a, col_b) < -0.999);
    assert!(flip_cols || dot(row_a, row_b) > 0.999, "rows run along the same line");
    assert!(flip_rows || dot(col_a, col_b) > 0.999, "columns run along the same line");
    let want = images(&data, "frames", "pixels", study, None).await;
    let got = images(&nd, "frames", "pixels", &new, None).await;
    assert_eq!(got.len(), want.len(), "slices × frames");
    for (k, px) in &got {
        let placed: Vec<u8> = (0..h * w)
            .flat_map(|i| {
                let (r, c) = (i / w, i % w);
                let (r, c) = (if flip_rows { h - 1 - r } else { r }, if flip_cols { w - 1 - c } else { c });
                px[2 * (r * w + c)..2 * (r * w + c) + 2].to_vec()
            })
            .collect();
        assert!(placed == want[k], "{k:?}: the pixels differ from the DICOM ingest's at the same patient positions");
    }
    let pos = |d: &str, s: &str| {
        let q = format!("SELECT DISTINCT slice_index, slice_location_mm FROM frames WHERE study_id = '{s}' ORDER BY slice_index");
        let d = d.to_string();
        async move { f64s(&sql(&d, &q).await, "slice_location_mm") }
    };
    let (a, b) = (pos(&data, study).await, pos(&nd, &new).await);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x.unwrap() - y.unwrap()).abs() < 0.01, "slice positions {a:?} vs {b:?}");
    }
}
