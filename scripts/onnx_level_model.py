#!/usr/bin/env python3
"""Writes a small ONNX model whose output is known analytically, for the contract tests
(tests/it/label_onnx.rs): per pixel, four scores -(x - c/3)^2 for c = 0..3, so the argmax is the
level nearest to the input value x in {0, 1/3, 2/3, 1}. Spatial dimensions are dynamic.

    python3 scripts/onnx_level_model.py OUT.onnx nchw|nhwc

Needs the `onnx` package (pip install onnx).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(layout: str) -> onnx.ModelProto:
    axis = 1 if layout == "nchw" else 3
    dims = ["n", 1, "h", "w"] if layout == "nchw" else ["n", "h", "w", 1]
    out_dims = ["n", 4, "h", "w"] if layout == "nchw" else ["n", "h", "w", 4]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, out_dims)
    nodes, inits, parts = [], [], []
    for c in range(4):
        level = numpy_helper.from_array(np.array(c / 3.0, dtype=np.float32), f"level{c}")
        inits.append(level)
        nodes.append(helper.make_node("Sub", ["image", f"level{c}"], [f"d{c}"]))
        nodes.append(helper.make_node("Mul", [f"d{c}", f"d{c}"], [f"sq{c}"]))
        nodes.append(helper.make_node("Neg", [f"sq{c}"], [f"s{c}"]))
        parts.append(f"s{c}")
    nodes.append(helper.make_node("Concat", parts, ["scores"], axis=axis))
    graph = helper.make_graph(nodes, f"levels_{layout}", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    out, layout = sys.argv[1], sys.argv[2]
    assert layout in ("nchw", "nhwc"), layout
    onnx.save(build(layout), out)
