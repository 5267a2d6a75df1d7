#!/usr/bin/env python3
"""PyTorch side of the encoder check (issue 4): does our ResNet34 encoder, loaded from a
torchvision state dict, compute what torchvision computes?

    python3 benches/torchvision_parity.py OUT_DIR [--weights resnet34.pth] [--device cpu]
    CINESTREAM_TORCHVISION_PARITY=OUT_DIR cargo nextest run torchvision

Writes to OUT_DIR:
  resnet34.safetensors   the state dict (torchvision's ImageNet weights with --weights, else a
                         seeded random initialisation whose BatchNorm running statistics and
                         affine parameters are randomised too, so eval-mode BatchNorm is tested)
  resnet34.pth           the same state dict as torch.save writes it
  parity.safetensors     `input` [2, 3, 96, 128] (ImageNet-normalised range) and torchvision's
                         eval-mode features: `s2` (relu(bn1(conv1))), `s4` (layer1 after the
                         max pool), `s8`, `s16` (layer2, layer3) and `deepest` (layer4)

The Rust test (tests/it/torchvision.rs) loads each state dict through `model::weights` (the
same key map `cinestream train` uses for `init = { imagenet = … }`), runs the encoder on the
CPU backend and requires a relative error (max |ours − theirs| / max |theirs|) below 1e-4 for
every feature map. Needs torch, torchvision, safetensors; runs on a CPU.
"""
import argparse
import os

import torch
import torchvision
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--weights", help="a torchvision resnet34 state dict (.pth)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(2026)
    m = torchvision.models.resnet34()
    if a.weights:
        m.load_state_dict(torch.load(a.weights, map_location="cpu"))
    else:
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
    m.eval().to(a.device)
    state = {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
    save_file(state, os.path.join(a.out, "resnet34.safetensors"))
    torch.save(state, os.path.join(a.out, "resnet34.pth"))
    x = torch.randn(2, 3, 96, 128, device=a.device)
    with torch.no_grad():
        s2 = m.relu(m.bn1(m.conv1(x)))
        s4 = m.layer1(m.maxpool(s2))
        s8 = m.layer2(s4)
        s16 = m.layer3(s8)
        deepest = m.layer4(s16)
    out = {"input": x, "s2": s2, "s4": s4, "s8": s8, "s16": s16, "deepest": deepest}
    save_file({k: v.detach().cpu().contiguous() for k, v in out.items()}, os.path.join(a.out, "parity.safetensors"))
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}: wrote {a.out}")


if __name__ == "__main__":
    main()
