//! The ONNX engine applies a model's contract exactly: a model whose output is known
//! analytically (`scripts/onnx_level_model.py`: the argmax is the intensity level of each
//! pixel), in NCHW and NHWC, with a non-identity class map, transposed or not, and each size
//! policy, labels synthetic frames with exactly the expected masks and counts on the curated
//! grid. Contract errors and a missing runtime fail clearly and commit nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};

use crate::common::*;
use cinestream::tables::writer::ShardConfig;
use cinestream::tables::{self, RunInfo, ShardSet, TableChange, commit_run};

/// The ONNX Runtime library and the `onnx` package, or `None` (said) when absent outside CI.
pub fn onnx_tools(test: &str) -> Option<()> {
    let ok = std::process::Command::new("python3").args(["-c", "import onnx, onnxruntime"]).status().is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    if std::env::var("CINESTREAM_REQUIRE_TOOLS").is_ok() {
        panic!(
            "{test}: CINESTREAM_REQUIRE_TOOLS is set but python3 cannot import onnx and onnxruntime (pip install onnx onnxruntime==1.31.1)"
        );
    }
    eprintln!("SKIPPED {test}: pip install onnx onnxruntime==1.31.1");
    None
}

/// The intensity level (0–3) of pixel (r, c) of frame `t` of a synthetic image: blocks, each
/// image holding every level.
fn level(r: usize, c: usize, t: usize) -> u16 {
    (((r / 5) + (c / 7) + t) % 4) as u16
}

/// Synthetic studies: name → (height, width).
const STUDIES: [(&str, usize, usize); 5] = [("a", 40, 56), ("b", 56, 40), ("c", 56, 56), ("d", 40, 40), ("e", 37, 50)];

/// A data prefix whose `frames` hold the synthetic studies (2 slices × 2 frames each).
async fn synthetic_frames(data: &str) {
    let out = open(data);
    let mut shards = ShardSet::new(&out, "synthetic", &ShardConfig::default(), &tables::INGEST, &Default::default());
    for (id, h, w) in STUDIES {
        let keys: Vec<(i32, i32)> = (0..2).flat_map(|k| (0..2).map(move |t| (k, t))).collect();
        let n = keys.len();
        let pixels: Vec<Vec<u8>> =
            keys.iter().map(|(_, t)| (0..h * w).flat_map(|p| (level(p / w, p % w, *t as usize) * 1000).to_le_bytes()).collect()).collect();
        let f = |v: f64| Arc::new(Float64Array::from(vec![v; n])) as ArrayRef;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![id; n])),
            Arc::new(StringArray::from(vec![id; n])),
            Arc::new(StringArray::from(vec![Some("test"); n])),
            Arc::new(Int32Array::from_iter_values(keys.iter().map(|k| k.0))),
            Arc::new(Int32Array::from_iter_values(keys.iter().map(|k| k.1))),
            Arc::new(Float64Array::from_iter_values(keys.iter().map(|k| -8.0 * k.0 as f64))),
            Arc::new(Float64Array::from_iter(keys.iter().map(|k| Some(40.0 * k.1 as f64)))),
            Arc::new(Int32Array::from(vec![h as i32; n])),
            Arc::new(Int32Array::from(vec![w as i32; n])),
            f(1.5),
            f(1.5),
            f(8.0),
            f(8.0),
            f(1.5),
            Arc::new(StringArray::from_iter_values(keys.iter().map(|k| format!("{id}/{}-{}.dcm", k.0, k.1)))),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(BooleanArray::from(vec![false; n])),
            Arc::new(BinaryArray::from_iter_values(pixels.iter().map(|p| p.as_slice()))),
        ];
        shards.write(&tables::FRAMES, RecordBatch::try_new(tables::FRAMES.schema(), cols).unwrap()).await.unwrap();
    }
    let changes = shards.finish().await.unwrap().into_iter().map(|(t, adds)| (t, TableChange { adds, ..Default::default() })).collect();
    let run = RunInfo {
        app_id: "synthetic-frames".into(),
        command: "test".into(),
        run_id: "synthetic".into(),
        summary: serde_json::json!({}),
        config: serde_json::json!({}),
    };
    commit_run(&out, &run, &tables::INGEST, changes).await.unwrap();
}

/// Our class of each model class (the model's class is the level).
const CLASS_MAP: [u8; 4] = [0, 3, 1, 2];

pub fn contract(layout: &str, size: &str, transpose: bool) -> String {
    format!(
        "input = \"image\"\noutput = \"scores\"\nlayout = \"{layout}\"\ntranspose = {transpose}\noutput_kind = \"logits\"\nclasses = {CLASS_MAP:?}\nsize = {size}\n\
         intensity = {{ scaling = {{ kind = \"min_max\", over = \"image\" }} }}\n"
    )
}

/// The mask the contract must give for frame `t` of an `h × w` study: the mapped level, and
/// background outside a centred square crop of side `crop`.
fn expected(h: usize, w: usize, t: usize, crop: Option<usize>) -> Vec<u8> {
    (0..h * w)
        .map(|p| {
            let (r, c) = (p / w, p % w);
            let inside = crop.is_none_or(|s| (h - s) / 2 <= r && r < (h - s) / 2 + s && (w - s) / 2 <= c && c < (w - s) / 2 + s);
            if inside { CLASS_MAP[level(r, c, t) as usize] } else { 0 }
        })
        .collect()
}

