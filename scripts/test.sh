#!/usr/bin/env bash
# test.sh — `make test`: builds with ASan+UBSan (gcc) and runs every test
# through ctest, then builds everything with clang and -Werror. Ends with
# the count line "ctest: N passed, F failed".
set -uo pipefail
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
dir=$BUILD/asan

set -e
CC=gcc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMMWS_SANITIZE=address,undefined -DMMWS_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$JOBS"
echo "test: clang -Werror build of every target"
CC=clang cmake -S . -B "$BUILD/clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD/clang" -j "$JOBS" >/dev/null
set +e

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
log=$(mktemp)
(cd "$dir" && ctest --output-on-failure -j "$JOBS" --timeout 600) | tee "$log"
rc=${PIPESTATUS[0]}
line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
rm -f "$log"
if [ -z "$line" ]; then
  echo "ctest: 0 passed, 1 failed"
  exit 1
fi
failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
total=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/')
echo "ctest: $((total - failed)) passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$total" -gt 0 ]
