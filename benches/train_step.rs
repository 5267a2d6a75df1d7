//! Training step time on this machine's CPU backend (Burn flex, f32; ndarray for comparison):
//! forward, loss, backward and the AdamW step, for the tiny configuration the tests train (width 8, one block per stage,
//! 96², batch 8), the phantom demo's (`pipelines/phantom-demo.toml`: width 8, 128², batch 8) and the paper's real one
//! (ResNet34 U-Net, width 64, 256², batch 32).
//!
//!     cargo bench --bench train_step                  # all three
//!     BENCH_REAL_STEPS=2 cargo bench --bench train_step
//!     cargo bench --profile dev --bench train_step    # no release build: Burn and its kernels
//!                                                     # are opt-level 3 in the dev profile too
//!
//! Each configuration runs warm-up steps (2; 1 for the real one, whose step takes minutes on a
//! CPU), then times `steps` steps (median reported).

use std::time::Instant;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, Tensor};
use cinestream::model::losses::{self, LossKind};
use cinestream::model::{EncoderKind, ModelConfig, SegModel};
use cinestream::train::optim::AdamW;

fn time_steps<B: burn::tensor::backend::AutodiffBackend>(name: &str, cfg: ModelConfig, size: usize, batch: usize, steps: usize, warmup: usize) {
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

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("\ntraining step benchmark ({cores} cores)");
    let tiny = ModelConfig { encoder: EncoderKind::Resnet34, width: 8, blocks: [1, 1, 1, 1], classes: 3 };
    println!("Burn flex (the CLI's CPU backend):");
    time_steps::<Autodiff<Flex>>("tiny", tiny.clone(), 96, 8, 10, 2);
    time_steps::<Autodiff<Flex>>("demo", tiny.clone(), 128, 8, 10, 2);
    let real_steps: usize = std::env::var("BENCH_REAL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    if real_steps > 0 {
        time_steps::<Autodiff<Flex>>("real", ModelConfig::default(), 256, 32, real_steps, 1);
    }
    println!("Burn ndarray:");
    time_steps::<Autodiff<NdArray<f32>>>("tiny", tiny, 96, 8, 3, 2);
}
