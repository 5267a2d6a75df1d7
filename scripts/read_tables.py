#!/usr/bin/env python3
"""Reads cinestream's Delta tables the way the README shows: deltalake (pandas), polars and DuckDB.

    python3 scripts/read_tables.py ./data            # a local data prefix
    python3 scripts/read_tables.py s3://bucket/data  # S3: AWS_* variables, as for cinestream

Prints one JSON object: per table and engine, the row count and the column names, and (for a
local folder) the results of the README's examples, so a test can hold them against
cinestream's own. DuckDB's `delta` extension is downloaded at run time, which
this project's machines cannot do; DuckDB reads the Parquet files of the current version
instead (`DeltaTable.file_uris()`), which is exactly what `delta_scan` would read for our tables
(no deletion vectors, no column mapping).
"""
import json
import os
import sys

import duckdb
import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

TABLES = ["frames", "labels", "curation_log", "studies", "sources"]
BLOBS = {"pixels", "mask"}


def storage_options(url):
    if not url.startswith("s3://"):
        return None
    opts = {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        opts["AWS_ALLOW_HTTP"] = "true"
        opts["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return opts


def main(data):
    data = data.rstrip("/")
    opts = storage_options(data)
    out = {}
    for table in TABLES:
        url = f"{data}/{table}"
        try:
            if opts is None and not os.path.isdir(os.path.join(url, "_delta_log")):
                raise TableNotFoundError(url)
            dt = DeltaTable(url, storage_options=opts)
        except TableNotFoundError:
            # Not created yet (a run killed before its first commit): nothing to read.
            out[table] = {"version": None, "columns": [], "pandas_rows": 0, "polars_rows": 0, "polars_columns": [], "duckdb_rows": 0}
            continue
        # pandas, through deltalake (the blob columns left out: they are large and not needed here)
        columns = [f.name for f in dt.schema().fields]
        small = [c for c in columns if c not in BLOBS]
        pdf = dt.to_pandas(columns=small)
        # polars
        lf = pl.scan_delta(url, storage_options=opts)
        pl_rows = lf.select(pl.len()).collect().item()
        pl_columns = lf.collect_schema().names()
        # DuckDB over the committed files of the current version. On S3 it needs its httpfs
        # extension, which (like `delta`) it downloads at run time: not here, so local only.
        files = dt.file_uris()
        if opts is not None:
            duck_rows = None
        elif files:
            duck_rows = duckdb.sql("SELECT count(*) FROM read_parquet($f)", params={"f": files}).fetchall()[0][0]
        else:
            duck_rows = 0
        out[table] = {
            "version": dt.version(),
            "columns": columns,
            "pandas_rows": len(pdf),
            "polars_rows": pl_rows,
            "polars_columns": pl_columns,
            "duckdb_rows": duck_rows,
        }
    if opts is None and all(out[t]["version"] is not None for t in TABLES):
        out["readme"] = readme_examples(data)
    print(json.dumps(out))


def readme_examples(data):
    """The README's examples, as written there (with `data` for the folder)."""
    studies = pl.read_delta(f"{data}/studies").select("study_id", "n_slices", "truth_edv_ml")
    problems = DeltaTable(f"{data}/curation_log").to_pandas().groupby("problem").size()
    files = DeltaTable(f"{data}/curation_log").file_uris()
    duck = duckdb.sql("SELECT problem, count(*) FROM read_parquet($f) GROUP BY 1",
                      params={"f": files}).fetchall() if files else []  # read_parquet needs a file
    return {
        "studies": studies.height,
        "pandas_problems": {k: int(v) for k, v in problems.items()},
        "duckdb_problems": {k: int(v) for k, v in duck},
    }


if __name__ == "__main__":
    main(sys.argv[1])
