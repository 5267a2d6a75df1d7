//! Labelling benchmark: `cinestream label` with the ONNX engine on the CPU against a Python
//! script (`benches/baseline_label.py`: onnxruntime + pyarrow + numpy) running the same model on
//! the same frames with the same batch size and pre-processing, reading and writing Parquet, in
//! the same run; and the Burn engine on the same frames with the same network.
//!
//!     cargo bench --bench label                     # BENCH_DIR (default /var/tmp/cinestream-bench)
//!     cargo bench --profile dev --bench label       # no release build (our code at opt-level 1)
//!     BENCH_STUDIES=12 BENCH_REPEAT=3 BENCH_BATCH=8 cargo bench --bench label
//!
//! Set-up (once per `BENCH_DIR`): `cinestream synth` + `ingest` of `BENCH_STUDIES` phantom
//! studies, a model of the phantom demo's shape (`pipelines/phantom-demo.toml`'s network: width
//! 8, one block per stage, 128², per-study scaling) trained for one short epoch — the weights do
//! not change the work, only which pixels are which class — then `cinestream export` and
//! `scripts/export_onnx.py` (the PyTorch twin and `torch.onnx.export`) for the ONNX file. Then,
//! `BENCH_REPEAT` times alternately: the ONNX engine, the Python script, the Burn engine, each as
//! its own process timed end to end (start-up, reading, commits included). Each run labels
//! every frame under a fresh labeller name.
//!
//! Needs python3 with onnxruntime 1.31.1, pyarrow, numpy and deltalake (`scripts/test.sh`
//! installs them) and a Python with torch, safetensors and onnx for the export
//! (`CINESTREAM_TORCH_PYTHON`, default `/var/tmp/cinestream-torch/bin/python`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One timed run: wall seconds of the process and what it printed.
struct Run {
    seconds: f64,
    stdout: String,
}

fn run(cmd: &mut Command) -> Run {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let seconds = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    Run { seconds, stdout }
}

/// The number after `key` in `text` (e.g. "model busy 97%" → 97).
fn number_after(text: &str, key: &str) -> f64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no `{key}` in:\n{text}")) + key.len();
    let digits: String = text[at..].trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after `{key}` in:\n{text}"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Phantom data ingested with its truth masks, a demo-shaped model and its ONNX export.
