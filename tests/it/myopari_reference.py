#!/usr/bin/env python3
"""myopari 0.1.6's own pipeline for its tiramisu (ACDC) model, written from its source
(`myopari/processors/functions_utils.py`: `preprocess_data_array`, `min_max_normalize`,
`crop_resize_image`, `predict_data_model`, `remove_small_elements`, `restore_mask`; and its
widget, which hands the model napari's (z, y, x) stack transposed to (x, y, z)), in numpy and
onnxruntime, on the frames `cinestream label` labelled; prints how many mask pixels agree with
cinestream's, of all and of those either calls foreground, for tests/it/label_contract.rs.

    python3 myopari_reference.py DATA STUDY LABELLER MODEL.onnx

skimage's `resize` is written out for what the phantom needs: bilinear upsampling (pixel
centres, edges clamped) and nearest-neighbour for the masks; a downsampling resize (where
skimage smooths first) stops the script.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from deltalake import DeltaTable

# myopari's classes (0 background, 1 RV, 2 MY, 3 LV) → ours (1 LV, 2 MY, 3 RV).
OURS = np.array([0, 3, 2, 1], dtype=np.uint8)


def min_max_normalize(image, low_perc=0.05, high_perc=99.05):
    non_zeros = image > 0
    low, high = np.percentile(image[non_zeros], [low_perc, high_perc])
    image = np.clip(image, low, high)
    return (image - low) / (high - low)


def resize_xy(image, new_dim, order):
    """skimage.transform.resize of the first two axes to new_dim × new_dim (order 1 or 0)."""
    h, w = image.shape[:2]
    if order == 1 and (h > new_dim or w > new_dim):
        raise SystemExit("a downsampling resize: skimage smooths first, which this script does not write out")

    def coords(n_in, n_out):
        c = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        return np.clip(c, 0, n_in - 1)

    ys, xs = coords(h, new_dim), coords(w, new_dim)
    if order == 0:
        yi, xi = np.rint(ys).astype(int), np.rint(xs).astype(int)
        return image[yi][:, xi]
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    a, b = image[y0][:, x0], image[y0][:, x1]
    c, d = image[y1][:, x0], image[y1][:, x1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def crop_resize_image(image, new_dim=256):
    nz = np.nonzero(image)
    min_i, max_i = np.min(nz, axis=1), np.max(nz, axis=1)
    cropped = image[tuple(slice(a, b + 1) for a, b in zip(min_i, max_i))]
    crop_h, crop_w = cropped.shape[:2]
    min_dim = min(crop_h, crop_w)
    start_h, start_w = (crop_h - min_dim) // 2, (crop_w - min_dim) // 2
    square = cropped[start_h : start_h + min_dim, start_w : start_w + min_dim, :]
    crop_index = (
        slice(min_i[0] + start_h, min_i[0] + start_h + min_dim),
        slice(min_i[1] + start_w, min_i[1] + start_w + min_dim),
        slice(min_i[2], max_i[2] + 1),
    )
    resized = resize_xy(square, new_dim, 1) if min_dim != new_dim else square.copy()
    return resized, {"original_shape": image.shape, "crop_index": crop_index, "original_dim": min_dim}


def remove_small_elements(seg, min_size_remove=800):
    """skimage's remove_small_objects on seg > 0: 6-connected 3-D components under the size."""
    fg = seg > 0
    labels = np.where(fg, np.arange(fg.size).reshape(fg.shape), -1)
    big = fg.size + 1
    while True:
        prev = labels
        cur = np.where(fg, labels, big)
        for axis in range(3):
            for shift in (1, -1):
                moved = np.roll(cur, shift, axis=axis)
                edge = [slice(None)] * 3
                edge[axis] = 0 if shift == 1 else -1
                moved[tuple(edge)] = big
                cur = np.where(fg, np.minimum(cur, moved), big)
        labels = np.where(fg, cur, -1)
        if np.array_equal(labels, prev):
            break
    ids, counts = np.unique(labels[fg], return_counts=True)
    small = ids[counts < min_size_remove]
    keep = fg & ~np.isin(labels, small)
    return seg * keep


def restore_mask(seg, info):
    dim = info["original_dim"]
    resized = resize_xy(seg, dim, 0) if seg.shape[0] != dim else seg.copy()
    restored = np.zeros(info["original_shape"], dtype=np.int16)
    restored[info["crop_index"]] = resized.astype(np.int16)
    return restored


def main(data, study, labeller, model_path):
    frames = DeltaTable(f"{data}/frames").to_pyarrow_table(
        columns=["slice_index", "frame_index", "height", "width", "pixels"], filters=[("study_id", "=", study)]
    ).to_pylist()
    labels = DeltaTable(f"{data}/labels").to_pyarrow_table(
        columns=["slice_index", "frame_index", "mask"], filters=[("study_id", "=", study), ("labeller", "=", labeller)]
    ).to_pylist()
    ours = {(r["slice_index"], r["frame_index"]): np.frombuffer(r["mask"], dtype=np.uint8) for r in labels}
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    same = total = fg = fg_same = 0
    for t in sorted({k[1] for k in ours}):
        stack = sorted((r for r in frames if r["frame_index"] == t), key=lambda r: r["slice_index"])
        h, w = stack[0]["height"], stack[0]["width"]
        zyx = np.stack([np.frombuffer(r["pixels"], dtype="<u2").reshape(h, w) for r in stack]).astype(np.float64)
        volume = zyx.transpose(2, 1, 0)  # (x, y, z), as myopari's widget hands it over
        image, info = crop_resize_image(min_max_normalize(volume))
        batch = np.stack([image[..., i : i + 1].transpose(-1, 0, 1) for i in range(image.shape[-1])]).astype(np.float32)
        probs = np.concatenate([session.run(None, {session.get_inputs()[0].name: batch[i : i + 8]})[0] for i in range(0, len(batch), 8)])
        seg = remove_small_elements(np.argmax(probs, axis=1).transpose(1, 2, 0))
        restored = restore_mask(seg, info)  # (x, y, z)
        for z, r in enumerate(stack):
            key = (r["slice_index"], t)
            if key not in ours:
                continue
            reference = OURS[restored[:, :, z].T.astype(np.uint8)].ravel()
            agree = reference == ours[key]
            either = (reference > 0) | (ours[key] > 0)
            same += int(agree.sum())
            total += reference.size
            fg += int(either.sum())
            fg_same += int((agree & either).sum())
    print(json.dumps({"pixels": total, "same": same, "foreground": fg, "foreground_same": fg_same, "frames": len(ours)}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
