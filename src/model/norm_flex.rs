//! Batch normalisation on the CPU engine as one fused operation (`cinestream-cpu-kernels`):
//! statistics in one read, the output in one write, and in training a backward step of its own
//! (two reads, one write) in Burn's autodiff graph, instead of the composed version's
//! full-size tensor per step (centre, square, scale, shift) and their backward steps.
//!
//! The model is generic over Burn's backend; these paths apply where the backend *is* flex
//! (inference) or autodiff over flex (training), found by comparing types at run time, and
//! hand every other backend (CUDA) back to the composed version.

use std::any::Any;

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive, backend::Backend};
use burn_flex::FlexTensor;
use cinestream_cpu_kernels::{Maps, Relu, Stats, batch_norm_backward, channel_stats, scale_shift};

type A = Autodiff<Flex>;

/// `t` as a `U`, where `T` is `U`; `Err(t)` where it is not.
fn same<T: 'static, U: 'static>(t: T) -> Result<U, T> {
    let mut slot = Some(t);
    if let Some(u) = (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        return Ok(u.take().expect("just filled"));
    }
    Err(slot.expect("just filled"))
}

/// `t` as a `U` where the caller knows `T` is `U` (it cast the same backend's input already).
fn cast<T: 'static, U: 'static>(t: T) -> U {
    same(t).unwrap_or_else(|_| unreachable!("the backend was checked"))
}

fn maps(x: &FlexTensor, relu: Relu) -> Option<Maps> {
    let s = x.layout().shape();
    (x.dtype() == DType::F32 && s.num_dims() == 4).then(|| Maps { batch: s[0], channels: s[1], plane: s[2] * s[3], relu })
}

fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn channel_values(t: FlexTensor) -> Vec<f32> {
    t.to_contiguous().storage::<f32>().to_vec()
}

/// Per channel: `1 / √(var + ε)`, and the scale and shift that normalise with these statistics
/// and then apply gamma and beta (`y = x · scale + shift`).
fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], epsilon: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + epsilon as f32).sqrt()).collect();
    let scale: Vec<f32> = gamma.iter().zip(&invstd).map(|(g, s)| g * s).collect();
    let shift: Vec<f32> = beta.iter().zip(mean).zip(&scale).map(|((b, mu), k)| b - mu * k).collect();
    (invstd, scale, shift)
}

/// Training mode on autodiff over flex, with `relu` fused: `Ok((y, batch mean, biased batch
/// variance))`, or the input back on any other backend or dtype.
#[allow(clippy::type_complexity)]
pub(super) fn train<B: Backend>(
    bn: &BatchNorm<B>,
    x: Tensor<B, 4>,
    relu: Relu,
) -> Result<(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>), Tensor<B, 4>> {
    let x: Tensor<A, 4> = same(x)?;
    let xp = x.into_primitive().tensor();
    let input = xp.primitive.to_contiguous();
    let Some(m) = maps(&input, relu) else {
        return Err(cast(Tensor::<A, 4>::from_primitive(TensorPrimitive::Float(xp))));
    };
    let (gp, bp) = (
        cast::<_, Tensor<A, 1>>(bn.gamma.val()).into_primitive().tensor(),
        cast::<_, Tensor<A, 1>>(bn.beta.val()).into_primitive().tensor(),
    );
    let (gamma, beta) = (channel_values(gp.primitive.clone()), channel_values(bp.primitive.clone()));
    let (mean, var) = channel_stats(m, input.storage());
    let (invstd, scale, shift) = affine(&gamma, &beta, &mean, &var, bn.epsilon);
    let y = flex(scale_shift(m, input.storage(), &scale, &shift), input.layout().shape().to_vec());
    let out = match BatchNormBackward
        .prepare::<NoCheckpointing>([xp.node.clone(), gp.node.clone(), bp.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(State { input, maps: m, mean: mean.clone(), invstd, gamma, beta }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let stat =
        |v: Vec<f32>| cast(Tensor::<A, 1>::from_inner(Tensor::<Flex, 1>::from_data(TensorData::new(v, [m.channels]), &Default::default())));
    Ok((cast(Tensor::<A, 4>::from_primitive(TensorPrimitive::Float(out))), stat(mean), stat(var)))
}

/// Inference on flex with the running statistics, with `relu` fused: one pass; the input back
/// on any other backend or dtype.
pub(super) fn eval<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>, relu: Relu) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let x: Tensor<Flex, 4> = same(x)?;
    let input = x.into_primitive().tensor().to_contiguous();
    let Some(m) = maps(&input, relu) else {
        return Err(cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(input))));
    };
    let values = |t: Tensor<B, 1>| channel_values(cast::<_, Tensor<Flex, 1>>(t).into_primitive().tensor());
    let (mean, var) = (values(bn.running_mean.value()), values(bn.running_var.value()));
    let (gamma, beta) = (values(bn.gamma.val()), values(bn.beta.val()));
    let (_, scale, shift) = affine(&gamma, &beta, &mean, &var, bn.epsilon);
    let y = flex(scale_shift(m, input.storage(), &scale, &shift), input.layout().shape().to_vec());
    Ok(cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(y))))
}

/// The backward step of [`train`]: gradients of the input, gamma and beta.
#[derive(Debug)]
struct BatchNormBackward;

#[derive(Clone, Debug)]
struct State {
    input: FlexTensor,
    maps: Maps,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Backward<Flex, 3> for BatchNormBackward {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, gamma, beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let s = ops.state;
        let stats = Stats { mean: &s.mean, invstd: &s.invstd, gamma: &s.gamma, beta: &s.beta };
        let (dx, dgamma, dbeta) = batch_norm_backward(s.maps, s.input.storage(), dy.storage(), stats);
        let channels = vec![s.maps.channels];
        for (node, grad, shape) in [(x, dx, s.input.layout().shape().to_vec()), (gamma, dgamma, channels.clone()), (beta, dbeta, channels)]
        {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex(grad, shape));
            }
        }
    }
}
