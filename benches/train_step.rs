//! U-Net step times on this machine's CPU: Burn flex (the CLI's CPU backend) beside PyTorch eager running the same network (`benches/torch_unet_step.py` over
//! the PyTorch twin `scripts/torch_unet.py`) on the same CPU in the same run.
//!
//! - **training step**: forward, loss, backward and the AdamW step;
//! - **inference**: eval-mode forward passes without autodiff, as the Burn engine of
//!   `cinestream label` runs them (batch 8, its default).
//!
//! Configurations: the tiny one the tests train (width 8, one block per stage, 96², batch 8),
//! the phantom demo's (`pipelines/phantom-demo.toml`: width 8, 128², batch 8) and the paper's
//! real one (ResNet34 U-Net, width 64, 256², batch 32 for training).
//!
//!     cargo bench --bench train_step                  # all of them
//!     BENCH_REAL_STEPS=2 cargo bench --bench train_step
//!     cargo bench --profile dev --bench train_step    # no release build: Burn and its kernels
//!                                                     # are opt-level 2 in the dev profile too
//!
//! `BENCH_ROWS=train:demo,infer:real` runs only those rows (`train` or `infer`, then `tiny`,
//! `demo` or `real`), for a profile of one of them.
//!
//! `BENCH_DEVICE=cuda` (a `--features cuda` build, `scripts/gpu-check.sh`) runs the same on the
//! GPU against PyTorch on the same GPU, after checking that CUDA's logits agree with flex's on
//! the same weights and input.
//!
//! Each configuration runs warm-up steps (2; 1 for the real one, whose training step takes
//! minutes on a CPU), then times `steps` steps (median reported). The PyTorch side runs when
//! `CINESTREAM_TORCH_PYTHON` (default `/var/tmp/cinestream-torch/bin/python`) imports torch,
//! with as many threads as this machine has cores; `BENCH_SKIP_TORCH=1` skips it.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::{Distribution, Int, Tensor};
use cinestream::model::losses::{self, LossKind};
use cinestream::model::{EncoderKind, ModelConfig, SegModel};
use cinestream::train::optim::AdamW;

