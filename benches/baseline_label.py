#!/usr/bin/env python3
"""Python baseline for `cinestream label` with the ONNX engine: the same model on the same frames
with the same batch size and pre-processing, with onnxruntime + pyarrow + numpy.

    python3 benches/baseline_label.py DATA MODEL.onnx OUT_DIR [--batch 8] [--labeller NAME]

DATA is a local cinestream data prefix: the frames of the current version of its Delta `frames`
table are read (deltalake lists the committed files; pyarrow reads them, one study at a time
with a filter, the columns the work needs). MODEL.onnx's contract is the TOML beside it (our
U-Net's: `pipelines/models/cinestream_unet.toml`); only what that contract uses is implemented:
v / the 99.95th (or `high`) percentile of the whole study clipped to 1, pad + resize to S×S
(bilinear, zeros outside, the same pixel-centre map as cinestream), NCHW, one channel, logits
or probabilities, argmax, the class map, and the mask back on the frame's grid by nearest
neighbour. Each study's frames go to the model in batches of `--batch`, as cinestream does.
Writes the masks as a `labels` Parquet table (zstd level 1, files of at most 64 MiB) with the
pixel counts, and prints images/s, the share of the wall time spent in `session.run`, and the
total LV / MY / RV pixels (to set against cinestream's on the same frames). One process, the
way such a script is usually written; onnxruntime uses every core for the model.
"""
import argparse
import os
import time
import tomllib

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import DeltaTable

FILE_BYTES = 64 << 20
LABELS = pa.schema([
    ("study_id", pa.string()), ("split", pa.string()), ("slice_index", pa.int32()), ("frame_index", pa.int32()),
    ("labeller", pa.string()), ("height", pa.int32()), ("width", pa.int32()),
    ("pixel_spacing_row_mm", pa.float64()), ("pixel_spacing_col_mm", pa.float64()), ("slice_spacing_mm", pa.float64()),
    ("lv_pixels", pa.int64()), ("my_pixels", pa.int64()), ("rv_pixels", pa.int64()),
    ("source_key", pa.string()), ("fill", pa.string()), ("mask", pa.binary()),
])
COLUMNS = ["study_id", "split", "slice_index", "frame_index", "height", "width", "pixel_spacing_row_mm",
           "pixel_spacing_col_mm", "slice_spacing_mm", "source_key", "fill", "pixels"]


def contract_of(model):
    with open(os.path.splitext(model)[0] + ".toml", "rb") as f:
        c = tomllib.load(f)
    assert c.get("layout", "nchw") == "nchw" and c.get("channels", 1) == 1 and not c.get("transpose", False), "NCHW, one channel"
    assert c["size"]["kind"] == "pad_resize", "pad_resize only"
    s = c["intensity"]["scaling"]
    assert s["kind"] == "percentile" and s.get("low") is None and s["over"] == "study", "v / P_high over the study only"
    assert c["intensity"].get("normalise", "none") == "none" and c["output_kind"] in ("logits", "probabilities")
    return c


def quantile(values, p):
    """The value at sorted index ⌊(n − 1)·p⌋ (cinestream's rule)."""
    k = int((values.size - 1) * p)
    return float(np.partition(values, k)[k])


def place(img, size, scale):
    """The image on the size × size model grid: bilinear at the mapped centres, zeros outside."""
    h, w = img.shape
    (ay, by), (ax, bx) = axis_pair(h, w, size, scale)
    y = ay * np.arange(size) + by
    x = ax * np.arange(size) + bx
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = (y - y0).astype(np.float32)[:, None], (x - x0).astype(np.float32)[None, :]
    pad = np.zeros((h + 2, w + 2), np.float32)
    pad[1:-1, 1:-1] = img
    yi0, yi1 = np.clip(y0 + 1, 0, h + 1), np.clip(y0 + 2, 0, h + 1)
    xi0, xi1 = np.clip(x0 + 1, 0, w + 1), np.clip(x0 + 2, 0, w + 1)
    top = pad[yi0][:, xi0] * (1 - fx) + pad[yi0][:, xi1] * fx
    bottom = pad[yi1][:, xi0] * (1 - fx) + pad[yi1][:, xi1] * fx
    return top * (1 - fy) + bottom * fy


def axis_pair(h, w, size, scale):
    """Pixel-centre maps model → image per axis, input = a·model + b (pad_resize: scaled about
    the centres)."""
    a = 1.0 / scale
    return (a, (0.5 - size / 2.0) / scale + h / 2.0 - 0.5), (a, (0.5 - size / 2.0) / scale + w / 2.0 - 0.5)


