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
//!
//! On the CPU engine (flex, and autodiff over it) both modes run as one fused operation instead
//! (`norm_flex`: one pass for the statistics, one for the output, a backward step of its own);
//! other backends (CUDA) take the composed version above.

use burn::nn::BatchNorm;
use burn::tensor::activation;

use cinestream_cpu_kernels::Relu;

use super::norm_flex;
use burn::tensor::{Tensor, backend::Backend};

/// Batch norm of a 4-D map (see the module docs).
pub fn batch_norm<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    normalise(bn, x, Relu::None)
}

/// `batch_norm(relu(x))`, fastai's order in `conv_layer`: one fused pass on the CPU engine.
pub fn relu_batch_norm<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    normalise(bn, x, Relu::Before)
}

/// `relu(batch_norm(x))`, torchvision's order in ResNets: one fused pass on the CPU engine.
pub fn batch_norm_relu<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    normalise(bn, x, Relu::After)
}

fn normalise<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>, relu: Relu) -> Tensor<B, 4> {
    let [b, _, h, w] = x.dims();
    let x = if B::ad_enabled(&x.device()) {
        match norm_flex::train(bn, x, relu) {
            Ok((y, mean, var)) => {
                update_running(bn, mean, var, b * h * w);
                return y;
            }
            Err(x) => x,
        }
    } else {
        match norm_flex::eval(bn, x, relu) {
            Ok(y) => return y,
            Err(x) => x,
        }
    };
    composed_with(bn, x, relu)
}

/// [`composed`] with the ReLU where `relu` puts it: any backend.
fn composed_with<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>, relu: Relu) -> Tensor<B, 4> {
    match relu {
        Relu::None => composed(bn, x),
        Relu::Before => composed(bn, activation::relu(x)),
        Relu::After => activation::relu(composed(bn, x)),
    }
}

/// Batch norm from Burn's tensor operations: any backend.
pub(crate) fn composed<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let (mean, var) = if B::ad_enabled(&x.device()) {
        let n = (b * h * w) as f64;
        let per_channel = |t: Tensor<B, 4>| t.reshape([b, c, h * w]).sum_dim(2).sum_dim(0).reshape([1, c, 1, 1]).div_scalar(n);
        let mean = per_channel(x.clone());
        let var = per_channel((x.clone() - per_sample(mean.clone(), b)).square());
        update_running(bn, mean.clone().reshape([c]), var.clone().reshape([c]), b * h * w);
        (mean, var)
    } else {
        (bn.running_mean.value().reshape([1, c, 1, 1]), bn.running_var.value().reshape([1, c, 1, 1]))
    };
    let scale = bn.gamma.val().reshape([1, c, 1, 1]) / var.add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val().reshape([1, c, 1, 1]) - mean * scale.clone();
    x * per_sample(scale, b) + per_sample(shift, b)
}

/// Moves the running statistics towards a batch's `[c]` mean and biased variance over `n`
/// values per channel (the variance made unbiased, as torch does).
fn update_running<B: Backend>(bn: &BatchNorm<B>, mean: Tensor<B, 1>, var: Tensor<B, 1>, n: usize) {
    let m = bn.momentum;
    let unbiased = if n > 1 { n as f64 / (n as f64 - 1.0) } else { 1.0 };
    bn.running_mean.update(bn.running_mean.value_sync().mul_scalar(1.0 - m).add(mean.detach().mul_scalar(m)).detach());
    bn.running_var.update(bn.running_var.value_sync().mul_scalar(1.0 - m).add(var.detach().mul_scalar(m * unbiased)).detach());
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
    use burn::module::{AutodiffModule, Param};
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

    /// The fused CPU path against the composed one: output, the gradients of the input, gamma
    /// and beta, and the running statistics.
    #[test]
    fn the_fused_cpu_path_matches_the_composed_one() {
        let dev = Default::default();
        let x: Tensor<A, 4> = Tensor::random([4, 3, 6, 7], Distribution::Normal(0.7, 1.3), &dev);
        let weights: Tensor<A, 4> = Tensor::random([4, 3, 6, 7], Distribution::Normal(0.0, 1.0), &dev);
        let make = || {
            let mut bn = BatchNormConfig::new(3).init::<A>(&dev);
            bn.gamma = Param::from_tensor(Tensor::from_floats([1.5, 0.9, 1.2], &dev));
            bn.beta = Param::from_tensor(Tensor::from_floats([-0.4, 0.1, 0.3], &dev));
            bn
        };
        for relu in [Relu::None, Relu::Before, Relu::After] {
            check_fused(&x, &weights, &make, relu);
        }
    }

    fn check_fused(x: &Tensor<A, 4>, weights: &Tensor<A, 4>, make: &dyn Fn() -> BatchNorm<A>, relu: Relu) {
        let dev = Default::default();
        let run = |fused: bool| {
            let bn = make();
            let xg = x.clone().require_grad();
            let y = if fused { normalise(&bn, xg.clone(), relu) } else { composed_with(&bn, xg.clone(), relu) };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let data = |t: Tensor<B, 1>| t.into_data().to_vec::<f32>().unwrap();
            let [dg, db] = [&bn.gamma, &bn.beta].map(|p| data(p.grad(&grads).unwrap()));
            (
                y.inner().into_data(),
                xg.grad(&grads).unwrap().into_data(),
                dg,
                db,
                data(bn.running_mean.value_sync().inner()),
                data(bn.running_var.value_sync().inner()),
            )
        };
        let (fused, composed) = (run(true), run(false));
        fused.0.assert_approx_eq::<f32>(&composed.0, Tolerance::absolute(1e-5));
        fused.1.assert_approx_eq::<f32>(&composed.1, Tolerance::absolute(1e-4));
        for (f, c) in [(&fused.2, &composed.2), (&fused.3, &composed.3), (&fused.4, &composed.4), (&fused.5, &composed.5)] {
            close(Tensor::<B, 1>::from_floats(f.as_slice(), &dev), c);
        }
        // Inference: the same as the composed version with the running statistics.
        let bn = make().valid();
        let xi = x.clone().inner();
        let fused = normalise(&bn, xi.clone(), relu);
        fused.into_data().assert_approx_eq::<f32>(&composed_with(&bn, xi, relu).into_data(), Tolerance::absolute(1e-5));
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
