"""Lists the MR files shipped by pydicom and pydicom-data, as JSON lines, with what pydicom
itself makes of them: each frame's sum of non-negative pixel values, where pydicom decodes the
file (JPEG-LS through pyjpegls, JPEG 2000 through Pillow), for tests/it/pydicom_files.rs."""
import json
import warnings

warnings.simplefilter("ignore")
import numpy as np
import pydicom
from pydicom.data import get_testdata_files

seen = set()
for path in sorted(get_testdata_files("*")):
    if path in seen or not path.lower().endswith((".dcm", "")) or path.endswith((".gz", ".bz2", ".zip", ".py", ".json", ".txt")):
        continue
    seen.add(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        continue
    if str(ds.get("Modality", "")) != "MR":
        continue
    row = {
        "path": path,
        "rows": int(ds.get("Rows", 0) or 0),
        "cols": int(ds.get("Columns", 0) or 0),
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
        "samples": int(ds.get("SamplesPerPixel", 1) or 1),
        "bits": int(ds.get("BitsAllocated", 0) or 0),
        "transfer_syntax": str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")),
        "pixel_sums": None,
    }
    try:
        arr = ds.pixel_array
        if row["samples"] == 1:
            frames = arr.reshape((row["frames"], row["rows"], row["cols"]))
            row["pixel_sums"] = [int(np.clip(f.astype(np.int64), 0, None).sum()) for f in frames]
    except Exception as e:  # no handler for this compression, or broken data
        row["pixel_error"] = type(e).__name__
    print(json.dumps(row))