/// Writes the level model (`scripts/onnx_level_model.py`) in `layout` to `path`.
pub fn level_model(path: &Path, layout: &str) {
    let st = std::process::Command::new("python3").args(["scripts/onnx_level_model.py", path.to_str().unwrap(), layout]).status().unwrap();
    assert!(st.success(), "scripts/onnx_level_model.py {layout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onnx_engine_applies_the_contract_exactly() {
    let Some(()) = onnx_tools("the_onnx_engine_applies_the_contract_exactly") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    synthetic_frames(&data).await;
    let model = |layout: &str| {
        let p = dir.path().join(format!("levels_{layout}.onnx"));
        level_model(&p, layout);
        p.display().to_string()
    };
    let models: HashMap<&str, String> = [("nchw", model("nchw")), ("nhwc", model("nhwc"))].into();
    // (labeller, layout, size policy, transpose, studies, crop side). Pad-resize and crop-resize
    // at scale 1 (S = the longer / shorter side, even differences) place pixels exactly.
    let runs = [
        ("pad_nchw", "nchw", "{ kind = \"pad_resize\", size = 56 }", false, "'a', 'b', 'c'", None),
        ("pad_nhwc", "nhwc", "{ kind = \"pad_resize\", size = 56 }", false, "'a', 'b', 'c'", None),
        ("crop_nchw", "nchw", "{ kind = \"crop_resize\", size = 40 }", false, "'a', 'b', 'd'", Some(40)),
        ("crop_nhwc", "nhwc", "{ kind = \"crop_resize\", size = 40 }", false, "'a', 'b', 'd'", Some(40)),
        ("multiple_nchw", "nchw", "{ kind = \"pad_multiple\", multiple = 16 }", false, "'a', 'b', 'c', 'd', 'e'", None),
        ("multiple_nhwc_t", "nhwc", "{ kind = \"pad_multiple\", multiple = 16 }", true, "'a', 'b', 'c', 'd', 'e'", None),
    ];
    for (labeller, layout, size, transpose, studies, crop) in runs {
        let c = dir.path().join(format!("{labeller}.toml"));
        std::fs::write(&c, contract(layout, size, transpose)).unwrap();
        let filter = format!("study_id IN ({studies})");
        let (ok, out, err) = cli(&[
            "label",
            "--data",
            &data,
            "--model",
            &models[layout],
            "--contract",
            c.to_str().unwrap(),
            "--labeller",
            labeller,
            "--where",
            &filter,
        ]);
        assert!(ok, "{labeller}: {err}");
        assert!(out.contains("label summary"), "{out}");
        let rows = sql(&data, &format!("SELECT study_id, frame_index, height, width, lv_pixels, my_pixels, rv_pixels, mask FROM labels WHERE labeller = '{labeller}'")).await;
        let mut n = 0;
        for b in &rows {
            let ids = strs(std::slice::from_ref(b), "study_id");
            let ints = |name: &str| i64s(std::slice::from_ref(b), name);
            let (t, h, w, lv, my, rv) =
                (ints("frame_index"), ints("height"), ints("width"), ints("lv_pixels"), ints("my_pixels"), ints("rv_pixels"));
            let masks = b.column_by_name("mask").unwrap().as_binary::<i32>();
            for i in 0..b.num_rows() {
                let want = expected(h[i] as usize, w[i] as usize, t[i] as usize, crop);
                assert!(
                    masks.value(i) == want.as_slice(),
                    "{labeller}: study {:?} frame {}: the mask differs from the contract's ({} of {} pixels)",
                    ids[i],
                    t[i],
                    masks.value(i).iter().zip(&want).filter(|(a, b)| a != b).count(),
                    want.len()
                );
                let count = |class: u8| want.iter().filter(|v| **v == class).count() as i64;
                assert_eq!((lv[i], my[i], rv[i]), (count(1), count(2), count(3)), "{labeller}: counts");
                n += 1;
            }
        }
        assert_eq!(n, 4 * studies.split(',').count(), "{labeller}: every frame labelled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_contract_errors_and_a_missing_runtime_fail_clearly() {
    let Some(()) = onnx_tools("onnx_contract_errors_and_a_missing_runtime_fail_clearly") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    synthetic_frames(&data).await;
    let model = dir.path().join("levels.onnx");
    level_model(&model, "nchw");
    let model = model.display().to_string();
    let good = contract("nchw", "{ kind = \"pad_multiple\", multiple = 16 }", false);
    let attempt = |text: &str, env: Option<(&str, &str)>| {
        let c = dir.path().join("c.toml");
        std::fs::write(&c, text).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cinestream"));
        cmd.args(["label", "--data", &data, "--model", &model, "--contract", c.to_str().unwrap(), "--labeller", "x"]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = attempt(&good.replace("input = \"image\"", "input = \"pixels\""), None);
    assert!(!ok && err.contains("no input `pixels`") && err.contains("its inputs: image"), "{err}");
    let (ok, err) = attempt(&good.replace("output = \"scores\"", "output = \"probs\""), None);
    assert!(!ok && err.contains("no output `probs`"), "{err}");
    let (ok, err) = attempt(&format!("{good}channels = 3\n"), None);
    assert!(!ok && err.contains("has 1 channels"), "{err}");
    let (ok, err) = attempt(&good.replace("classes = [0, 3, 1, 2]", "classes = [0, 3]"), None);
    assert!(!ok && err.contains("values"), "a class map shorter than the model's output: {err}");
    let (ok, err) = attempt(&good, Some(("ORT_DYLIB_PATH", "/no/such/libonnxruntime.so.1.31.1")));
    assert!(!ok && err.contains("pip install onnxruntime==1.31.1") && err.contains("/no/such"), "{err}");
    let (ok, err) = attempt(&format!("{good}colour = \"red\"\n"), None);
    assert!(!ok && err.contains("colour"), "{err}");
    assert!(!Path::new(&data).join("labels").join("_delta_log").join("00000000000000000002.json").exists(), "nothing committed to labels");
    let rows = sql(&data, "SELECT count(*) AS n FROM labels").await;
    assert_eq!(i64s(&rows, "n"), vec![0]);
}
