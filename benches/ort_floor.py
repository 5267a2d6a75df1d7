#!/usr/bin/env python3
"""The floor of the label benchmark: ONNX Runtime alone running a model on one random batch,
with 1 and 2 intra-op threads and as two 1-thread sessions side by side (images/s). No reading,
no pre-processing, no writing: what no labelling run of the same model and batch beats.

    python3 benches/ort_floor.py MODEL.onnx [--batch 8] [--size 128] [--input image]
"""
import argparse
import threading
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--input", default="image")
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    x = np.random.rand(a.batch, 1, a.size, a.size).astype(np.float32)

    def session(threads):
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        return ort.InferenceSession(a.model, o, providers=["CPUExecutionProvider"])

    def work(s, n):
        for _ in range(n):
            s.run(None, {a.input: x})

    for threads in (1, 2):
        s = session(threads)
        work(s, 3)
        t = time.perf_counter()
        work(s, a.runs)
        print(f"threads {threads}: {a.runs * a.batch / (time.perf_counter() - t):.1f} images/s")
    pair = [session(1), session(1)]
    for s in pair:
        work(s, 2)
    t = time.perf_counter()
    workers = [threading.Thread(target=work, args=(s, a.runs // 2)) for s in pair]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"2 sessions x 1 thread: {2 * (a.runs // 2) * a.batch / (time.perf_counter() - t):.1f} images/s")


if __name__ == "__main__":
    main()
