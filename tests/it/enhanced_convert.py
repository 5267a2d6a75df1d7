#!/usr/bin/env python3
"""Turns a phantom's classic single-frame MR series into Legacy Converted Enhanced MR files with
highdicom (software nobody here wrote), for tests/it/multiframe.rs.

    python3 enhanced_convert.py IN OUT per_slice|per_study

- per_slice: one multi-frame file per series folder (each phantom series is one slice);
- per_study: one file per study and image size (a multi-frame file has one size; the planted
  size defects keep their own file).

Files pydicom cannot read as images (the planted broken files) are copied as they are. Prints
one JSON object: the classic key of every converted image → `<new key>#<frame number>`, taken
from each frame's Conversion Source Attributes (the SOP instance it was made from).
"""
import json
import logging
import os
import shutil
import sys
import warnings

warnings.simplefilter("ignore")
logging.disable(logging.WARNING)

import highdicom
import pydicom
from highdicom.legacy import LegacyConvertedEnhancedMRImage


def main(src: str, out: str, mode: str) -> None:
    groups = {}  # (study folder, group name) -> [(key, dataset)]
    for root, _, files in os.walk(src):
        for name in sorted(files):
            path = os.path.join(root, name)
            key = os.path.relpath(path, src)
            parts = key.split(os.sep)
            if "study" not in parts or not name.endswith(".dcm"):
                continue
            try:
                ds = pydicom.dcmread(path)
                ds.pixel_array  # noqa: B018 (decodable, not only parseable)
            except Exception:
                ds = None
            if ds is None or "PixelData" not in ds:
                dest = os.path.join(out, key)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(path, dest)
                continue
            study = os.sep.join(parts[: parts.index("study") + 1])
            group = parts[-2] if mode == "per_slice" else f"mf_{ds.Rows}x{ds.Columns}"
            groups.setdefault((study, group), []).append((key, ds))
    mapping = {}
    for (study, group), items in sorted(groups.items()):
        by_uid = {str(ds.SOPInstanceUID): key for key, ds in items}
        enhanced = LegacyConvertedEnhancedMRImage(
            [ds for _, ds in items],
            series_instance_uid=highdicom.UID(),
            series_number=900,
            sop_instance_uid=highdicom.UID(),
            instance_number=1,
        )
        new_key = os.path.join(study, group, "enhanced.dcm")
        dest = os.path.join(out, new_key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        enhanced.save_as(dest)
        for n, item in enumerate(enhanced.PerFrameFunctionalGroupsSequence, start=1):
            source = str(item.ConversionSourceAttributesSequence[0].ReferencedSOPInstanceUID)
            mapping[by_uid[source].replace(os.sep, "/")] = f"{new_key.replace(os.sep, '/')}#{n}"
    print(json.dumps(mapping))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
