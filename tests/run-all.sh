#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh Debian 12 machine (as root):
#   deps -> lint -> normal build + every test label -> ASan+UBSan build + unit and integration
#   (without heavy) -> libFuzzer build + every fuzz target for FUZZ_SECONDS (30), two at a time.
# Each stage prints its time, so the budget (aim: 30 minutes on 2 cores) stays visible.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-30}
summary=()
passed=0
failed=0

stage() {
  local name=$1
  shift
  local start=$SECONDS
  echo "=== stage: $name"
  "$@"
  local took=$((SECONDS - start))
  summary+=("$(printf '%-28s %4d s' "$name" "$took")")
  echo "=== stage: $name done in ${took} s"
}

# Runs ctest and adds its counts to the totals.
run_ctest() {
  local log
  log=$(mktemp)
  local status=0
  ctest "$@" --output-on-failure -j "$jobs" --timeout 300 2>&1 | tee "$log" || status=$?
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1 || true)
  if [ -n "$line" ]; then
    local total fails
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    fails=$(sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
    passed=$((passed + total - fails))
    failed=$((failed + fails))
  fi
  rm -f "$log"
  return "$status"
}

configure_and_build() {
  local dir=$1 target=$2
  shift 2
  cmake -S "$top" -B "$dir" -G Ninja -DCMAKE_COMPILE_WARNING_AS_ERROR=ON "$@" >/dev/null
  ninja -C "$dir" -j "$jobs" $target
}
build_release() { configure_and_build "$top/build/release" all -DCMAKE_BUILD_TYPE=RelWithDebInfo; }
build_asan() {
  configure_and_build "$top/build/asan" all -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG='-g -O1' \
    -DGATE46_SANITIZE=ON -DGATE46_BENCHMARKS=OFF
}
build_fuzz() {
  CC=clang CXX=clang++ configure_and_build "$top/build/fuzz" fuzz_targets -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGATE46_FUZZ=ON
}

stage "dependencies" "$top/deploy/install-deps.sh"
stage "lint" "$top/tests/lint.sh" "$top/build/lint"

stage "build (g++)" build_release
stage "tests: all labels" run_ctest --test-dir "$top/build/release"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage "build (ASan+UBSan)" build_asan
stage "tests: ASan unit+integration+e2e-sanitizer" run_ctest --test-dir "$top/build/asan" -L 'unit|integration|e2e-sanitizer' -LE heavy

stage "build (libFuzzer)" build_fuzz
stage "fuzz: ${fuzz_seconds} s per target" "$top/tests/fuzz/run.sh" "$top/build/fuzz" "$fuzz_seconds" 2

echo
echo "=== stage times"
printf '%s\n' "${summary[@]}"
echo "total: ${SECONDS} s"
echo "tests: ${passed} passed, ${failed} failed"
