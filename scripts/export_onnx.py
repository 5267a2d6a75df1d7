#!/usr/bin/env python3
"""One of our trained models to ONNX, for `cinestream label` with the ONNX engine (or any tool
that runs ONNX).

    cinestream export --model ./data/models/phantom-demo/model --out ./export
    python3 scripts/export_onnx.py ./export            # → ./export/model.onnx
    cinestream label --data ./data --model ./export/model.onnx --labeller demo-onnx

Reads what `cinestream export` wrote into the folder: `model.safetensors` (the weights with
PyTorch names), `model.json` (the card: architecture) and `model.toml` (the contract: the ONNX
input and output names and the input size). It loads the weights strictly into the PyTorch twin
of our network (scripts/torch_unet.py: every parameter and running statistic filled, no name
left over, every shape equal), and writes `model.onnx` with `torch.onnx.export` (TorchScript exporter,
a dynamic batch axis, eval mode: BatchNorm uses its running statistics). When onnxruntime can
be imported it also runs the ONNX model and the twin on the same batch and prints the largest
difference of their logits.

Needs torch, safetensors and onnx (torch.onnx.export writes through it); no GPU.
"""
import argparse
import json
import os
import sys
import tomllib

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="the folder `cinestream export --out` wrote")
    ap.add_argument("--out", help="the ONNX file (default: FOLDER/model.onnx, where model.toml expects it)")
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    read = lambda name: os.path.join(a.folder, name)  # noqa: E731
    for name in ("model.safetensors", "model.json", "model.toml"):
        if not os.path.exists(read(name)):
            sys.exit(f"export_onnx: {read(name)} is missing: run `cinestream export --model <run>/model --out {a.folder}` first")
    with open(read("model.json")) as f:
        card = json.load(f)
    with open(read("model.toml"), "rb") as f:
        contract = tomllib.load(f)
    arch = card["architecture"]
    try:
        model = torch_unet.load(load_file(read("model.safetensors")), arch)
    except ValueError as e:
        sys.exit(f"export_onnx: {read('model.safetensors')}: {e}")
    size = contract["size"]["size"]
    x = torch.rand(2, 1, size, size)
    out = a.out or read("model.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (x,),
            out,
            input_names=[contract["input"]],
            output_names=[contract["output"]],
            dynamic_axes={contract["input"]: {0: "batch"}, contract["output"]: {0: "batch"}},
            opset_version=a.opset,
            dynamo=False,
        )
        expected = model(x).numpy()
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {arch['encoder']} width {arch['width']} blocks {arch['blocks']}, {params:,} parameters, input {contract['input']} [N, 1, {size}, {size}] → {contract['output']} [N, {arch['classes']}, {size}, {size}]")
    try:
        import onnxruntime
    except ImportError:
        return
    got = onnxruntime.InferenceSession(out).run([contract["output"]], {contract["input"]: x.numpy()})[0]
    print(f"onnxruntime {onnxruntime.__version__}: max |ONNX − twin| = {abs(got - expected).max():.2e} (logits up to {abs(expected).max():.1f})")


if __name__ == "__main__":
    main()
