//! The engines that run a model on a batch: our Burn models (flex on the CPU, CUDA), and any
//! ONNX model through ONNX Runtime ([`super::onnx`]). An engine lives on the inference thread.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::InferError;
use crate::model::SegModel;

/// Runs a model on batches.
pub trait Engine {
    /// `input` holds `shape` values in the contract's layout; returns the output's values in
    /// the same layout (`[n, classes, h, w]` for NCHW).
    fn run(&mut self, input: Vec<f32>, shape: [usize; 4]) -> Result<Vec<f32>, InferError>;
}

/// One of our U-Nets on a Burn backend.
pub struct BurnEngine<B: Backend> {
    pub model: SegModel<B>,
    pub device: B::Device,
}

impl<B: Backend> Engine for BurnEngine<B> {
    fn run(&mut self, input: Vec<f32>, shape: [usize; 4]) -> Result<Vec<f32>, InferError> {
        let x = Tensor::<B, 4>::from_data(TensorData::new(input, shape), &self.device);
        let y = self.model.forward(x);
        y.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| InferError::Output(format!("{e:?}")))
    }
}
