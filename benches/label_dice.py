#!/usr/bin/env python3
"""Mean per-image Dice (LV, MY) of one labeller's masks against another's (the phantom's truth by
default), read from the Delta `labels` table with the `deltalake` package, by the rule of
src/model/metrics.rs (docs/science.md §6): 2|P∩T| / (|P| + |T|), 1 where the class is absent
from both.

    python3 benches/label_dice.py DATA LABELLER [--truth phantom] [--studies 505,506]

DATA is a local data prefix. Prints the frames compared and the mean Dice of each class.
"""
import argparse

import numpy as np
from deltalake import DeltaTable


def dice(p, t, c):
    a, b = p == c, t == c
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("labeller")
    ap.add_argument("--truth", default="phantom")
    ap.add_argument("--studies", help="comma-separated study ids (default: every study the labeller has)")
    a = ap.parse_args()
    cols = ["study_id", "slice_index", "frame_index", "labeller", "mask"]
    t = DeltaTable(f"{a.data}/labels").to_pyarrow_table(columns=cols).to_pandas()
    t = t[t.labeller.isin([a.labeller, a.truth])]
    if a.studies:
        t = t[t.study_id.isin(a.studies.split(","))]
    key = ["study_id", "slice_index", "frame_index"]
    pairs = t[t.labeller == a.labeller].merge(t[t.labeller == a.truth], on=key, suffixes=("", "_truth"))
    scores = {1: [], 2: []}
    for m, tm in zip(pairs["mask"], pairs["mask_truth"]):
        p, q = np.frombuffer(m, np.uint8), np.frombuffer(tm, np.uint8)
        for c in scores:
            scores[c].append(dice(p, q, c))
    print(f"{a.labeller} against {a.truth}: {len(pairs)} frames of {pairs.study_id.nunique()} studies; "
          f"Dice LV {np.mean(scores[1]):.4f}, MY {np.mean(scores[2]):.4f}")


if __name__ == "__main__":
    main()
