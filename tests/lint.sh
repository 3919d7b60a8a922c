#!/usr/bin/env bash
# Lint: clang-format over every C++ file in the tree, clang-tidy over the C++ files changed
# since the previous commit (all of them on the first commit).
#   tests/lint.sh [BUILD_DIR]    (BUILD_DIR holds a configure-only compile database)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/lint}
cd "$top"

mapfile -t all_files < <(git ls-files -co --exclude-standard -- '*.cpp' '*.hpp')
echo "lint: clang-format over ${#all_files[@]} files"
clang-format --dry-run --Werror "${all_files[@]}"

if git rev-parse -q --verify HEAD~1 >/dev/null; then
  mapfile -t changed < <(git diff --name-only --diff-filter=d HEAD~1 -- '*.cpp' '*.hpp'; \
                         git diff --name-only --diff-filter=d HEAD -- '*.cpp' '*.hpp')
else
  changed=("${all_files[@]}")
fi
# A changed header is checked through the sources of its component that include it.
sources=()
for f in $(printf '%s\n' "${changed[@]}" | sort -u); do
  case "$f" in
    tests/fuzz/*) ;;  # built only by the clang fuzz build; its parsers are checked through their libraries
    *.cpp) sources+=("$f") ;;
    *.hpp) mapfile -t -O "${#sources[@]}" sources < <(git grep -l --full-name "$(basename "$f")" -- '*.cpp' | grep -v '^tests/fuzz/') ;;
  esac
done
mapfile -t sources < <(printf '%s\n' "${sources[@]}" | sort -u | sed '/^$/d')
if [ ${#sources[@]} -eq 0 ]; then
  echo "lint: no C++ source changed since the previous commit; clang-tidy skipped"
  exit 0
fi

# Configure only, without precompiled headers (clang-tidy cannot read g++'s).
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
echo "lint: clang-tidy over ${#sources[@]} changed sources"
printf '%s\n' "${sources[@]}" | xargs -P 2 -n 1 clang-tidy -p "$build" --quiet 2> >(grep -v '^[0-9]* warnings generated' >&2)