/// Median seconds of `steps` calls of `f` after `warmup` untimed ones.
fn median_time(steps: usize, warmup: usize, mut f: impl FnMut()) -> f64 {
    (0..warmup).for_each(|_| f());
    let mut times: Vec<f64> = (0..steps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One row of the table: a network at a size and batch, timed over `steps` after `warmup`.
#[derive(Clone, Copy)]
struct Row<'a> {
    name: &'a str,
    cfg: &'a ModelConfig,
    size: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
}

fn time_steps<B: burn::tensor::backend::AutodiffBackend>(device: &B::Device, row: Row) {
    let Row { name, cfg, size, batch, steps, warmup } = row;
    let model: SegModel<B> = cfg.init(device);
    let mut optim = AdamW::fastai(1e-2).init::<B, SegModel<B>>();
    let x = Tensor::<B, 4>::random([batch, 1, size, size], Distribution::Uniform(0.0, 1.0), device);
    let y = Tensor::<B, 4>::random([batch, 1, size, size], Distribution::Uniform(0.0, 3.0), device).int().reshape([batch, size, size]);
    let y: Tensor<B, 3, Int> = y.clamp(0, 2);
    // In an Option so that the step can take it by value (AdamW updates tensors in place
    // only where nothing else holds them).
    let mut slot = Some(model);
    let median = median_time(steps, warmup, || {
        let model = slot.take().expect("the model");
        let loss = losses::loss(LossKind::CrossEntropy, model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(1e-3, model, grads);
        // Force the work to finish before the clock stops.
        let _ = model.valid().decoder.head.conv.weight.val().into_data();
        slot = Some(model);
    });
    let model = slot.expect("the model");
    println!(
        "{name:<8} width {:>2} blocks {:?} {size}² batch {batch:>2}: {:.3} s/step median of {steps} ({:.1} images/s), {:.1} M parameters",
        cfg.width,
        cfg.blocks,
        median,
        batch as f64 / median,
        model.num_params() as f64 / 1e6
    );
}

/// Eval-mode forward passes on a backend without autodiff (median reported).
fn time_infer<B: burn::tensor::backend::Backend>(device: &B::Device, row: Row) {
    let Row { name, cfg, size, batch, steps, warmup } = row;
    let model: SegModel<B> = cfg.init(device);
    let x = Tensor::<B, 4>::random([batch, 1, size, size], Distribution::Uniform(0.0, 1.0), device);
    // Reading the output back forces the work, as the labelling engine does.
    let median = median_time(steps, warmup, || drop(model.forward(x.clone()).into_data()));
    println!(
        "{name:<8} width {:>2} blocks {:?} {size}² batch {batch:>2}: {median:.3} s/batch median of {steps} ({:.1} images/s)",
        cfg.width,
        cfg.blocks,
        batch as f64 / median
    );
}

/// The same step in PyTorch eager on the CPU (`benches/torch_unet_step.py`), printed as it
/// reports it; `None` when no torch is at hand.
fn torch(device: &str, mode: &str, cfg: &ModelConfig, size: usize, batch: usize, steps: usize) -> Option<()> {
    if std::env::var("BENCH_SKIP_TORCH").is_ok() {
        return None;
    }
    let python = std::env::var("CINESTREAM_TORCH_PYTHON").unwrap_or_else(|_| "/var/tmp/cinestream-torch/bin/python".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let blocks = cfg.blocks.map(|b| b.to_string()).join(",");
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_unet_step.py"))
        .args(["--device", device, "--mode", mode, "--threads", &cores.to_string(), "--steps", &steps.to_string()])
        .args(["--batch", &batch.to_string(), "--size", &size.to_string(), "--width", &cfg.width.to_string(), "--blocks", &blocks])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            print!("{}", String::from_utf8_lossy(&o.stdout));
            Some(())
        }
        Ok(o) => {
            println!("pytorch {mode}: failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default());
            None
        }
        Err(e) => {
            println!("pytorch: `{python}` did not start ({e}); set CINESTREAM_TORCH_PYTHON");
            None
        }
    }
}

/// The same weights and input through flex and through `B`: the largest logit difference and
/// the share of pixels whose class agrees. Exits non-zero where they disagree.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn agreement<B: burn::tensor::backend::Backend>(device: &B::Device, name: &str, cfg: &ModelConfig) {
    let cpu: SegModel<Flex> = cfg.init(&Default::default());
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<Flex>::record(&recorder, cpu.clone().into_record(), ()).expect("encoding the weights");
    let record = Recorder::<B>::load(&recorder, bytes, device).expect("decoding the weights");
    let other: SegModel<B> = cfg.init::<B>(device).load_record(record);
    let x = Tensor::<Flex, 4>::random([4, 1, 128, 128], Distribution::Uniform(0.0, 1.0), &Default::default());
    let want = cpu.forward(x.clone());
    let got = Tensor::<Flex, 4>::from_data(other.forward(Tensor::from_data(x.into_data(), device)).into_data(), &Default::default());
    let scale = want.clone().abs().max().into_scalar().max(1.0);
    let diff = (got.clone() - want.clone()).abs().max().into_scalar() / scale;
    let same = got.argmax(1).equal(want.argmax(1)).int().float().mean().into_scalar();
    println!(
        "{name} against flex, same weights and input (4 × 128²): largest logit difference {diff:.2e} of the largest logit, {:.4}% of pixels the same class",
        100.0 * same
    );
    if diff > 1e-3 || same < 0.999 {
        eprintln!("{name} and flex disagree");
        std::process::exit(1);
    }
}

/// Whether `BENCH_ROWS` (default: every row) names `mode:name`.
fn wanted(mode: &str, name: &str) -> bool {
    std::env::var("BENCH_ROWS").map(|rows| rows.split(',').any(|r| r.trim() == format!("{mode}:{name}"))).unwrap_or(true)
}

/// Every row on one backend: `label` names it, `torch_device` is PyTorch's name for its device.
fn run<B: burn::tensor::backend::Backend>(device: &B::Device, label: &str, torch_device: &str) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let tiny = ModelConfig { encoder: EncoderKind::Resnet34, width: 8, blocks: [1, 1, 1, 1], classes: 3 };
    let real = ModelConfig::default();
    let real_steps: usize = std::env::var("BENCH_REAL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let row = |name, cfg, size, batch, steps| Row { name, cfg, size, batch, steps, warmup: if name == "real" { 1 } else { 2 } };
    let train = [row("tiny", &tiny, 96, 8, 10), row("demo", &tiny, 128, 8, 10), row("real", &real, 256, 32, real_steps)];
    let train: Vec<Row> = train.into_iter().filter(|r| r.steps > 0 && wanted("train", r.name)).collect();
    println!("\nU-Net step benchmark ({cores} cores, {torch_device})");

    println!("training step, {label}:");
    train.iter().for_each(|r| time_steps::<Autodiff<B>>(device, *r));
    println!("training step, PyTorch eager (same network, same device):");
    for r in &train {
        torch(torch_device, "train", r.cfg, r.size, r.batch, if r.name == "real" { r.steps.max(3) } else { r.steps });
    }

    let infer = [row("demo", &tiny, 128, 8, 10), row("real", &real, 256, 8, 5)];
    let infer: Vec<Row> = infer.into_iter().filter(|r| wanted("infer", r.name)).collect();
    println!("inference (eval, batch 8, as `cinestream label`), {label}:");
    infer.iter().for_each(|r| time_infer::<B>(device, *r));
    println!("inference, PyTorch eager (no_grad, eval):");
    for r in &infer {
        torch(torch_device, "infer", r.cfg, r.size, r.batch, r.steps);
    }
}

fn main() {
    // As the CLI does.
    cinestream_cpu_kernels::keep_freed_tensor_memory();
    match std::env::var("BENCH_DEVICE").as_deref() {
        Err(_) | Ok("cpu") => run::<Flex>(&Default::default(), "Burn flex (the CLI's CPU backend)", "cpu"),
        #[cfg(feature = "cuda")]
        Ok("cuda") => {
            type Cuda = burn::backend::Cuda<f32>;
            let device = Default::default();
            let tiny = ModelConfig { encoder: EncoderKind::Resnet34, width: 8, blocks: [1, 1, 1, 1], classes: 3 };
            agreement::<Cuda>(&device, "Burn CUDA, tiny network", &tiny);
            agreement::<Cuda>(&device, "Burn CUDA, real network", &ModelConfig::default());
            run::<Cuda>(&device, "Burn CUDA", "cuda");
        }
        Ok(other) => {
            eprintln!(
                "BENCH_DEVICE={other}: this build runs `cpu`{}",
                if cfg!(feature = "cuda") { " and `cuda`" } else { " (`cuda` needs --features cuda)" }
            );
            std::process::exit(2);
        }
    }
}