fn set_up(bin: &str, dir: &Path, studies: usize) -> (String, String, PathBuf) {
    let (raw, data, export) = (dir.join("raw"), dir.join("data"), dir.join("export"));
    let onnx = export.join("model.onnx");
    let model = data.join("models/bench-demo/model");
    if onnx.exists() {
        return (data.display().to_string(), model.display().to_string(), onnx);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    eprintln!("generating {studies} phantom studies, ingesting, training and exporting a model in {}", dir.display());
    let (raw_s, data_s) = (raw.display().to_string(), data.display().to_string());
    run(Command::new(bin).args(["-q", "synth", "--out", &raw_s, "--studies", &studies.to_string(), "--seed", "2026"]));
    run(Command::new(bin).args(["-q", "ingest", "--input", &raw_s, "--output", &data_s, "--labels", &format!("{raw_s}/truth")]));
    let pipeline = dir.join("bench-demo.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[train]
name = "bench-demo"
train = {{ name = "bench_train", query = "subset_images", params = {{ images = "160", seed = "1", pool_split = "train" }} }}
valid = {{ name = "bench_valid", query = "subset_images", params = {{ images = "16", seed = "1", pool_split = "validate" }} }}
batch_size = 8
image_size = 128
intensity = "study"
cache = {{ dir = "{}", max_mib = 256 }}
stages = [ {{ epochs = 1, lr_max = 1e-2 }} ]

[model]
encoder = "resnet34"
width = 8
blocks = [1, 1, 1, 1]
classes = 3
"#,
            dir.join("cache").display()
        ),
    )
    .unwrap();
    run(Command::new(bin).args(["-q", "train", pipeline.to_str().unwrap(), "--data", &data_s]));
    let model_s = model.display().to_string();
    run(Command::new(bin).args(["export", "--model", &model_s, "--out", export.to_str().unwrap()]));
    let python = std::env::var("CINESTREAM_TORCH_PYTHON").unwrap_or_else(|_| "/var/tmp/cinestream-torch/bin/python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/export_onnx.py");
    run(Command::new(python).args([script, export.to_str().unwrap()]));
    (data_s, model_s, onnx)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_cinestream");
    let dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/cinestream-bench".into())).join("label");
    let studies: usize = env_or("BENCH_STUDIES", 12);
    let repeat: usize = env_or("BENCH_REPEAT", 3);
    let batch: usize = env_or("BENCH_BATCH", 8);
    let (data, model, onnx) = set_up(bin, &dir, studies);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/baseline_label.py");
    let onnx_s = onnx.display().to_string();
    let batch_s = batch.to_string();

    // Warm the page cache and the runtime libraries once, untimed.
    run(Command::new(bin).args([
        "-q",
        "label",
        "--data",
        &data,
        "--model",
        &onnx_s,
        "--labeller",
        "warm-up",
        "--batch",
        &batch_s,
        "--overwrite",
    ]));

    let (mut rust, mut python, mut burn) = (Vec::new(), Vec::new(), Vec::new());
    let (mut frames, mut rust_busy, mut python_busy) = (0.0, Vec::new(), Vec::new());
    let mut counts = (String::new(), String::new());
    // Labeller names no earlier bench run used (a labeller's studies are labelled once).
    let tag = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for i in 0..repeat {
        let onnx_labeller = format!("onnx-{tag}-{i}");
        let r =
            run(Command::new(bin).args(["label", "--data", &data, "--model", &onnx_s, "--labeller", &onnx_labeller, "--batch", &batch_s]));
        let line = r.stdout.lines().find(|l| l.trim_start().starts_with("studies labelled")).expect("a label summary");
        frames = number_after(line, "(");
        assert!(frames > 0.0, "the run labelled nothing:\n{}", r.stdout);
        rust_busy.push(number_after(&r.stdout, "model busy"));
        eprintln!("run {i}: cinestream (ONNX Runtime) {:.2} s", r.seconds);
        rust.push(r.seconds);

        let out = dir.join(format!("python-{i}"));
        let _ = std::fs::remove_dir_all(&out);
        let p = run(Command::new("python3").args([script, &data, &onnx_s, out.to_str().unwrap(), "--batch", &batch_s]));
        python_busy.push(number_after(&p.stdout, "model busy"));
        eprintln!("run {i}: python (onnxruntime + pyarrow) {:.2} s", p.seconds);
        python.push(p.seconds);
        if i == 0 {
            let q = format!(
                "SELECT sum(lv_pixels) AS lv, sum(my_pixels) AS my, sum(rv_pixels) AS rv FROM labels WHERE labeller = '{onnx_labeller}'"
            );
            counts = (run(Command::new(bin).args(["sql", "--data", &data, &q])).stdout, p.stdout.clone());
        }

        let b = run(Command::new(bin).args([
            "label",
            "--data",
            &data,
            "--model",
            &model,
            "--labeller",
            &format!("burn-{tag}-{i}"),
            "--batch",
            &batch_s,
        ]));
        eprintln!("run {i}: cinestream (Burn flex) {:.2} s", b.seconds);
        burn.push(b.seconds);
    }

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "\nlabel benchmark ({cores} cores): {studies} phantom studies, {frames} frames, batch {batch}, demo-shaped U-Net at 128², medians of {repeat} alternating runs, each process timed end to end"
    );
    let (r, p, b) = (median(rust), median(python), median(burn));
    println!("  cinestream label, ONNX Runtime   {:>7.1} images/s ({r:.2} s), model busy {:.0}% (median)", frames / r, median(rust_busy));
    println!("  python (onnxruntime + pyarrow)   {:>7.1} images/s ({p:.2} s), model busy {:.0}% (median)", frames / p, median(python_busy));
    println!("  cinestream label, Burn flex      {:>7.1} images/s ({b:.2} s)", frames / b);
    println!("  ratio ONNX engine / python       {:>7.2}×", p / r);
    println!(
        "  pixels of the first runs (same model, same frames):\n    cinestream: {}\n    python:     {}",
        counts.0.trim(),
        counts.1.trim()
    );
}
