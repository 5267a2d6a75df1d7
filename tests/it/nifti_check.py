"""Checks `cinestream export --format nifti` against the source DICOM, with nibabel and pydicom.

argv[1]: a JSON file {"export": DIR, "input": DIR, "studies": {id: {"frames": [[slice, frame,
source_key, resampled], ...], "shape": [x, y, z, t], "ed": E, "es": S}}}.

For every study: the volumes' shape, zooms and dtype, identical geometry of images and masks,
qform = sform. Then for sampled voxels of every slice at frame 0, the world position from
nibabel's affine (RAS) against the same pixel of the source DICOM (pydicom: ImagePositionPatient,
ImageOrientationPatient, PixelSpacing, in LPS):
- an image that was not resampled: pixel (row j, column i) of its source file, exactly (0.01 mm),
  and the same value;
- a resampled image (rotated slice, study scaled down from over 256 px): the voxel lies in its
  source's plane (0.01 mm) at the source position curation mapped it to (a centre-preserving
  scale), and the exported image matches the source sampled there (correlation).
Prints one JSON line per study with what it compared; exits non-zero on the first mismatch.
"""

import json
import os
import sys

import nibabel as nib
import numpy as np
import pydicom


def lps(affine, i, j, k):
    x, y, z, _ = affine @ np.array([i, j, k, 1.0])
    return np.array([-x, -y, z])


def source_geometry(ds):
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = [float(v) for v in ds.ImageOrientationPatient]
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    return ipp, row_dir, col_dir, dr, dc


def bilinear(img, r, c):
    r0, c0 = int(np.floor(r)), int(np.floor(c))
    fr, fc = r - r0, c - c0
    h, w = img.shape
    def at(a, b):
        return float(img[a, b]) if 0 <= a < h and 0 <= b < w else 0.0
    return (at(r0, c0) * (1 - fr) * (1 - fc) + at(r0, c0 + 1) * (1 - fr) * fc
            + at(r0 + 1, c0) * fr * (1 - fc) + at(r0 + 1, c0 + 1) * fr * fc)


def main():
    spec = json.load(open(sys.argv[1]))
    for sid, st in spec["studies"].items():
        d = os.path.join(spec["export"], sid)
        sa = nib.load(os.path.join(d, "sa.nii.gz"))
        seg = nib.load(os.path.join(d, "seg_sa.nii.gz"))
        shape = tuple(st["shape"])
        assert sa.shape == shape, f"{sid}: sa shape {sa.shape} != {shape}"
        assert seg.shape == shape, f"{sid}: seg_sa shape {seg.shape} != {shape}"
        assert sa.get_data_dtype() == np.uint16, f"{sid}: sa dtype {sa.get_data_dtype()}"
        assert seg.get_data_dtype() == np.uint8, f"{sid}: seg dtype {seg.get_data_dtype()}"
        assert np.allclose(sa.affine, seg.affine, atol=1e-5), f"{sid}: mask geometry differs"
        assert np.allclose(sa.get_qform(), sa.get_sform(), atol=1e-3), f"{sid}: qform {sa.get_qform()} != sform {sa.get_sform()}"
        assert sa.header.get_xyzt_units() == ("mm", "msec"), sa.header.get_xyzt_units()
        zooms = sa.header.get_zooms()
        for phase, frame in (("ED", st["ed"]), ("ES", st["es"])):
            one = nib.load(os.path.join(d, f"sa_{phase}.nii.gz"))
            mask = nib.load(os.path.join(d, f"seg_sa_{phase}.nii.gz"))
            assert one.shape == shape[:3] and mask.shape == shape[:3], f"{sid} {phase}: {one.shape}"
            assert np.allclose(one.affine, sa.affine, atol=1e-5), f"{sid} {phase}: geometry differs"
            assert np.array_equal(np.asarray(one.dataobj), np.asarray(sa.dataobj)[..., frame]), f"{sid}: sa_{phase} is not frame {frame}"
            assert np.array_equal(np.asarray(mask.dataobj), np.asarray(seg.dataobj)[..., frame]), f"{sid}: seg_sa_{phase} is not frame {frame}"
        data = np.asarray(sa.dataobj)
        nx, ny = shape[0], shape[1]
        samples = [(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1), (nx // 2, ny // 3), (nx // 3, ny // 2)]
        exact = resampled = 0
        worst_mm = 0.0
        for slice_index, frame_index, key, was_resampled in st["frames"]:
            if frame_index != 0:
                continue
            ds = pydicom.dcmread(os.path.join(spec["input"], key))
            ipp, row_dir, col_dir, dr, dc = source_geometry(ds)
            normal = np.cross(row_dir, col_dir)
            src = ds.pixel_array
            ours = data[:, :, slice_index, 0]
            if not was_resampled:
                assert ds.Rows == ny and ds.Columns == nx, f"{sid}: an unresampled slice of another size"
                for i, j in samples:
                    want = ipp + row_dir * dc * i + col_dir * dr * j
                    got = lps(sa.affine, i, j, slice_index)
                    err = float(np.linalg.norm(got - want))
                    worst_mm = max(worst_mm, err)
                    assert err < 0.01, f"{sid} slice {slice_index} voxel ({i},{j}): {got} vs DICOM {want} ({err:.4f} mm)"
                    assert int(ours[i, j]) == int(src[j, i]), f"{sid} slice {slice_index} ({i},{j}): value {ours[i, j]} vs DICOM {src[j, i]}"
                exact += 1
            else:
                # Curation scales about the image centre: pixel (row j, column i) of the
                # curated grid sits at the source's fractional index below.
                sr, sc = zooms[1] / dr, zooms[0] / dc
                theirs, mine = [], []
                for i, j in samples:
                    got = lps(sa.affine, i, j, slice_index)
                    d = got - ipp
                    off_plane = abs(float(d @ normal))
                    worst_mm = max(worst_mm, off_plane)
                    assert off_plane < 0.01, f"{sid} slice {slice_index} voxel ({i},{j}) lies {off_plane:.4f} mm off its source plane"
                    if abs(sr - 1) > 1e-6 or abs(sc - 1) > 1e-6:
                        r_src, c_src = float(d @ col_dir) / dr, float(d @ row_dir) / dc
                        want_r, want_c = (j + 0.5) * sr - 0.5, (i + 0.5) * sc - 0.5
                        err = float(np.hypot((r_src - want_r) * dr, (c_src - want_c) * dc))
                        worst_mm = max(worst_mm, err)
                        assert err < 0.01, f"{sid} slice {slice_index} voxel ({i},{j}): source index ({r_src:.3f},{c_src:.3f}); scaling about the centre puts it at ({want_r:.3f},{want_c:.3f})"
                # The content at the mapped positions: the whole slice, sampled.
                for i in range(0, nx, max(1, nx // 24)):
                    for j in range(0, ny, max(1, ny // 24)):
                        d = lps(sa.affine, i, j, slice_index) - ipp
                        r_src, c_src = float(d @ col_dir) / dr, float(d @ row_dir) / dc
                        theirs.append(bilinear(src, r_src, c_src))
                        mine.append(float(ours[i, j]))
                corr = float(np.corrcoef(theirs, mine)[0, 1])
                assert corr > 0.97, f"{sid} slice {slice_index}: exported image against its source at the mapped positions: correlation {corr:.3f}"
                resampled += 1
        print(json.dumps({"study": sid, "exact_slices": exact, "resampled_slices": resampled, "worst_mm": worst_mm,
                          "zooms": [float(z) for z in zooms]}))


if __name__ == "__main__":
    main()
