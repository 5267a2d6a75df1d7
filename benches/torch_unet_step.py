#!/usr/bin/env python3
"""PyTorch side of the training and inference comparisons: the same U-Net as cinestream's
(scripts/torch_unet.py, the PyTorch twin of src/model/: fastai v1 DynamicUnet over a ResNet, the
same layers and parameter names), eager mode.

    python3 benches/torch_unet_step.py [--mode train|infer] [--steps 50] [--batch 32]
        [--size 256] [--width 64] [--blocks 3,4,6,3] [--device cuda|cpu] [--threads N]

train: one recipe step per iteration (cross-entropy, AdamW β=(0.95, 0.99), wd 1e-2), as
`cargo bench --bench train_step`. infer: eval-mode forward passes under no_grad, as the Burn
engine of `cinestream label`. Prints images/s, the median step time and peak GPU memory, to set
beside cinestream's figures on the same machine. Needs torch; no torchvision, no fastai.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_unet import SegModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--blocks", default="3,4,6,3")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    model = SegModel("resnet34", a.width, [int(b) for b in a.blocks.split(",")], 3).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.99), weight_decay=1e-2)
    x = torch.rand(a.batch, 1, a.size, a.size, device=dev)
    y = torch.randint(0, 3, (a.batch, a.size, a.size), device=dev)
    if a.mode == "infer":
        model.eval()

    def step():
        if a.mode == "infer":
            with torch.no_grad():
                model(x)
            return
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    times = []
    warmup = 2 if dev.type == "cpu" else 5
    for i in range(a.steps + warmup):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"pytorch eager {a.mode} width {a.width} blocks {a.blocks} {a.size}² batch {a.batch} on {a.device} ({torch.get_num_threads()} threads): {med:.4f} s/step, {a.batch / med:.1f} images/s, peak memory {mem:.2f} GiB, {params:.1f} M parameters")


if __name__ == "__main__":
    main()
