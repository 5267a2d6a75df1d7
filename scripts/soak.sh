#!/usr/bin/env bash
# The long fault, crash and concurrency tests at full size (CINESTREAM_SOAK=1): 26 SIGKILL points
# over ingest, labelling and the scheduler; three schedulers on 50 studies; two on S3 with 8; the
# fault proxy over 6 studies. The test command (scripts/test.sh) runs them smaller. Same setup as
# the test command (it installs and starts what they need); figures in BENCHMARKS.md.
#
#   scripts/soak.sh                 # the soak tests
#   scripts/soak.sh -E 'test(/sigkill/)'   # one of them (a nextest filter instead of the default)
set -euo pipefail
cd "$(dirname "$0")/.."
export CINESTREAM_SOAK=1
filter=('-E' 'test(/sigkill_anywhere|schedulers_on|three_schedulers|faulty_network/)')
if [ $# -gt 0 ]; then filter=("$@"); fi
exec scripts/test.sh "${filter[@]}"
