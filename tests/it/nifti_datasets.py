"""Makes ACDC- and M&Ms-shaped datasets with nibabel from a `cinestream export --format nifti`
folder (ukbb layout: <study>/sa.nii.gz, seg_sa.nii.gz, sa_ED.nii.gz, sa_ES.nii.gz), following the
datasets' published layouts:

- ACDC (Bernard et al. 2018): training/patientNNN/patientNNN_4d.nii.gz (int16),
  patientNNN_frameNN.nii.gz and patientNNN_frameNN_gt.nii.gz at ED and ES (1-based frame numbers,
  labels 1 RV, 2 MY, 3 LV), Info.cfg with `ED: n`, `ES: n`, Group, Height, NbFrame, Weight;
- M&Ms-1 (Campello et al. 2021): Training/Labeled/<code>/<code>_sa.nii.gz (float32) and a 4-D
  <code>_sa_gt.nii.gz non-zero at ED and ES only (labels 1 LV, 2 MY, 3 RV), and the information
  CSV (`External code,VendorName,Vendor,Centre,ED,ES`, 0-based frames) at the top;
- bad/: an ACDC patient without an affine (qform_code = sform_code = 0), one whose ED mask has
  another shape, one whose ED mask holds a value outside ACDC's class map.

argv: EXPORT_DIR OUT_DIR. Prints JSON {study: {"acdc": folder, "mnms": folder, "ed": e, "es": s}}.
"""

import gzip
import json
import os
import sys

import nibabel as nib
import numpy as np

exp, out = sys.argv[1], sys.argv[2]
OURS_TO_ACDC = np.array([0, 3, 2, 1], dtype=np.uint8)


def save(arr, affine, zooms, path, dtype):
    img = nib.Nifti1Image(arr.astype(dtype), affine)
    img.header.set_xyzt_units("mm", "msec")
    img.header.set_zooms(zooms[: arr.ndim])
    nib.save(img, path)


def frame_of(img, copy):
    return next(t for t in range(img.shape[3]) if np.array_equal(img[..., t], copy))


studies = sorted(d for d in os.listdir(exp) if os.path.isdir(os.path.join(exp, d)))
result, csv_rows = {}, []
for n, sid in enumerate(studies, 1):
    d = os.path.join(exp, sid)
    sa = nib.load(os.path.join(d, "sa.nii.gz"))
    img = np.asarray(sa.dataobj)
    seg = np.asarray(nib.load(os.path.join(d, "seg_sa.nii.gz")).dataobj)
    ed = frame_of(img, np.asarray(nib.load(os.path.join(d, "sa_ED.nii.gz")).dataobj))
    es = frame_of(img, np.asarray(nib.load(os.path.join(d, "sa_ES.nii.gz")).dataobj))
    aff, zooms, frames = sa.affine, sa.header.get_zooms(), img.shape[3]
    assert img.max() < 32768

    patient = f"patient{n:03d}"
    pd = os.path.join(out, "acdc", "training", patient)
    os.makedirs(pd)
    save(img, aff, zooms, os.path.join(pd, f"{patient}_4d.nii.gz"), np.int16)
    for t in (ed, es):
        save(img[..., t], aff, zooms, os.path.join(pd, f"{patient}_frame{t + 1:02d}.nii.gz"), np.int16)
        save(OURS_TO_ACDC[seg[..., t]], aff, zooms, os.path.join(pd, f"{patient}_frame{t + 1:02d}_gt.nii.gz"), np.uint8)
    with open(os.path.join(pd, "Info.cfg"), "w") as f:
        f.write(f"ED: {ed + 1}\nES: {es + 1}\nGroup: NOR\nHeight: 170.0\nNbFrame: {frames}\nWeight: 70.0\n")

    code = f"A{n}B{n}C{n}"
    md = os.path.join(out, "mnms", "Training", "Labeled", code)
    os.makedirs(md)
    save(img, aff, zooms, os.path.join(md, f"{code}_sa.nii.gz"), np.float32)
    gt = np.zeros_like(seg)
    gt[..., ed], gt[..., es] = seg[..., ed], seg[..., es]
    save(gt, aff, zooms, os.path.join(md, f"{code}_sa_gt.nii.gz"), np.uint8)
    csv_rows.append(f"{code},Siemens,A,1,{ed},{es}")
    result[sid] = {"acdc": f"training/{patient}", "mnms": f"Training/Labeled/{code}", "ed": ed, "es": es}

    if n == 1:
        for bad in ("patient901", "patient902", "patient903"):
            bd = os.path.join(out, "bad", bad)
            os.makedirs(bd)
            path = os.path.join(bd, f"{bad}_4d.nii.gz")
            save(img, aff, zooms, path, np.int16)
            with open(os.path.join(bd, "Info.cfg"), "w") as f:
                f.write(f"ED: {ed + 1}\nES: {es + 1}\n")
            mask = OURS_TO_ACDC[seg[..., ed]]
            if bad == "patient901":
                raw = bytearray(gzip.decompress(open(path, "rb").read()))
                raw[252:256] = bytes(4)  # qform_code, sform_code
                open(path, "wb").write(gzip.compress(bytes(raw)))
            elif bad == "patient902":
                mask = mask[1:, ...]
            else:
                mask = mask.copy()
                mask[0, 0, 0] = 7
            save(mask, aff, zooms, os.path.join(bd, f"{bad}_frame{ed + 1:02d}_gt.nii.gz"), np.uint8)

with open(os.path.join(out, "mnms", "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"), "w") as f:
    f.write("External code,VendorName,Vendor,Centre,ED,ES\n" + "\n".join(csv_rows) + "\n")
print(json.dumps(result))
