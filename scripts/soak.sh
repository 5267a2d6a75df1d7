#!/usr/bin/env bash
# The long fault, crash and concurrency tests at full size (CINESTREAM_SOAK=1): 26 SIGKILL points
# over ingest, labelling and the scheduler (8 in the test command); 10 kill points of an ingest on
# file:// and 10 on S3 (4 and 3); 4 of a labelling run (2); three schedulers on 50 studies (6); two
# on S3 with 8 (3); the fault proxy over 6 studies (4); the tiny-model training at 480 images, 96²,
# 6 epochs (240, 64², 3); highdicom's multi-frame conversion of 5 defect-laden studies (4). The
# test command (scripts/test.sh) runs them at the smaller sizes (`sized(quick, full)` in
# tests/it/common.rs). Same setup as the test command (it installs and
# starts what they need); figures in BENCHMARKS.md.
#
#   scripts/soak.sh                 # the soak tests
#   scripts/soak.sh -E 'test(/sigkill/)'   # one of them (a nextest filter instead of the default)
set -euo pipefail
cd "$(dirname "$0")/.."
export CINESTREAM_SOAK=1
# And the CUDA backend's clippy check (scripts/test.sh), which the test command leaves out.
export CINESTREAM_CUDA_CHECK=1
filter=('-E' 'test(/sigkill|killed_labelling|schedulers_on|three_schedulers|faulty_network|tiny_model_learns|legacy_converted_enhanced/)')
if [ $# -gt 0 ]; then filter=("$@"); fi
exec scripts/test.sh "${filter[@]}"
