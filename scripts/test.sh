#!/usr/bin/env bash
# Runs every test on a fresh Debian machine: installs what is missing (Ceph RGW, docker-compose,
# Chromium, pydicom, nibabel), starts a real S3 server on 127.0.0.1, runs the whole test suite against it, and
# stops the server. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/cinestream-target}
export CINESTREAM_REFERENCE_DIR=${CINESTREAM_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}

need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# report.html is opened in headless Chromium by the evaluation test.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# CharLS (the JPEG-LS codec) builds from its crate's C++ source with CMake.
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
# dcmtk and GDCM recompress the phantom (JPEG-LS, JPEG 2000) for the codec tests.
command -v dcmcjpls >/dev/null 2>&1 || need_apt+=(dcmtk)
command -v gdcmconv >/dev/null 2>&1 || need_apt+=(libgdcm-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import pydicom, pydicom.data, numpy, data_store' >/dev/null 2>&1; then
  echo "test.sh: installing pydicom, pydicom-data, numpy" >&2
  python3 -m pip install -q 'pydicom==3.0.2' 'pydicom-data==1.0.0' 'numpy>=1.26'
fi
# nibabel reads the NIfTI files `cinestream export` writes (tests/it/nifti_check.py).
if ! python3 -c 'import nibabel' >/dev/null 2>&1; then
  echo "test.sh: installing nibabel" >&2
  python3 -m pip install -q 'nibabel==5.3.2'
fi
# dcm2niix converts the phantom's DICOM to NIfTI for the NIfTI source test (tests/it/nifti.rs).
if ! command -v dcm2niix >/dev/null 2>&1; then
  echo "test.sh: installing dcm2niix" >&2
  python3 -m pip install -q 'dcm2niix==1.0.20260724'
fi
# highdicom turns the phantom into (legacy-converted) enhanced multi-frame MR; pyjpegls (with
# it) and Pillow let pydicom decode the JPEG-LS and JPEG 2000 test files we compare against.
if ! python3 -c 'import highdicom, jpeg_ls, PIL' >/dev/null 2>&1; then
  echo "test.sh: installing highdicom, pyjpegls, pillow" >&2
  python3 -m pip install -q 'highdicom==0.28.2' 'pyjpegls==1.5.1' 'pillow>=10'
fi
# Other engines reading our Delta tables (scripts/read_tables.py, tests/it/delta.rs).
if ! python3 -c 'import deltalake, polars, duckdb, pandas, pyarrow' >/dev/null 2>&1; then
  echo "test.sh: installing deltalake, polars, duckdb, pandas, pyarrow" >&2
  python3 -m pip install -q 'deltalake==1.6.6' 'polars==2.1.0' 'duckdb==2.0.1' 'pandas>=2.2' 'pyarrow>=17'
fi

# ONNX Runtime (the library `cinestream label` loads for ONNX models) and `onnx` (the tests
# build small ONNX models with it).
if ! python3 -c 'import onnx, onnxruntime' >/dev/null 2>&1; then
  echo "test.sh: installing onnxruntime, onnx" >&2
  python3 -m pip install -q 'onnxruntime==1.31.1' 'onnx==1.23.2'
fi

# torch and torchvision (the CUDA wheels from PyPI run on a CPU) in their own environment:
# - the encoder-vs-torchvision check: benches/torchvision_parity.py writes a torchvision
#   resnet34 state dict, an input and torchvision's features; tests/it/torchvision.rs compares ours;
# - the two-engine check (tests/it/label_engines.rs): scripts/export_onnx.py exports a trained
#   model through the PyTorch twin with torch.onnx.export, which writes through `onnx`.
TORCH_ENV=${CINESTREAM_TORCH_ENV:-/var/tmp/cinestream-torch}
if ! "$TORCH_ENV/bin/python" -c 'import torch, torchvision, safetensors' >/dev/null 2>&1; then
  echo "test.sh: installing torch and torchvision into $TORCH_ENV (about 5 GB)" >&2
  python3 -m venv "$TORCH_ENV"
  "$TORCH_ENV/bin/pip" install -q 'torch==2.15.0' 'torchvision==0.29.2' 'safetensors==0.8.0' 'numpy>=1.26'
fi
if ! "$TORCH_ENV/bin/python" -c 'import onnx' >/dev/null 2>&1; then
  "$TORCH_ENV/bin/pip" install -q 'onnx==1.23.2'
fi
export CINESTREAM_TORCH_PYTHON=$TORCH_ENV/bin/python

# A public model nobody here wrote, for the contract test (tests/it/label_contract.rs): myopari
# 0.1.6's tiramisu (ACDC) from its wheel on PyPI, checked against its published SHA-256.
MODELS=${CINESTREAM_MODELS_DIR:-/var/tmp/cinestream-models}
TIRAMISU=$MODELS/tiramisu_acdc_fp32.onnx
TIRAMISU_SHA=794d775a4977e714f4c4ef081c536ab371fe3d36ea682c7ce6014b52c8df0974
if ! echo "$TIRAMISU_SHA  $TIRAMISU" | sha256sum -c --quiet 2>/dev/null; then
  echo "test.sh: fetching myopari 0.1.6's tiramisu model from PyPI" >&2
  wheel_dir=$(mktemp -d)
  python3 -m pip download -q --no-deps 'myopari==0.1.6' -d "$wheel_dir"
  mkdir -p "$MODELS"
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("myopari/Resources/tiramisu_acdc_fp32.onnx"))' "$wheel_dir"/myopari-0.1.6-*.whl "$TIRAMISU"
  rm -rf "$wheel_dir"
  echo "$TIRAMISU_SHA  $TIRAMISU" | sha256sum -c --quiet
