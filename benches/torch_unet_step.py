#!/usr/bin/env python3
"""PyTorch side of the GPU training comparison (issue 4): the same U-Net (fastai v1 DynamicUnet
structure over torchvision's resnet34, as src/model/ builds it) trained with the same recipe
step (cross-entropy, AdamW β=(0.95, 0.99), wd 1e-2) at 256², batch 32, eager mode.

    python3 benches/torch_unet_step.py [--steps 50] [--device cuda]

Prints images/s, median step time and peak GPU memory, to set beside
`cinestream`'s CUDA figures (`cargo bench --bench train_step --features cuda` on the same GPU).
Needs torch and torchvision; no fastai.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def conv_layer(ni, nf, ks=3, act=True):
    layers = [nn.Conv2d(ni, nf, ks, padding=ks // 2, bias=False)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.BatchNorm2d(nf))
    return nn.Sequential(*layers)


class PixelShuffleICNR(nn.Module):
    def __init__(self, ni, nf):
        super().__init__()
        self.conv = nn.Conv2d(ni, nf * 4, 1)
        self.shuf = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuf(F.relu(self.conv(x)))


class UnetBlock(nn.Module):
    def __init__(self, up_in, skip, last):
        super().__init__()
        self.shuf = PixelShuffleICNR(up_in, up_in // 2)
        self.bn = nn.BatchNorm2d(skip)
        ni = up_in // 2 + skip
        nf = ni // 2 if last else ni
        self.conv1, self.conv2 = conv_layer(ni, nf), conv_layer(nf, nf)

    def forward(self, x, s):
        up = self.shuf(x)
        if up.shape[-2:] != s.shape[-2:]:
            up = F.interpolate(up, s.shape[-2:], mode="nearest")
        return self.conv2(self.conv1(F.relu(torch.cat([up, self.bn(s)], 1))))


class Unet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        r = torchvision.models.resnet34()
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.pool, self.l1, self.l2, self.l3, self.l4 = r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4
        self.middle = nn.Sequential(nn.BatchNorm2d(512), nn.ReLU(), conv_layer(512, 1024), conv_layer(1024, 512))
        ch, blocks = 512, []
        for i, s in enumerate([256, 128, 64, 64]):
            last = i == 3
            blocks.append(UnetBlock(ch, s, last))
            ch = (ch // 2 + s) // (2 if last else 1)
        self.blocks = nn.ModuleList(blocks)
        self.final = PixelShuffleICNR(ch, ch)
        self.res = nn.Sequential(conv_layer(ch + 3, ch + 3), conv_layer(ch + 3, ch + 3))
        self.head = conv_layer(ch + 3, classes, ks=1, act=False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x.repeat(1, 3, 1, 1) - self.mean) / self.std
        s2 = self.stem(x)
        s4 = self.l1(self.pool(s2))
        s8 = self.l2(s4)
        s16 = self.l3(s8)
        y = self.middle(self.l4(s16))
        for b, s in zip(self.blocks, [s16, s8, s4, s2]):
            y = b(y, s)
        y = self.final(y)
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, x.shape[-2:], mode="nearest")
        y = torch.cat([y, x], 1)
        return self.head(y + self.res(y))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    model = Unet().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.99), weight_decay=1e-2)
    x = torch.rand(a.batch, 1, a.size, a.size, device=dev)
    y = torch.randint(0, 3, (a.batch, a.size, a.size), device=dev)
    times = []
    for i in range(a.steps + 5):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= 5:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"pytorch eager {a.size}² batch {a.batch}: {med:.4f} s/step, {a.batch / med:.1f} images/s, peak memory {mem:.2f} GiB, {params:.1f} M parameters")


if __name__ == "__main__":
    main()
