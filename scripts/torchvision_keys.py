#!/usr/bin/env python3
"""Prints the state-dict keys of a torchvision model, one per line (tests/fixtures/...keys.txt).

    python3 scripts/torchvision_keys.py resnet34 > tests/fixtures/torchvision_resnet34_keys.txt

With torchvision installed the keys come from `torchvision.models.<name>().state_dict()`.
Without it (this project's build machine cannot install torch), `--layout` writes them from
torchvision's ResNet definition (resnet.py: conv1, bn1, layer1-4 of BasicBlock/Bottleneck with
a `downsample` Sequential(conv, bn) on the first block of a stage that changes shape, fc); run
the script on a machine with torchvision to check the fixture (`diff` must be empty).
"""
import sys

BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
LAYOUTS = {"resnet34": ([3, 4, 6, 3], False), "resnet50": ([3, 4, 6, 3], True)}


def layout_keys(name):
    blocks, bottleneck = LAYOUTS[name]
    keys = ["conv1.weight"] + [f"bn1.{b}" for b in BN]
    for stage, n in enumerate(blocks, start=1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            convs = 3 if bottleneck else 2
            for c in range(1, convs + 1):
                keys.append(f"{p}.conv{c}.weight")
                keys += [f"{p}.bn{c}.{b}" for b in BN]
            if i == 0 and (stage > 1 or bottleneck):
                keys.append(f"{p}.downsample.0.weight")
                keys += [f"{p}.downsample.1.{b}" for b in BN]
    return keys + ["fc.weight", "fc.bias"]


def main():
    name = sys.argv[1]
    if "--layout" in sys.argv:
        keys = layout_keys(name)
    else:
        import torchvision  # noqa: PLC0415

        keys = list(getattr(torchvision.models, name)().state_dict().keys())
    print("\n".join(keys))


if __name__ == "__main__":
    main()
