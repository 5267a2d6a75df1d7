//! A public model's contract reproduces the model's own pre-processing: myopari 0.1.6's tiramisu
//! (ACDC) labelled through `cinestream label` with `pipelines/models/tiramisu_acdc.toml`, and by
//! myopari's own pipeline written out in Python from its source (`myopari_reference.py`:
//! numpy + onnxruntime) on the same phantom frames, agree on at least 99% of the mask pixels,
//! and on at least 95% of those either calls foreground (the per-image contract shipped before
//! agreed on 98.9% of all pixels but only 51.7% of those; BENCHMARKS.md).
//!
//! The model comes from the myopari wheel on PyPI (`scripts/test.sh` extracts it and sets
//! `CINESTREAM_TIRAMISU_ONNX`).

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tiramisu_contract_reproduces_myoparis_own_preprocessing() {
    let Ok(model) = std::env::var("CINESTREAM_TIRAMISU_ONNX") else {
        assert!(
            std::env::var("CINESTREAM_REQUIRE_TOOLS").is_err(),
            "CINESTREAM_TIRAMISU_ONNX is not set: scripts/test.sh extracts myopari 0.1.6's tiramisu_acdc_fp32.onnx from its wheel"
        );
        eprintln!("SKIPPED the_tiramisu_contract_reproduces_myoparis_own_preprocessing: set CINESTREAM_TIRAMISU_ONNX");
        return;
    };
    let Some(()) = crate::label_onnx::onnx_tools("the_tiramisu_contract_reproduces_myoparis_own_preprocessing") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, data, _) = phantom_data(dir.path(), 1, 44, "").await;
    let contract = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/models/tiramisu_acdc.toml");
    // Two whole time points (every slice: the contract scales and crops each time point's stack).
    let (ok, _, err) = cli(&[
        "-q",
        "label",
        "--data",
        &data,
        "--model",
        &model,
        "--contract",
        contract,
        "--labeller",
        "tiramisu",
        "--where",
        "frame_index IN (0, 10)",
        "--batch",
        "8",
    ]);
    assert!(ok, "{err}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/myopari_reference.py");
    let out = std::process::Command::new("python3").args([script, &data, "1", "tiramisu", &model]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (same, pixels) = (r["same"].as_f64().unwrap(), r["pixels"].as_f64().unwrap());
    eprintln!(
        "cinestream and myopari's own pipeline agree on {same} of {pixels} pixels ({:.3}%), {} frames",
        100.0 * same / pixels,
        r["frames"]
    );
    assert!(r["frames"].as_u64().unwrap() >= 10, "{r}");
    assert!(same / pixels >= 0.99, "the contract must give myopari's masks on ≥ 99% of pixels: {r}");
}
