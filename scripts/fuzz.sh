#!/usr/bin/env bash
# fuzz.sh run|merge — builds the libFuzzer targets with clang (ASan+UBSan)
# and runs each for FUZZ_SECONDS, or merges the work corpus into the
# committed corpus. Exits non-zero if any target finds a crash.
set -euo pipefail
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
SECS=${FUZZ_SECONDS:-600}
dir=$BUILD/fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMMWS_FUZZ=ON \
    -DMMWS_SANITIZE=address,undefined -DMMWS_BUILD_TESTS=OFF \
    -DMMWS_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$JOBS" >/dev/null

rc=0
for f in fuzz/fuzz_*.c; do
  name=$(basename "$f" .c); short=${name#fuzz_}
  corpus=fuzz/corpus/$short; work=$BUILD/fuzz-work/$short
  mkdir -p "$corpus" "$work" "$BUILD/fuzz-artifacts"
  dict=(); [ -f "fuzz/$short.dict" ] && dict=(-dict="fuzz/$short.dict")
  case "${1:-run}" in
  run)
    echo "== $name: ${SECS}s"
    if "$dir/$name" "${dict[@]}" -max_total_time="$SECS" -print_final_stats=1 \
         -artifact_prefix="$BUILD/fuzz-artifacts/$short-" "$work" "$corpus" \
         >"$BUILD/fuzz-work/$short.log" 2>&1; then
      echo "$name: ok, $(grep -E 'stat::number_of_executed_units' "$BUILD/fuzz-work/$short.log" | awk '{print $2}') runs, no finding"
    else
      echo "$name: FINDING (see $BUILD/fuzz-work/$short.log and $BUILD/fuzz-artifacts/)"
      tail -40 "$BUILD/fuzz-work/$short.log"
      rc=1
    fi ;;
  merge)
    # Adds only the work inputs that reach new coverage; the named seeds
    # already in the corpus stay as they are.
    "$dir/$name" -merge=1 "$corpus" "$work" >/dev/null 2>&1
    echo "$name: corpus $(ls "$corpus" | wc -l) files" ;;
  esac
done
exit $rc