def back(mask, h, w, size, scale):
    """A model-grid mask on the h × w grid: nearest model pixel, background outside."""
    (ay, by), (ax, bx) = axis_pair(h, w, size, scale)
    rnd = lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5)  # noqa: E731  (round half away from zero)
    my = rnd((np.arange(h) - by) / ay).astype(np.int64)
    mx = rnd((np.arange(w) - bx) / ax).astype(np.int64)
    vy, vx = (my >= 0) & (my < size), (mx >= 0) & (mx < size)
    out = mask[np.clip(my, 0, size - 1)][:, np.clip(mx, 0, size - 1)]
    out[~vy, :] = 0
    out[:, ~vx] = 0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--labeller", default="python")
    a = ap.parse_args()
    started = time.perf_counter()
    c = contract_of(a.model)
    size, high = c["size"]["size"], c["intensity"]["scaling"]["high"] / 100.0
    class_map = np.array(c["classes"], np.uint8)
    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    frames = pads.dataset(DeltaTable(os.path.join(a.data, "frames")).file_uris(), format="parquet")
    studies = sorted(set(frames.to_table(columns=["study_id"]).column("study_id").to_pylist()))
    os.makedirs(a.out, exist_ok=True)
    writer, part, written = None, 0, 0
    images, busy, counts = 0, 0.0, np.zeros(4, np.int64)
    for study in studies:
        t = frames.to_table(columns=COLUMNS, filter=pc.field("study_id") == study)
        t = t.sort_by([("slice_index", "ascending"), ("frame_index", "ascending")])
        hs, ws = t.column("height").to_numpy(), t.column("width").to_numpy()
        pixels = [np.frombuffer(p, "<u2").reshape(h, w) for p, h, w in zip(t.column("pixels").to_pylist(), hs, ws)]
        divisor = max(quantile(np.concatenate([p.ravel() for p in pixels]), high), 1.0)
        inputs = np.stack([place(np.clip(p.astype(np.float32) / divisor, 0, 1), size, size / max(p.shape)) for p in pixels])[:, None]
        masks = []
        for i in range(0, len(inputs), a.batch):
            t0 = time.perf_counter()
            out = session.run([c.get("output", "output")], {c.get("input", "input"): inputs[i:i + a.batch]})[0]
            busy += time.perf_counter() - t0
            for m, p in zip(class_map[out.argmax(axis=1)], pixels[i:i + a.batch]):
                masks.append(back(m, p.shape[0], p.shape[1], size, size / max(p.shape)))
        per_class = np.array([np.bincount(m.ravel(), minlength=4)[:4] for m in masks])
        counts += per_class.sum(axis=0)
        images += len(masks)
        batch = pa.table({
            "study_id": t.column("study_id"), "split": t.column("split"), "slice_index": t.column("slice_index"),
            "frame_index": t.column("frame_index"), "labeller": pa.array([a.labeller] * len(masks)),
            "height": t.column("height"), "width": t.column("width"),
            "pixel_spacing_row_mm": t.column("pixel_spacing_row_mm"), "pixel_spacing_col_mm": t.column("pixel_spacing_col_mm"),
            "slice_spacing_mm": t.column("slice_spacing_mm"),
            "lv_pixels": pa.array(per_class[:, 1]), "my_pixels": pa.array(per_class[:, 2]), "rv_pixels": pa.array(per_class[:, 3]),
            "source_key": t.column("source_key"), "fill": t.column("fill"),
            "mask": pa.array([m.tobytes() for m in masks], pa.binary()),
        }, schema=LABELS)
        if writer is None:
            writer = pq.ParquetWriter(os.path.join(a.out, f"part-{part:05}.parquet"), LABELS, compression="zstd", compression_level=1)
        writer.write_table(batch)
        written += batch.nbytes
        if written >= FILE_BYTES:
            writer.close()
            writer, part, written = None, part + 1, 0
    if writer is not None:
        writer.close()
    wall = time.perf_counter() - started
    print(f"python label: {images} images in {wall:.2f} s, {images / wall:.1f} images/s, model busy {100 * busy / wall:.0f}% "
          f"of the time; pixels LV {counts[1]} MY {counts[2]} RV {counts[3]}")


if __name__ == "__main__":
    main()
