"""The PyTorch twin of cinestream's segmentation network (src/model/): the same layers, the
same module tree and the same parameter names, so the state dict that `cinestream export`
writes loads with `load_state_dict(strict=True)` and computes what the Burn model computes.

- Encoders (src/model/encoder.rs): ResNet with basic blocks ("resnet34") or bottlenecks
  ("resnet50", stride on the 3×3 as torchvision v1.5), any stem width and blocks per stage;
  VGG16-BN's `features` without the last max pool ("vgg16_bn").
- Decoder (src/model/unet.rs): fastai v1's DynamicUnet — middle BatchNorm → ReLU → two
  conv_layers, one UnetBlock per skip (pixel-shuffle up, BatchNorm on the skip, concatenate,
  ReLU, two conv_layers; the last halves the channels), a final pixel shuffle for ResNets, the
  input concatenated, a residual pair of conv_layers and a 1×1 conv_layer head.
- conv_layer is conv (no bias) → ReLU → BatchNorm, as fastai v1 (src/model/layers.rs).
- Input [N, 1, H, W] in 0…1; the network replicates the channel and applies ImageNet
  normalisation itself. Output: logits [N, classes, H, W].

Used by scripts/export_onnx.py (ONNX export) and benches/torch_unet_step.py (the PyTorch side
of the training and inference benchmarks).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
VGG16_STAGES = [2, 2, 3, 3, 3]


def conv(cin, cout, kernel, stride=1, bias=False):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias)


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, kernel=3, activation=True):
        super().__init__()
        self.conv, self.bn, self.activation = conv(cin, cout, kernel), nn.BatchNorm2d(cout), activation

    def forward(self, x):
        y = self.conv(x)
        return self.bn(F.relu(y) if self.activation else y)


class PixelShuffleIcnr(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = conv(cin, cout * 4, 1, bias=True)

    def forward(self, x):
        return F.pixel_shuffle(F.relu(self.conv(x)), 2)


class Downsample(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv, self.bn = conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    def __init__(self, cin, width, stride, bottleneck):
        super().__init__()
        cout = width * 4 if bottleneck else width
        self.bottleneck = bottleneck
        if bottleneck:
            self.conv1, self.conv2, self.conv3 = conv(cin, width, 1), conv(width, width, 3, stride), conv(width, cout, 1)
            self.bn3 = nn.BatchNorm2d(cout)
        else:
            self.conv1, self.conv2 = conv(cin, width, 3, stride), conv(width, width, 3)
        self.bn1, self.bn2 = nn.BatchNorm2d(width), nn.BatchNorm2d(width)
        self.downsample = Downsample(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.bottleneck:
            y = self.bn3(self.conv3(F.relu(y)))
        return F.relu(y + shortcut)


class ResNet(nn.Module):
    def __init__(self, base, blocks, bottleneck):
        super().__init__()
        e = 4 if bottleneck else 1
        self.conv1, self.bn1 = conv(3, base, 7, 2), nn.BatchNorm2d(base)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, layers = base, []
        for stage, n in enumerate(blocks):
            width, stride = base << stage, 1 if stage == 0 else 2
            layer = []
            for i in range(max(n, 1)):
                layer.append(Block(cin, width, stride if i == 0 else 1, bottleneck))
                cin = width * e
            layers.append(nn.ModuleList(layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.skip_channels = [base, base * e, base * 2 * e, base * 4 * e]
        self.deepest_channels = base * 8 * e
        self.finest_stride = 2

    def forward(self, x):
        def run(layer, x):
            for b in layer:
                x = b(x)
            return x

        s2 = F.relu(self.bn1(self.conv1(x)))
        s4 = run(self.layer1, self.maxpool(s2))
        s8 = run(self.layer2, s4)
        s16 = run(self.layer3, s8)
        return [s2, s4, s8, s16], run(self.layer4, s16)


class Vgg(nn.Module):
    def __init__(self, base):
        super().__init__()
        stages = [base, base * 2, base * 4, base * 8, base * 8]
        convs, bns, cin = [], [], 3
        for n, c in zip(VGG16_STAGES, stages):
            for _ in range(n):
                convs.append(conv(cin, c, 3, bias=True))
                bns.append(nn.BatchNorm2d(c))
                cin = c
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)
        self.skip_channels, self.deepest_channels, self.finest_stride = stages[:4], stages[4], 1

    def forward(self, x):
        skips, i = [], 0
        for stage, n in enumerate(VGG16_STAGES):
            if stage > 0:
                skips.append(x)
                x = F.max_pool2d(x, 2)
            for _ in range(n):
                x = F.relu(self.bns[i](self.convs[i](x)))
                i += 1
        return skips, x


def fit(x, like):
    return x if x.shape[-2:] == like.shape[-2:] else F.interpolate(x, like.shape[-2:], mode="nearest")


class UnetBlock(nn.Module):
    def __init__(self, up_in, skip, last):
        super().__init__()
        ni = up_in // 2 + skip
        self.out_channels = ni // 2 if last else ni
        self.shuf, self.bn = PixelShuffleIcnr(up_in, up_in // 2), nn.BatchNorm2d(skip)
        self.conv1, self.conv2 = ConvLayer(ni, self.out_channels), ConvLayer(self.out_channels, self.out_channels)

    def forward(self, x, skip):
        x = F.relu(torch.cat([fit(self.shuf(x), skip), self.bn(skip)], 1))
        return self.conv2(self.conv1(x))


class Decoder(nn.Module):
    def __init__(self, skips, deepest, finest_stride, classes):
        super().__init__()
        self.middle_bn = nn.BatchNorm2d(deepest)
        self.middle1, self.middle2 = ConvLayer(deepest, deepest * 2), ConvLayer(deepest * 2, deepest)
        ch, blocks = deepest, []
        for i, s in enumerate(reversed(skips)):
            blocks.append(UnetBlock(ch, s, i + 1 == len(skips)))
            ch = blocks[-1].out_channels
        self.blocks = nn.ModuleList(blocks)
        self.final_shuffle = PixelShuffleIcnr(ch, ch) if finest_stride > 1 else None
        cross = ch + 3
        self.res1, self.res2 = ConvLayer(cross, cross), ConvLayer(cross, cross)
        self.head = ConvLayer(cross, classes, 1, activation=False)

    def forward(self, skips, deepest, x_in):
        x = self.middle2(self.middle1(F.relu(self.middle_bn(deepest))))
        for block, skip in zip(self.blocks, reversed(skips)):
            x = block(x, skip)
        if self.final_shuffle is not None:
            x = self.final_shuffle(x)
        x = torch.cat([fit(x, x_in), x_in], 1)
        return self.head(x + self.res2(self.res1(x)))


class SegModel(nn.Module):
    """`architecture` is the card's: {"encoder", "width", "blocks", "classes"}."""

    def __init__(self, encoder="resnet34", width=64, blocks=(3, 4, 6, 3), classes=3):
        super().__init__()
        if encoder in ("resnet34", "resnet50"):
            self.encoder = ResNet(width, list(blocks), encoder == "resnet50")
        elif encoder == "vgg16_bn":
            self.encoder = Vgg(width)
        else:
            raise ValueError(f"unknown encoder {encoder!r}: resnet34, resnet50 or vgg16_bn")
        e = self.encoder
        self.decoder = Decoder(e.skip_channels, e.deepest_channels, e.finest_stride, classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        x = (x.repeat(1, 3, 1, 1) - self.mean) / self.std
        skips, deepest = self.encoder(x)
        return self.decoder(skips, deepest, x)


def load(state_dict, architecture):
    """The twin of a card's architecture with a `cinestream export` state dict loaded (strict:
    every parameter and running statistic filled, nothing left over)."""
    m = SegModel(architecture["encoder"], architecture["width"], architecture["blocks"], architecture["classes"])
    own = m.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    extra = [k for k in state_dict if k not in own]
    if missing or extra:
        raise ValueError(f"the state dict does not fit the twin: {len(missing)} missing (first {missing[:3]}), {len(extra)} unexpected (first {extra[:3]})")
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"shapes differ: {bad[:3]}")
    m.load_state_dict(state_dict, strict=False)
    return m.eval()
