//! Two engines agree: a U-Net we trained, exported (`cinestream export`, then
//! `scripts/export_onnx.py` through the PyTorch twin and `torch.onnx.export`), labels the same
//! phantom studies on the S3 server with the Burn engine and with the ONNX engine; the masks
//! agree on ≥ 99.9% of pixels and every study's EDV and ESV within 0.5%.

use std::collections::HashMap;

use arrow::array::AsArray;

use crate::common::*;
use crate::train::pipeline;

/// The Python with torch, safetensors and onnx (scripts/test.sh sets it), or `None` (said).
fn torch_python(test: &str) -> Option<String> {
    let python = std::env::var("CINESTREAM_TORCH_PYTHON").unwrap_or_else(|_| "/var/tmp/cinestream-torch/bin/python".into());
    let ok = std::process::Command::new(&python).args(["-c", "import torch, safetensors, onnx"]).status().is_ok_and(|s| s.success());
    let runtime = std::process::Command::new("python3").args(["-c", "import onnxruntime"]).status().is_ok_and(|s| s.success());
    match (ok && runtime, std::env::var("CINESTREAM_REQUIRE_TOOLS").is_ok()) {
        (true, _) => Some(python),
        (false, true) => panic!(
            "{test}: CINESTREAM_REQUIRE_TOOLS is set but `{python}` cannot import torch, safetensors and onnx, or python3 cannot import onnxruntime (scripts/test.sh installs them)"
        ),
        (false, false) => {
            eprintln!(
                "SKIPPED {test}: needs CINESTREAM_TORCH_PYTHON with torch, safetensors, onnx, and python3 with onnxruntime (scripts/test.sh installs them)"
            );
            None
        }
    }
}

/// (study, edv_ml, esv_ml) of one labeller, by the saved `volumes` query.
async fn volumes(data: &str, labeller: &str) -> HashMap<String, (f64, f64)> {
    let b = sql(data, &format!("SELECT study_id, edv_ml, esv_ml FROM volumes WHERE labeller = '{labeller}'")).await;
    let (ids, edv, esv) = (strs(&b, "study_id"), f64s(&b, "edv_ml"), f64s(&b, "esv_ml"));
    ids.into_iter().zip(edv.into_iter().zip(esv)).map(|(id, (d, s))| (id.unwrap(), (d.unwrap(), s.unwrap()))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_and_onnx_engines_label_alike_on_s3() {
    let test = "burn_and_onnx_engines_label_alike_on_s3";
    let Some(bucket) = s3_bucket(test) else { return };
    let Some(python) = torch_python(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = format!("s3://{bucket}/{}", unique("engines"));
    let (raw, data) = (format!("{root}/raw"), format!("{root}/data"));
    synth(&raw, 4, 5, "none").await;
    ingest_phantom(&raw, &data).await;

    // A briefly trained model (its masks are not trivial: checked below).
    let p = pipeline(dir.path(), "tiny", 160, 2, 64, 0);
    let (ok, _, err) = cli(&["-q", "train", &p, "--data", &data]);
    assert!(ok, "{err}");
    let model = format!("{data}/models/tiny/model");
    let export = dir.path().join("export");
    let (ok, out, err) = cli(&["export", "--model", &model, "--out", export.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("model.safetensors") && out.contains("model.toml"), "{out}");
    let run = std::process::Command::new(&python).args(["scripts/export_onnx.py", export.to_str().unwrap()]).output().unwrap();
    assert!(run.status.success(), "export_onnx.py: {}", String::from_utf8_lossy(&run.stderr));
    let onnx = export.join("model.onnx");

    for (labeller, model) in [("burn", model.as_str()), ("onnx", onnx.to_str().unwrap())] {
        let (ok, out, err) = cli(&["label", "--data", &data, "--model", model, "--labeller", labeller, "--batch", "16"]);
        assert!(ok, "{labeller}: {err}");
        assert!(out.contains("label summary"), "{out}");
    }

    let rows = sql(
        &data,
        "SELECT a.mask AS a, b.mask AS b FROM labels a JOIN labels b \
         ON a.study_id = b.study_id AND a.slice_index = b.slice_index AND a.frame_index = b.frame_index \
         WHERE a.labeller = 'burn' AND b.labeller = 'onnx'",
    )
    .await;
    let (mut same, mut total, mut frames, mut labelled) = (0usize, 0usize, 0usize, [0usize; 3]);
    for b in &rows {
        let (x, y) = (b.column_by_name("a").unwrap().as_binary::<i32>(), b.column_by_name("b").unwrap().as_binary::<i32>());
        for i in 0..b.num_rows() {
            let (x, y) = (x.value(i), y.value(i));
            assert_eq!(x.len(), y.len(), "masks on the same grid");
            same += x.iter().zip(y).filter(|(p, q)| p == q).count();
            total += x.len();
            frames += 1;
            x.iter().for_each(|&c| labelled[usize::from(c.min(2))] += 1);
        }
    }
    let all = i64s(&sql(&data, "SELECT count(*) AS n FROM frames").await, "n")[0] as usize;
    assert_eq!(frames, all, "both engines labelled every frame once");
    let agree = same as f64 / total as f64;
    println!("engines: {frames} frames, {total} pixels, {:.5}% agree; LV {} px, MY {} px (Burn)", 100.0 * agree, labelled[1], labelled[2]);
    assert!(
        labelled[1] > total / 500 && labelled[2] > total / 500,
        "the model labels LV and MY ({labelled:?} of {total} px): the comparison would be trivial otherwise"
    );
    assert!(agree >= 0.999, "the engines' masks agree on {:.4}% of pixels (goal ≥ 99.9%)", 100.0 * agree);

    let (burn, onnx) = (volumes(&data, "burn").await, volumes(&data, "onnx").await);
    assert_eq!(burn.len(), 4, "{burn:?}");
    for (study, (edv, esv)) in &burn {
        let (o_edv, o_esv) = onnx[study];
        println!("{study}: EDV {edv:.2} / {o_edv:.2} mL, ESV {esv:.2} / {o_esv:.2} mL (Burn / ONNX)");
        assert!(
            *edv > 0.0 && rel(o_edv, *edv) <= 0.005 && rel(o_esv, *esv) <= 0.005,
            "{study}: Burn EDV {edv} ESV {esv}, ONNX EDV {o_edv} ESV {o_esv}"
        );
    }
}
