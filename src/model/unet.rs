//! The U-Net decoder of fastai v1's `DynamicUnet`, over any [`Encoder`]:
//!
//! - middle: BatchNorm → ReLU → conv_layer(c, 2c) → conv_layer(2c, c) on the deepest features;
//! - one `UnetBlock` per skip, deepest first: pixel-shuffle upsampling to half the channels,
//!   BatchNorm on the skip, concatenation, ReLU, two conv_layers (the last block halves the
//!   channels);
//! - a final pixel shuffle when the finest skip is at stride 2 (ResNets);
//! - the last cross connection: the (normalised, 3-channel) input is concatenated, a residual
//!   block of two conv_layers, and a 1×1 conv_layer without activation to the classes.
//!
//! When a size is not a multiple of the encoder's stride, upsampled maps are resized to the skip
//! by nearest neighbour, as fastai does.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, backend::Backend};

use super::encoder::Features;
use super::layers::{ConvLayer, PixelShuffleIcnr};
use super::norm::{batch_norm, batch_norm_relu};

fn fit<B: Backend>(x: Tensor<B, 4>, like: [usize; 4]) -> Tensor<B, 4> {
    let d = x.dims();
    if d[2] == like[2] && d[3] == like[3] {
        return x;
    }
    interpolate(x, [like[2], like[3]], InterpolateOptions::new(InterpolateMode::Nearest))
}

/// fastai's `UnetBlock`.
#[derive(Module, Debug)]
pub struct UnetBlock<B: Backend> {
    pub shuf: PixelShuffleIcnr<B>,
    pub bn: BatchNorm<B>,
    pub conv1: ConvLayer<B>,
    pub conv2: ConvLayer<B>,
}

impl<B: Backend> UnetBlock<B> {
    /// Returns the block and its output channels.
    fn new(up_in: usize, skip: usize, last: bool, device: &B::Device) -> (Self, usize) {
        let ni = up_in / 2 + skip;
        let nf = if last { ni / 2 } else { ni };
        let block = UnetBlock {
            shuf: PixelShuffleIcnr::new(up_in, up_in / 2, device),
            bn: BatchNormConfig::new(skip).init(device),
            conv1: ConvLayer::new(ni, nf, 3, true, device),
            conv2: ConvLayer::new(nf, nf, 3, true, device),
        };
        (block, nf)
    }

    fn forward(&self, up_in: Tensor<B, 4>, skip: Tensor<B, 4>) -> Tensor<B, 4> {
        let up = fit(self.shuf.forward(up_in), skip.dims());
        let x = relu(Tensor::cat(vec![up, batch_norm(&self.bn, skip)], 1));
        self.conv2.forward(self.conv1.forward(x))
    }
}

/// The decoder.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    pub middle_bn: BatchNorm<B>,
    pub middle1: ConvLayer<B>,
    pub middle2: ConvLayer<B>,
    /// Deepest skip first.
    pub blocks: Vec<UnetBlock<B>>,
    pub final_shuffle: Option<PixelShuffleIcnr<B>>,
    pub res1: ConvLayer<B>,
    pub res2: ConvLayer<B>,
    pub head: ConvLayer<B>,
}

impl<B: Backend> Decoder<B> {
    /// `skips`: channels of the encoder skips, finest first; `deepest`: channels of the deepest
    /// map; `finest_stride`: stride of the finest skip (2 for ResNets, 1 for VGG).
    pub fn new(skips: &[usize], deepest: usize, finest_stride: usize, classes: usize, device: &B::Device) -> Self {
        let mut ch = deepest;
        let mut blocks = Vec::new();
        for (i, s) in skips.iter().rev().enumerate() {
            let (b, out) = UnetBlock::new(ch, *s, i + 1 == skips.len(), device);
            blocks.push(b);
            ch = out;
        }
        let final_shuffle = (finest_stride > 1).then(|| PixelShuffleIcnr::new(ch, ch, device));
        let cross = ch + 3;
        Decoder {
            middle_bn: BatchNormConfig::new(deepest).init(device),
            middle1: ConvLayer::new(deepest, deepest * 2, 3, true, device),
            middle2: ConvLayer::new(deepest * 2, deepest, 3, true, device),
            blocks,
            final_shuffle,
            res1: ConvLayer::new(cross, cross, 3, true, device),
            res2: ConvLayer::new(cross, cross, 3, true, device),
            head: ConvLayer::new(cross, classes, 1, false, device),
        }
    }

    /// `input`: the normalised 3-channel image; returns logits at its size.
    pub fn forward(&self, f: Features<B>, input: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = batch_norm_relu(&self.middle_bn, f.deepest);
        let mut x = self.middle2.forward(self.middle1.forward(x));
        for (block, skip) in self.blocks.iter().zip(f.skips.into_iter().rev()) {
            x = block.forward(x, skip);
        }
        if let Some(s) = &self.final_shuffle {
            x = s.forward(x);
        }
        let x = Tensor::cat(vec![fit(x, input.dims()), input], 1);
        let x = x.clone() + self.res2.forward(self.res1.forward(x));
        self.head.forward(x)
    }
}
