//! Segmentation models: a U-Net decoder (fastai v1 `DynamicUnet`) over a ResNet34 (default),
//! ResNet50 or VGG16-BN encoder, 3 classes (background, LV, MY).
//!
//! Input: `[batch, 1, H, W]` images scaled to 0…1. The model replicates the channel to the
//! encoder's 3 and applies ImageNet normalisation itself, so inference needs no separate
//! preprocessing step. Output: logits `[batch, classes, H, W]`.
//!
//! [`ModelConfig`] sets the encoder and its width (`width = 64` is torchvision's; tests use 8
//! and fewer blocks: the same code, tiny).

pub mod augment;
pub mod card;
pub mod contract;
pub mod encoder;
pub mod export;
pub mod layers;
pub mod losses;
pub mod metrics;
pub mod norm;
mod norm_flex;
pub mod prep;
pub mod scaling;
pub mod unet;
pub mod weights;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use encoder::{Encoder, ResNet, Vgg};
use unet::Decoder;

/// ImageNet channel means and standard deviations (torchvision's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Which encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    Resnet34,
    Resnet50,
    Vgg16Bn,
}

/// The model's shape (`[model]` in a pipeline file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub encoder: EncoderKind,
    /// Stem width: 64 is torchvision's (needed for ImageNet weights); smaller for tests.
    pub width: usize,
    /// Residual blocks per stage (ResNets): [3, 4, 6, 3] for ResNet34 and ResNet50.
    pub blocks: [usize; 4],
    /// Output classes: background, LV, MY.
    pub classes: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { encoder: EncoderKind::Resnet34, width: 64, blocks: [3, 4, 6, 3], classes: 3 }
    }
}

impl ModelConfig {
    /// Checks the values (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        if self.width == 0 || !self.width.is_multiple_of(2) {
            return Err(format!("model.width = {} must be even and positive (64 for ImageNet weights)", self.width));
        }
        if self.blocks.contains(&0) {
            return Err("model.blocks: every stage needs at least one block".into());
        }
        if self.classes < 2 {
            return Err("model.classes must be at least 2".into());
        }
        Ok(())
    }

    /// Whether the shape is torchvision's (so ImageNet weights fit).
    pub fn is_torchvision(&self) -> bool {
        self.width == 64 && (self.encoder == EncoderKind::Vgg16Bn || self.blocks == [3, 4, 6, 3])
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> SegModel<B> {
        let (encoder, (skips, deepest), finest_stride) = match self.encoder {
            EncoderKind::Resnet34 | EncoderKind::Resnet50 => {
                let bottleneck = self.encoder == EncoderKind::Resnet50;
                (
                    Encoder::ResNet(ResNet::new(self.width, self.blocks, bottleneck, device)),
                    ResNet::<B>::channels(self.width, bottleneck),
                    2,
                )
            }
            EncoderKind::Vgg16Bn => (Encoder::Vgg(Vgg::new(self.width, device)), Vgg::<B>::channels(self.width), 1),
        };
        SegModel { encoder, decoder: Decoder::new(&skips, deepest, finest_stride, self.classes, device) }
    }
}

/// Encoder + U-Net decoder.
#[derive(Module, Debug)]
pub struct SegModel<B: Backend> {
    pub encoder: Encoder<B>,
    pub decoder: Decoder<B>,
}

impl<B: Backend> SegModel<B> {
    /// `x`: `[batch, 1, H, W]` in 0…1 → logits `[batch, classes, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = normalise(x);
        let features = self.encoder.forward(x.clone());
        self.decoder.forward(features, x)
    }
}

/// 1 channel → 3, ImageNet-normalised.
pub fn normalise<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = x.device();
    let mean = Tensor::<B, 4>::from_data(TensorData::new(IMAGENET_MEAN.to_vec(), [1, 3, 1, 1]), &device);
    let std = Tensor::<B, 4>::from_data(TensorData::new(IMAGENET_STD.to_vec(), [1, 3, 1, 1]), &device);
    (x.repeat_dim(1, 3) - mean) / std
}

/// Where a model runs: the CPU (Burn's flex backend, or ONNX Runtime), or an NVIDIA GPU (Burn's
/// CUDA backend, in a build with `--features cuda`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
}

impl Device {
    /// What this build can run on, for messages.
    pub fn available() -> &'static str {
        if cfg!(feature = "cuda") { "cpu or cuda" } else { "cpu (this build has no CUDA: cargo build --release --features cuda)" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    type B = Flex;

    #[test]
    fn every_encoder_gives_full_size_logits() {
        let dev = Default::default();
        for encoder in [EncoderKind::Resnet34, EncoderKind::Resnet50, EncoderKind::Vgg16Bn] {
            let cfg = ModelConfig { encoder, width: 8, blocks: [1, 1, 1, 1], classes: 3 };
            let m = cfg.init::<B>(&dev);
            // 40 is not a multiple of 32: the decoder resizes to the skips.
            let x = Tensor::<B, 4>::random([2, 1, 40, 64], Distribution::Uniform(0.0, 1.0), &dev);
            assert_eq!(m.forward(x).dims(), [2, 3, 40, 64], "{encoder:?}");
        }
    }

    #[test]
    fn resnet34_has_torchvisions_parameter_count() {
        // torchvision resnet34 without fc: 21,797,672 − 513,000 = 21,284,672 parameters. Burn also
        // counts BatchNorm running mean and variance (buffers in torchvision): 2 × 8,512 channels.
        let m = ModelConfig::default().init::<B>(&Default::default());
        assert_eq!(m.encoder.num_params(), 21_284_672 + 2 * 8_512);
    }
}