fi
export CINESTREAM_TIRAMISU_ONNX=$TIRAMISU
parity_dir=$(mktemp -d)
"$TORCH_ENV/bin/python" benches/torchvision_parity.py "$parity_dir" >&2
export CINESTREAM_TORCHVISION_PARITY=$parity_dir

eval "$(scripts/s3-server.sh start)"
trap 'scripts/s3-server.sh stop; rm -rf "$parity_dir"' EXIT
# The tests fail (rather than skip) when a service or tool they need is missing.
export CINESTREAM_REQUIRE_S3=1 CINESTREAM_REQUIRE_TOOLS=1

# Each step's wall time goes to stderr (BENCHMARKS.md quotes them).
step() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "test.sh: $name took $((SECONDS - start)) s" >&2
}
echo "test.sh: setup took $SECONDS s" >&2

# Style is checked, not hoped for: rustfmt.toml's width, and clippy with warnings as errors.
step "cargo fmt --check" cargo fmt --check
# One compile builds and lints: clippy-driver wraps rustc for our own targets (lib, binary,
# tests, benches; the dependencies are compiled by plain rustc) and fails on any warning, as
# `cargo clippy --all-targets -- -D warnings` would. A separate `cargo clippy` would check every
# dependency once more (6 minutes of a cold run, BENCHMARKS.md). The suite runs with the same
# settings, so it reuses this build.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
# How cargo-clippy hands `-- -D warnings` to clippy-driver.
export CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
step "the build, with clippy" cargo build --locked --lib --bins --tests --benches
# The CUDA backend keeps compiling although no GPU is here (issue 4). Checking it checks every
# dependency again, so scripts/soak.sh asks for it (CINESTREAM_CUDA_CHECK=1), and anyone can.
if [ "${CINESTREAM_CUDA_CHECK:-0}" != 0 ]; then
  step "clippy with CUDA" cargo check --locked --features cuda --all-targets
fi
if cargo nextest --version >/dev/null 2>&1; then
  step "the suite" cargo nextest run --locked --no-fail-fast --test-threads 2 "$@"
else
  step "the suite" cargo test --locked --no-fail-fast "$@" -- --test-threads 2
fi
