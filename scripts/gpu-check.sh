#!/usr/bin/env bash
# The GPU check, ready to run in one go on a machine with an NVIDIA GPU, CUDA and PyTorch but no
# Rust (the device machine some tasks are lent). Two halves:
#
#   scripts/gpu-check.sh pack   here: builds the CLI and the train_step bench in release with
#                               --features cuda, strips and compresses them into gpu-bundle/
#                               (git-ignored; checked to fit the 64 MiB a device call carries);
#   scripts/gpu-check.sh run    there, from the repository root, with gpu-bundle/ carried:
#                               1. CUDA's logits against flex's on the same weights and input
#                                  (tiny and real network; fails where they disagree);
#                               2. the training-step and inference bench on CUDA beside PyTorch
#                                  eager on the same GPU (benches/torch_unet_step.py);
#                               3. the phantom demo (pipelines/phantom-demo.toml) trained on CUDA:
#                                  its Dice and wall time.
#
# With the session's device tool: `scripts/gpu-check.sh pack`, then
#   run(command="scripts/gpu-check.sh run", carry=["gpu-bundle"], timeout_s=560)
# and put what it prints in BENCHMARKS.md, with the GPU it names. Environment for `run`:
# CINESTREAM_TORCH_PYTHON (default python3), GPU_CHECK_SEED (phantom seed, default 1),
# GPU_CHECK_REAL_STEPS (timed real-network steps, default 5), GPU_CHECK_WORK (default a
# temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=gpu-bundle
LIMIT_MIB=60

pack() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/cinestream-target}
  # One cargo call builds both (a bench's build also builds the package's binary, with the same
  # features), so the dependencies are compiled once, not once per feature set.
  local built cli bench
  built=$(cargo bench --locked --features cuda --bench train_step --no-run --message-format=json \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("train_step", "cinestream"):
        print(m["target"]["name"], m["executable"])')
  cli=$(awk '$1 == "cinestream" {print $2}' <<<"$built")
  bench=$(awk '$1 == "train_step" {print $2}' <<<"$built")
  [[ -n $cli && -n $bench ]] || { echo "gpu-check: cargo built no CLI or no bench: $built" >&2; exit 1; }
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  cp "$cli" "$BUNDLE/cinestream"
  cp "$bench" "$BUNDLE/train_step"
  strip "$BUNDLE/cinestream" "$BUNDLE/train_step"
  xz -T2 -6 "$BUNDLE/cinestream" "$BUNDLE/train_step"
  git rev-parse HEAD > "$BUNDLE/commit"
  local mib
  mib=$(du -sm "$BUNDLE" | cut -f1)
  ls -l "$BUNDLE"
  if (( mib > LIMIT_MIB )); then
    echo "gpu-check: $BUNDLE is $mib MiB, over the $LIMIT_MIB MiB that leaves room under the 64 MiB a device call carries" >&2
    exit 1
  fi
  echo "gpu-check: $BUNDLE ready ($mib MiB, commit $(cat "$BUNDLE/commit")); on the GPU machine: scripts/gpu-check.sh run"
}

unpack() {
  local dir=$1 f
  for f in cinestream train_step; do
    if [[ ! -x $dir/$f ]]; then
      # xz may be missing there; Python's lzma reads the same files.
      if command -v xz >/dev/null; then xz -dc "$BUNDLE/$f.xz" > "$dir/$f"
      else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$BUNDLE/$f.xz" "$dir/$f"; fi
      chmod +x "$dir/$f"
    fi
  done
}

run() {
  [[ -f $BUNDLE/cinestream.xz ]] || { echo "gpu-check: no $BUNDLE/ here: run 'scripts/gpu-check.sh pack' on the build machine and carry it" >&2; exit 2; }
  local work=${GPU_CHECK_WORK:-$(mktemp -d)} seed=${GPU_CHECK_SEED:-1}
  mkdir -p "$work/bin"
  unpack "$work/bin"
  echo "== the GPU"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "(nvidia-smi failed)"
  echo "commit $(cat "$BUNDLE/commit"), $(nproc) CPU cores, $(date -u +%FT%TZ)"
  export CINESTREAM_TORCH_PYTHON=${CINESTREAM_TORCH_PYTHON:-python3}
  "$CINESTREAM_TORCH_PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'

  echo "== 1 and 2: logits against flex, then the step and inference bench (CUDA beside PyTorch)"
  BENCH_DEVICE=cuda BENCH_REAL_STEPS=${GPU_CHECK_REAL_STEPS:-5} "$work/bin/train_step"

  echo "== 3: the phantom demo on CUDA (seed $seed)"
  local cli=$work/bin/cinestream t0 t1
  t0=$(date +%s.%N)
  "$cli" synth --out "$work/phantom" --studies 40 --seed "$seed" >/dev/null
  "$cli" ingest --input "$work/phantom" --output "$work/data" --labels "$work/phantom/truth" >/dev/null
  t1=$(date +%s.%N)
  TIMEFORMAT='train on CUDA: %R s wall'
  time "$cli" train pipelines/phantom-demo.toml --data "$work/data" --device cuda
  echo "synth + ingest: $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
}

case ${1:-} in
  pack) pack ;;
  run) run ;;
  *) sed -n '2,24p' "$0"; exit 2 ;;
esac
