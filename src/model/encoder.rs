//! Encoders with torchvision's structure and parameter names, so torchvision weights load by an
//! explicit key map (`weights.rs`): ResNet34 (basic blocks), ResNet50 (bottlenecks, stride on the
//! 3×3 convolution as torchvision v1.5) and VGG16-BN (the `features` part, without its last max
//! pool, as fastai cuts it).
//!
//! Every width is `base_width / 64` of torchvision's, and the number of blocks per stage is
//! configurable, so tests train tiny versions of the same code.
//!
//! `forward` returns the skip features the U-Net decoder uses — the output of each stage just
//! before the resolution halves — and the deepest feature map.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};

use super::layers::conv;
use super::norm::{batch_norm, batch_norm_relu};

/// Encoder features: skips from the finest (stride 1 or 2) to the coarsest, then the deepest map.
pub struct Features<B: Backend> {
    pub skips: Vec<Tensor<B, 4>>,
    pub deepest: Tensor<B, 4>,
}

/// torchvision's `downsample`: a strided 1×1 convolution and BatchNorm on the shortcut.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

/// A residual block: basic (two 3×3 convs) or bottleneck (1×1, 3×3, 1×1 with `conv3`).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    pub conv3: Option<Conv2d<B>>,
    pub bn3: Option<BatchNorm<B>>,
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> Block<B> {
    fn new(cin: usize, width: usize, stride: usize, bottleneck: bool, device: &B::Device) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).init(device);
        let cout = if bottleneck { width * 4 } else { width };
        let downsample =
            (stride != 1 || cin != cout).then(|| Downsample { conv: conv(cin, cout, 1, stride, false).init(device), bn: bn(cout) });
        if bottleneck {
            Block {
                conv1: conv(cin, width, 1, 1, false).init(device),
                bn1: bn(width),
                conv2: conv(width, width, 3, stride, false).init(device),
                bn2: bn(width),
                conv3: Some(conv(width, cout, 1, 1, false).init(device)),
                bn3: Some(bn(cout)),
                downsample,
            }
        } else {
            Block {
                conv1: conv(cin, width, 3, stride, false).init(device),
                bn1: bn(width),
                conv2: conv(width, width, 3, 1, false).init(device),
                bn2: bn(width),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.downsample {
            Some(d) => batch_norm(&d.bn, d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let y = batch_norm_relu(&self.bn1, self.conv1.forward(x));
        let y = batch_norm(&self.bn2, self.conv2.forward(y));
        let y = match (&self.conv3, &self.bn3) {
            (Some(c3), Some(b3)) => batch_norm(b3, c3.forward(relu(y))),
            _ => y,
        };
        relu(y + shortcut)
    }
}

/// ResNet body (torchvision names: conv1, bn1, layer1…layer4).
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<Block<B>>,
    pub layer2: Vec<Block<B>>,
    pub layer3: Vec<Block<B>>,
    pub layer4: Vec<Block<B>>,
}

impl<B: Backend> ResNet<B> {
    /// `base` is the stem width (64 in torchvision); `blocks` per stage ([3, 4, 6, 3] for 34/50).
    pub fn new(base: usize, blocks: [usize; 4], bottleneck: bool, device: &B::Device) -> Self {
        let expansion = if bottleneck { 4 } else { 1 };
        let mut cin = base;
        let mut layers = Vec::new();
        for (stage, n) in blocks.iter().enumerate() {
            let width = base << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            let mut layer = Vec::new();
            for i in 0..(*n).max(1) {
                layer.push(Block::new(cin, width, if i == 0 { stride } else { 1 }, bottleneck, device));
                cin = width * expansion;
            }
            layers.push(layer);
        }
        let mut layers = layers.into_iter();
        ResNet {
            conv1: conv(3, base, 7, 2, false).init(device),
            bn1: BatchNormConfig::new(base).init(device),
            maxpool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(),
            layer1: layers.next().expect("4 stages"),
            layer2: layers.next().expect("4 stages"),
            layer3: layers.next().expect("4 stages"),
            layer4: layers.next().expect("4 stages"),
        }
    }

    /// Channels of the skips (strides 2, 4, 8, 16) and of the deepest map (stride 32).
    pub fn channels(base: usize, bottleneck: bool) -> (Vec<usize>, usize) {
        let e = if bottleneck { 4 } else { 1 };
        (vec![base, base * e, base * 2 * e, base * 4 * e], base * 8 * e)
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Features<B> {
        let run = |layer: &[Block<B>], x: Tensor<B, 4>| layer.iter().fold(x, |x, b| b.forward(x));
        let s2 = batch_norm_relu(&self.bn1, self.conv1.forward(x));
        let s4 = run(&self.layer1, self.maxpool.forward(s2.clone()));
        let s8 = run(&self.layer2, s4.clone());
        let s16 = run(&self.layer3, s8.clone());
        let deepest = run(&self.layer4, s16.clone());
        Features { skips: vec![s2, s4, s8, s16], deepest }
    }
}

/// VGG16-BN's convolutions per stage (torchvision `features`; 64·2^stage channels, capped at 512).
pub const VGG16_STAGES: [usize; 5] = [2, 2, 3, 3, 3];

/// VGG16-BN `features` without the last max pool: convs and BatchNorms in torchvision order.
#[derive(Module, Debug)]
pub struct Vgg<B: Backend> {
    pub convs: Vec<Conv2d<B>>,
    pub bns: Vec<BatchNorm<B>>,
    pub pool: MaxPool2d,
}

impl<B: Backend> Vgg<B> {
    pub fn stage_channels(base: usize) -> [usize; 5] {
        [base, base * 2, base * 4, base * 8, base * 8]
    }

    pub fn new(base: usize, device: &B::Device) -> Self {
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        let mut cin = 3;
        for (n, c) in VGG16_STAGES.iter().zip(Self::stage_channels(base)) {
            for _ in 0..*n {
                convs.push(conv(cin, c, 3, 1, true).init(device));
                bns.push(BatchNormConfig::new(c).init(device));
                cin = c;
            }
        }
        Vgg { convs, bns, pool: MaxPool2dConfig::new([2, 2]).init() }
    }

    pub fn channels(base: usize) -> (Vec<usize>, usize) {
        let c = Self::stage_channels(base);
        (c[..4].to_vec(), c[4])
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Features<B> {
        let mut x = x;
        let mut skips = Vec::new();
        let mut i = 0;
        for (stage, n) in VGG16_STAGES.iter().enumerate() {
            if stage > 0 {
                skips.push(x.clone());
                x = self.pool.forward(x);
            }
            for _ in 0..*n {
                x = batch_norm_relu(&self.bns[i], self.convs[i].forward(x));
                i += 1;
            }
        }
        Features { skips, deepest: x }
    }
}

/// The encoder of a model. A model holds one, so the size difference of the variants costs
/// nothing, and boxing would change the Burn module's shape.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Encoder<B: Backend> {
    ResNet(ResNet<B>),
    Vgg(Vgg<B>),
}

impl<B: Backend> Encoder<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Features<B> {
        match self {
            Encoder::ResNet(r) => r.forward(x),
            Encoder::Vgg(v) => v.forward(x),
        }
    }
}
