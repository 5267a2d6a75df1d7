//! Building blocks shared by the encoders and the U-Net decoder.
//!
//! `ConvLayer` is fastai v1's `conv_layer`: convolution (no bias) → ReLU → BatchNorm, or just the
//! convolution and BatchNorm when it has no activation. `PixelShuffleIcnr` is fastai's
//! `PixelShuffle_ICNR`: a 1×1 convolution to 4× the channels, ReLU, then pixel shuffle ×2, with the
//! convolution initialised by ICNR so that at the start it upsamples like nearest neighbour
//! (no checkerboard). fastai also wraps that convolution in weight normalisation; we do not
//! (a plain convolution with bias: same function class, one fewer parameter per channel).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Distribution, Tensor, backend::Backend};

use super::norm::{batch_norm, relu_batch_norm};

/// A `kernel`×`kernel` convolution with `same` padding.
pub fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, bias: bool) -> Conv2dConfig {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        // PyTorch's kaiming_normal_(mode="fan_out", nonlinearity="relu"), as torchvision and fastai.
        .with_initializer(Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true })
}

/// fastai's `conv_layer`: conv → ReLU → BatchNorm (or conv → BatchNorm without activation).
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
    pub activation: bool,
}

impl<B: Backend> ConvLayer<B> {
    pub fn new(cin: usize, cout: usize, kernel: usize, activation: bool, device: &B::Device) -> Self {
        Self { conv: conv(cin, cout, kernel, 1, false).init(device), bn: BatchNormConfig::new(cout).init(device), activation }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = self.conv.forward(x);
        if self.activation { relu_batch_norm(&self.bn, y) } else { batch_norm(&self.bn, y) }
    }
}

/// Pixel shuffle ×2: `[b, 4c, h, w]` → `[b, c, 2h, 2w]`, as `torch.nn.PixelShuffle(2)`.
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c4, h, w] = x.dims();
    let c = c4 / 4;
    x.reshape([b, c, 2, 2, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([b, c, 2 * h, 2 * w])
}

/// fastai's `PixelShuffle_ICNR`: 1×1 conv to 4·`cout` channels, ReLU, pixel shuffle ×2.
#[derive(Module, Debug)]
pub struct PixelShuffleIcnr<B: Backend> {
    pub conv: Conv2d<B>,
}

impl<B: Backend> PixelShuffleIcnr<B> {
    pub fn new(cin: usize, cout: usize, device: &B::Device) -> Self {
        let mut c = conv(cin, cout * 4, 1, 1, true).init(device);
        // ICNR: one kaiming-normal kernel per output channel, repeated for its 4 sub-pixels, so
        // the shuffle starts as nearest-neighbour upsampling.
        let std = (2.0 / cin as f64).sqrt();
        let base: Tensor<B, 4> = Tensor::random([cout, 1, cin, 1], Distribution::Normal(0.0, std), device);
        let weight = base.repeat_dim(1, 4).reshape([cout * 4, cin, 1, 1]);
        c.weight = Param::from_tensor(weight);
        c.bias = Some(Param::from_tensor(Tensor::zeros([cout * 4], device)));
        Self { conv: c }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        pixel_shuffle(relu(self.conv.forward(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    #[test]
    fn pixel_shuffle_matches_torch_layout() {
        // torch: out[0, c, 2i+a, 2j+b] = in[0, 4c + 2a + b, i, j].
        let dev = Default::default();
        let x: Tensor<B, 4> = Tensor::from_data(TensorData::new((0..32).map(|v| v as f32).collect::<Vec<_>>(), [1, 8, 2, 2]), &dev);
        let y = pixel_shuffle(x.clone()).into_data().to_vec::<f32>().unwrap();
        let xv = x.into_data().to_vec::<f32>().unwrap();
        for c in 0..2 {
            for i in 0..2 {
                for j in 0..2 {
                    for a in 0..2 {
                        for b in 0..2 {
                            let out = y[c * 16 + (2 * i + a) * 4 + 2 * j + b];
                            let inp = xv[(4 * c + 2 * a + b) * 4 + i * 2 + j];
                            assert_eq!(out, inp);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn icnr_starts_as_nearest_upsampling() {
        let dev = Default::default();
        let p = PixelShuffleIcnr::<B>::new(3, 2, &dev);
        let x: Tensor<B, 4> = Tensor::random([1, 3, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
        let y = p.forward(x).into_data().to_vec::<f32>().unwrap();
        // Each 2×2 output block holds one value.
        let mut nonzero = 0;
        for c in 0..2 {
            for i in 0..4 {
                for j in 0..4 {
                    let v = y[c * 64 + 2 * i * 8 + 2 * j];
                    nonzero += usize::from(v != 0.0);
                    for (a, b) in [(0, 1), (1, 0), (1, 1)] {
                        assert!((y[c * 64 + (2 * i + a) * 8 + 2 * j + b] - v).abs() < 1e-5);
                    }
                }
            }
        }
        assert!(nonzero > 4, "the output should not be all zeros");
    }
}
