//! AdamW as fastai v1 ran it (`true_wd`, betas (β1, 0.99), ε 1e-8): decoupled weight decay
//! `p ← p·(1 − lr·wd)`, then PyTorch's Adam step with bias correction. β1 is not fixed: the
//! one-cycle schedule moves it every batch, so it lives in a shared cell the training loop sets
//! ([`CycledBeta1`]); bias correction uses the current β1, as `torch.optim.Adam` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::module::AutodiffModule;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Device, Tensor};

/// β1, shared between the optimizer and the schedule.
#[derive(Debug, Clone, Default)]
pub struct CycledBeta1(Arc<AtomicU64>);

impl CycledBeta1 {
    pub fn set(&self, beta1: f64) {
        self.0.store(beta1.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The optimizer.
#[derive(Debug, Clone)]
pub struct AdamW {
    pub beta1: CycledBeta1,
    pub beta2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
}

/// Per-parameter state: the two moments and the step count.
#[derive(Record, Clone)]
pub struct AdamWState<B: Backend, const D: usize> {
    pub moment_1: Tensor<B, D>,
    pub moment_2: Tensor<B, D>,
    pub time: usize,
}

impl AdamW {
    /// fastai's: β2 0.99, ε 1e-8, weight decay 1e-2; β1 from the schedule (0.9 until set).
    pub fn fastai(weight_decay: f64) -> Self {
        let beta1 = CycledBeta1::default();
        beta1.set(0.9);
        AdamW { beta1, beta2: 0.99, epsilon: 1e-8, weight_decay }
    }

    /// As a Burn optimizer over module `M`.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(self) -> OptimizerAdaptor<AdamW, M, B> {
        OptimizerAdaptor::from(self)
    }
}

impl<B: Backend> SimpleOptimizer<B> for AdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta1.get(), self.beta2);
        let (m, v, t) = match state {
            Some(s) => (
                s.moment_1.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1),
                s.moment_2.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2),
                s.time + 1,
            ),
            None => (grad.clone().mul_scalar(1.0 - b1), grad.square().mul_scalar(1.0 - b2), 1),
        };
        let c1 = 1.0 - b1.powi(t as i32);
        let c2 = 1.0 - b2.powi(t as i32);
        let decayed = if self.weight_decay == 0.0 { tensor } else { tensor.mul_scalar(1.0 - lr * self.weight_decay) };
        // torch: p −= lr/c1 · m / (√v / √c2 + ε)
        let denom = v.clone().sqrt().div_scalar(c2.sqrt()).add_scalar(self.epsilon);
        let updated = decayed - m.clone().div(denom).mul_scalar(lr / c1);
        (updated, Some(AdamWState { moment_1: m, moment_2: v, time: t }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device<B>) -> Self::State<D> {
        AdamWState { moment_1: state.moment_1.to_device(device), moment_2: state.moment_2.to_device(device), time: state.time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    #[test]
    fn two_steps_match_torch_adamw_by_hand() {
        let dev = Default::default();
        let opt = AdamW::fastai(0.01);
        opt.beta1.set(0.95);
        let p = Tensor::<B, 1>::from_data(TensorData::new(vec![1.0f32], [1]), &dev);
        let g = Tensor::<B, 1>::from_data(TensorData::new(vec![0.5f32], [1]), &dev);
        let (p1, s) = SimpleOptimizer::<B>::step(&opt, 0.1, p, g.clone(), None);
        // Step 1: p·(1 − 0.001) − 0.1 · m̂/(√v̂ + ε) with m̂ = g, v̂ = g² → 0.999 − 0.1 = 0.899.
        let v1 = p1.clone().into_scalar() as f64;
        assert!((v1 - 0.899).abs() < 1e-6, "{v1}");
        // Step 2 with β1 moved to 0.9: m = 0.9·0.025 + 0.1·0.5 = 0.0725; v = 0.99·0.0025 + 0.01·0.25
        // = 0.004975; m̂ = 0.0725/(1 − 0.81) ; v̂ = 0.004975/(1 − 0.9801).
        opt.beta1.set(0.9);
        let (p2, _) = SimpleOptimizer::<B>::step(&opt, 0.1, p1, g, s);
        let m_hat = 0.0725 / (1.0 - 0.81);
        let v_hat: f64 = 0.004975 / (1.0 - 0.9801);
        let want = v1 * (1.0 - 0.001) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        let got = p2.into_scalar() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
