#!/usr/bin/env bash
# Runs every fuzz target of a GATE46_FUZZ build for SECONDS each, JOBS at a time, on a scratch
# copy of its seed corpus (the checked-in corpus is never modified). Fails if any target finds
# a crash, a leak or a timeout; the reproducer is kept in the scratch directory.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [JOBS]
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [SECONDS] [JOBS]}
seconds=${2:-30}
jobs=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/gate46-fuzz.XXXXXX)
echo "fuzz: scratch directory $scratch"

run_one() {
  local name=$1 build=$2 seconds=$3 here=$4 scratch=$5
  mkdir -p "$scratch/$name/corpus" "$scratch/$name/artifacts"
  if "$build/tests/fuzz/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$scratch/$name/artifacts/" -print_final_stats=1 \
       "$scratch/$name/corpus" "$here/corpus/$name" >"$scratch/$name/log" 2>&1; then
    echo "fuzz: $name ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$name/log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz: $name FAILED; log and reproducer in $scratch/$name"
    tail -n 40 "$scratch/$name/log"
    return 1
  fi
}
export -f run_one

targets=$(cd "$here/corpus" && ls -d */ | tr -d /)
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$build" "$seconds" "$here" "$scratch"
rm -rf "$scratch"
