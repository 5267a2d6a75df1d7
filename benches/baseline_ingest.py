"""Python baseline for `cinestream ingest`: the same work with pydicom + numpy + pyarrow.

Lists the Kaggle-layout input, parses every DICOM file, groups slices, applies the orientation
(signed in-plane rotation) and scaling fixes with the same affine resampling (vectorised numpy,
bilinear), orders frames by trigger time, and writes a `frames` Parquet table (u16 pixels,
zstd level 1, same columns) in bounded files. One process, as the original scripts ran.

    python3 benches/baseline_ingest.py INPUT_DIR OUTPUT_DIR
"""
import os
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydicom

MAX_SIZE = 256
SHARD_BYTES = 128 << 20


def grid(ds):
    o = np.array([float(v) for v in ds.ImageOrientationPatient])
    return {
        "origin": np.array([float(v) for v in ds.ImagePositionPatient]),
        "row": o[:3] / np.linalg.norm(o[:3]),
        "col": o[3:] / np.linalg.norm(o[3:]),
        "spacing": np.array([float(v) for v in ds.PixelSpacing]),
        "rows": int(ds.Rows),
        "cols": int(ds.Columns),
    }


def resample(img, src, dst):
    """Bilinear sampling of `img` (on grid src) at the pixel centres of grid dst."""
    ii, jj = np.meshgrid(np.arange(dst["rows"]), np.arange(dst["cols"]), indexing="ij")
    pts = dst["origin"] + jj[..., None] * dst["spacing"][1] * dst["row"] + ii[..., None] * dst["spacing"][0] * dst["col"]
    d = pts - src["origin"]
    si = d @ src["col"] / src["spacing"][0]
    sj = d @ src["row"] / src["spacing"][1]
    i0, j0 = np.floor(si).astype(np.int64), np.floor(sj).astype(np.int64)
    fi, fj = si - i0, sj - j0
    h, w = img.shape
    pad = np.pad(img.astype(np.float64), 1)
    def at(a, b):
        return pad[np.clip(a + 1, 0, h + 1), np.clip(b + 1, 0, w + 1)]
    out = at(i0, j0) * (1 - fi) * (1 - fj) + at(i0, j0 + 1) * (1 - fi) * fj + at(i0 + 1, j0) * fi * (1 - fj) + at(i0 + 1, j0 + 1) * fi * fj
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)


def curate(files):
    slices = defaultdict(list)
    for key, ds in files:
        g = grid(ds)
        slices[(key.rsplit("/", 1)[0], tuple(np.round(g["origin"], 2)), tuple(np.round(np.r_[g["row"], g["col"]], 4)))].append((key, ds, g))
    normals = Counter()
    for imgs in slices.values():
        g = imgs[0][2]
        normals[tuple(np.round(np.cross(g["row"], g["col"]), 3))] += len(imgs)
    n = np.array(normals.most_common(1)[0][0])
    n /= np.linalg.norm(n)
    kept = [v for v in slices.values() if abs(np.dot(np.cross(v[0][2]["row"], v[0][2]["col"]), n)) > np.cos(np.radians(1))]
    rows = Counter(tuple(np.round(v[0][2]["row"], 3)) for v in kept).most_common(1)[0][0]
    r = np.array(rows) / np.linalg.norm(rows)
    c = np.cross(n, r)
    sizes = Counter((v[0][2]["rows"], v[0][2]["cols"]) for v in kept).most_common(1)[0][0]
    spacing = Counter(tuple(np.round(v[0][2]["spacing"], 4)) for v in kept).most_common(1)[0][0]
    ref = next(v[0][2] for v in kept if (v[0][2]["rows"], v[0][2]["cols"]) == sizes)
    target = {"origin": ref["origin"], "row": r, "col": c, "spacing": np.array(spacing), "rows": sizes[0], "cols": sizes[1]}
    scale = max(sizes) / MAX_SIZE
    if scale > 1:
        centre = target["origin"] + (sizes[1] - 1) / 2 * spacing[1] * r + (sizes[0] - 1) / 2 * spacing[0] * c
        nr, nc = round(sizes[0] / scale), round(sizes[1] / scale)
        sp = np.array([spacing[0] * sizes[0] / nr, spacing[1] * sizes[1] / nc])
        target = {"origin": centre - (nc - 1) / 2 * sp[1] * r - (nr - 1) / 2 * sp[0] * c, "row": r, "col": c, "spacing": sp, "rows": nr, "cols": nc}
    kept.sort(key=lambda v: -np.dot(v[0][2]["origin"], n))
    out = []
    for k, imgs in enumerate(kept):
        g = imgs[0][2]
        shift = np.dot(g["origin"] - target["origin"], n)
        tg = dict(target, origin=target["origin"] + shift * n)
        same = g["rows"] == tg["rows"] and g["cols"] == tg["cols"] and np.allclose(g["origin"], tg["origin"], atol=0.01) and np.allclose(g["row"], r) and np.allclose(g["spacing"], tg["spacing"])
        imgs.sort(key=lambda x: (float(x[1].get("TriggerTime", 0)), int(x[1].get("InstanceNumber", 0))))
        for t, (key, ds, _) in enumerate(imgs):
            px = ds.pixel_array.astype(np.uint16)
            if not same:
                px = resample(px, g, tg)
            out.append((k, t, float(np.dot(g["origin"], n)), float(ds.get("TriggerTime", 0)), key, tg, px))
    return out


def main(inp, outdir):
    start = time.time()
    os.makedirs(os.path.join(outdir, "frames"), exist_ok=True)
    studies = defaultdict(list)
    for root, _, names in os.walk(inp):
        for name in names:
            if name.endswith(".dcm"):
                path = os.path.join(root, name)
                key = os.path.relpath(path, inp)
                studies[key.split("/study/")[0]].append(key)
    cols = defaultdict(list)
    buffered, part, images = 0, 0, 0

    def flush():
        nonlocal cols, buffered, part
        if not cols:
            return
        pq.write_table(pa.table(cols), os.path.join(outdir, "frames", f"part-{part:05}.parquet"), compression="zstd", compression_level=1, use_dictionary=["study_id", "split"])
        cols, buffered, part = defaultdict(list), 0, part + 1

    for study in sorted(studies):
        files = []
        for key in sorted(studies[study]):
            try:
                ds = pydicom.dcmread(os.path.join(inp, key))
                ds.pixel_array  # decode now; fail here for broken files
                files.append((key, ds))
            except Exception:
                continue
        split, sid = study.split("/")[-2:]
        for k, t, loc, tt, key, g, px in curate(files):
            cols["study_id"].append(sid)
            cols["split"].append(split)
            cols["slice_index"].append(k)
            cols["frame_index"].append(t)
            cols["slice_location_mm"].append(loc)
            cols["trigger_time_ms"].append(tt)
            cols["height"].append(g["rows"])
            cols["width"].append(g["cols"])
            cols["pixel_spacing_row_mm"].append(float(g["spacing"][0]))
            cols["pixel_spacing_col_mm"].append(float(g["spacing"][1]))
            cols["source_key"].append(key)
            b = px.astype("<u2").tobytes()
            cols["pixels"].append(b)
            buffered += len(b)
            images += 1
        if buffered >= SHARD_BYTES:
            flush()
    flush()
    secs = time.time() - start
    print(f"baseline: {images} images in {secs:.2f} s = {images / secs:.1f} images/s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
