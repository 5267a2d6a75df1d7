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
//! Each configuration runs warm-up steps (2; 1 for the real one, whose training step takes
//! minutes on a CPU), then times `steps` steps (median reported). The PyTorch side runs when
//! `CINESTREAM_TORCH_PYTHON` (default `/var/tmp/cinestream-torch/bin/python`) imports torch,
//! with as many threads as this machine has cores; `BENCH_SKIP_TORCH=1` skips it.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, Tensor};
use cinestream::model::losses::{self, LossKind};
use cinestream::model::{EncoderKind, ModelConfig, SegModel};
use cinestream::train::optim::AdamW;

fn time_steps<B: burn::tensor::backend::AutodiffBackend>(
    name: &str,
    cfg: ModelConfig,
    size: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
) {
    let device = Default::default();
    let mut model: SegModel<B> = cfg.init(&device);
    let mut optim = AdamW::fastai(1e-2).init::<B, SegModel<B>>();
    let x = Tensor::<B, 4>::random([batch, 1, size, size], Distribution::Uniform(0.0, 1.0), &device);
    let y = Tensor::<B, 4>::random([batch, 1, size, size], Distribution::Uniform(0.0, 3.0), &device).int().reshape([batch, size, size]);
    let y: Tensor<B, 3, Int> = y.clamp(0, 2);
    let mut times = Vec::new();
    for i in 0..steps + warmup {
        let t = Instant::now();
        let loss = losses::loss(LossKind::CrossEntropy, model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        // Force the work to finish before the clock stops.
        let _ = model.valid().decoder.head.conv.weight.val().into_data();
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
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
fn time_infer<B: burn::tensor::backend::Backend>(name: &str, cfg: ModelConfig, size: usize, batch: usize, steps: usize, warmup: usize) {
    let device = Default::default();
    let model: SegModel<B> = cfg.init(&device);
    let x = Tensor::<B, 4>::random([batch, 1, size, size], Distribution::Uniform(0.0, 1.0), &device);
    let mut times = Vec::new();
    for i in 0..steps + warmup {
        let t = Instant::now();
        // Reading the output back forces the work, as the labelling engine does.
        let _ = model.forward(x.clone()).into_data();
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{name:<8} width {:>2} blocks {:?} {size}² batch {batch:>2}: {median:.3} s/batch median of {steps} ({:.1} images/s)",
        cfg.width,
        cfg.blocks,
        batch as f64 / median
    );
}

/// The same step in PyTorch eager on the CPU (`benches/torch_unet_step.py`), printed as it
/// reports it; `None` when no torch is at hand.
fn torch(mode: &str, cfg: &ModelConfig, size: usize, batch: usize, steps: usize) -> Option<()> {
    if std::env::var("BENCH_SKIP_TORCH").is_ok() {
        return None;
    }
    let python = std::env::var("CINESTREAM_TORCH_PYTHON").unwrap_or_else(|_| "/var/tmp/cinestream-torch/bin/python".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let blocks = cfg.blocks.map(|b| b.to_string()).join(",");
    let out = std::process::Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_unet_step.py"))
        .args(["--device", "cpu", "--mode", mode, "--threads", &cores.to_string(), "--steps", &steps.to_string()])
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

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let tiny = ModelConfig { encoder: EncoderKind::Resnet34, width: 8, blocks: [1, 1, 1, 1], classes: 3 };
    let real = ModelConfig::default();
    let real_steps: usize = std::env::var("BENCH_REAL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    println!("\nU-Net step benchmark ({cores} cores)");

    println!("training step, Burn flex (the CLI's CPU backend):");
    time_steps::<Autodiff<Flex>>("tiny", tiny.clone(), 96, 8, 10, 2);
    time_steps::<Autodiff<Flex>>("demo", tiny.clone(), 128, 8, 10, 2);
    if real_steps > 0 {
        time_steps::<Autodiff<Flex>>("real", real.clone(), 256, 32, real_steps, 1);
    }
    println!("training step, PyTorch eager (same network, same CPU):");
    torch("train", &tiny, 96, 8, 10);
    torch("train", &tiny, 128, 8, 10);
    if real_steps > 0 {
        torch("train", &real, 256, 32, real_steps.max(3));
    }

    println!("inference (eval, batch 8, as `cinestream label`), Burn flex:");
    time_infer::<Flex>("demo", tiny.clone(), 128, 8, 10, 2);
    time_infer::<Flex>("real", real.clone(), 256, 8, 5, 1);
    println!("inference, PyTorch eager (no_grad, eval):");
    torch("infer", &tiny, 128, 8, 10);
    torch("infer", &real, 256, 8, 5);
}
