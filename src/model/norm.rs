//! Batch normalisation of `[batch, channels, H, W]` maps with Burn's `BatchNorm` parameters
//! (so records and the torchvision key map are unchanged), computed the way PyTorch does and
//! cheaper on the CPU backend:
//!
//! - statistics by reducing the contiguous `[batch, channels, H·W]` view over its last axis,
//!   then over the batch: Burn's own forward swaps axes 0 and 1 and reshapes, which copies the
//!   whole map element by element (a third of a training step on `flex`, measured with perf);
//! - the output as one scale and one shift per channel (`x·γ/σ + (β − μ·γ/σ)`): two full-size
//!   operations instead of four, with scale and shift repeated to `[batch, channels, 1, 1]` so
//!   `flex` takes its SIMD row-broadcast path (a `[1, channels, 1, 1]` operand is walked element
//!   by element). Together: a tiny-model epoch took 78 s before; a whole 1-epoch run takes 31 s
//!   now (BENCHMARKS.md);
//! - the running variance is updated with the unbiased batch variance, as `torch.nn.BatchNorm2d`
//!   does (Burn uses the biased one), so running statistics mean the same as in torchvision
//!   weights.
//!
//! Training mode is taken from the backend, as Burn does: with autodiff, batch statistics;
//! without, the running ones.

use burn::nn::BatchNorm;
use burn::tensor::{Tensor, backend::Backend};

/// Batch norm of a 4-D map (see the module docs).
pub fn batch_norm<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let (mean, var) = if B::ad_enabled(&x.device()) {
        let n = (b * h * w) as f64;
        let per_channel = |t: Tensor<B, 4>| t.reshape([b, c, h * w]).sum_dim(2).sum_dim(0).reshape([1, c, 1, 1]).div_scalar(n);
        let mean = per_channel(x.clone());
        let var = per_channel((x.clone() - per_sample(mean.clone(), b)).square());
        let m = bn.momentum;
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        bn.running_mean
            .update(bn.running_mean.value_sync().mul_scalar(1.0 - m).add(mean.clone().detach().reshape([c]).mul_scalar(m)).detach());
        bn.running_var.update(
            bn.running_var.value_sync().mul_scalar(1.0 - m).add(var.clone().detach().reshape([c]).mul_scalar(m * unbiased)).detach(),
        );
        (mean, var)
    } else {
        (bn.running_mean.value().reshape([1, c, 1, 1]), bn.running_var.value().reshape([1, c, 1, 1]))
    };
    let scale = bn.gamma.val().reshape([1, c, 1, 1]) / var.add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val().reshape([1, c, 1, 1]) - mean * scale.clone();
    x * per_sample(scale, b) + per_sample(shift, b)
}

/// `[1, c, 1, 1]` → a contiguous `[b, c, 1, 1]`: `flex` broadcasts one scalar per (sample,
/// channel) row with SIMD, but walks a batch-broadcast `[1, c, 1, 1]` element by element.
fn per_sample<B: Backend>(t: Tensor<B, 4>, b: usize) -> Tensor<B, 4> {
    if b == 1 { t } else { t.repeat_dim(0, b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;
    type A = Autodiff<B>;

    fn close(a: Tensor<impl Backend, 1>, b: &[f32]) {
        let a = a.into_data().to_vec::<f32>().unwrap();
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn matches_burns_batch_norm_and_torchs_running_statistics() {
        let dev = Default::default();
        let x: Tensor<A, 4> = Tensor::random([3, 2, 4, 5], Distribution::Normal(1.5, 2.0), &dev);
        // Two modules (a clone would share its running statistics).
        let make = || {
            let mut bn = BatchNormConfig::new(2).init::<A>(&dev);
            bn.gamma = bn.gamma.map(|g| g.mul_scalar(1.7));
            bn.beta = bn.beta.map(|b| b.add_scalar(-0.3));
            bn
        };
        let (theirs, ours) = (make(), make());
        // Training: the same output and gradient as Burn's.
        let (y1, y2) = (theirs.forward(x.clone().require_grad()), batch_norm(&ours, x.clone().require_grad()));
        y2.clone().into_data().assert_approx_eq::<f32>(&y1.clone().into_data(), Tolerance::absolute(1e-5));
        let (xa, xb) = (x.clone().require_grad(), x.clone().require_grad());
        let ga = (theirs.forward(xa.clone()).powi_scalar(3).sum()).backward();
        let gb = (batch_norm(&ours, xb.clone()).powi_scalar(3).sum()).backward();
        xb.grad(&gb).unwrap().into_data().assert_approx_eq::<f32>(&xa.grad(&ga).unwrap().into_data(), Tolerance::absolute(1e-3));
        // Running statistics (two updates above): mean as Burn, variance unbiased as torch.
        close(ours.running_mean.value_sync(), &theirs.running_mean.value_sync().into_data().to_vec::<f32>().unwrap());
        let v: Vec<f32> = x.clone().swap_dims(0, 1).reshape([2, 60]).var(1).reshape([2]).into_data().to_vec().unwrap();
        let expected: Vec<f32> = v.iter().map(|v| (1.0 - 0.9f32.powi(2)) * v + 0.9f32.powi(2)).collect();
        close(ours.running_var.value_sync(), &expected);
        // Inference: the running statistics.
        let inner = ours.valid();
        let xi = x.inner();
        let y = batch_norm(&inner, xi.clone());
        let (m, s) = (inner.running_mean.value().reshape([1, 2, 1, 1]), (inner.running_var.value().reshape([1, 2, 1, 1]) + 1e-5).sqrt());
        let expected = (xi - m) / s * inner.gamma.val().reshape([1, 2, 1, 1]) + inner.beta.val().reshape([1, 2, 1, 1]);
        y.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }
}
