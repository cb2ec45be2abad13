#!/usr/bin/env bash
# test.sh — `make test`: builds with ASan+UBSan (gcc) and runs every test
# through ctest, then builds everything with clang and -Werror, and runs
# test_thread under TSan (counted as one more test). Ends with
# the count line "ctest: N passed, F failed".
set -uo pipefail
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
dir=$BUILD/asan
root=$(pwd)

set -e
CC=gcc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMMWS_SANITIZE=address,undefined -DMMWS_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$JOBS"
echo "test: clang -Werror build of every target"
CC=clang cmake -S . -B "$BUILD/clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD/clang" -j "$JOBS" >/dev/null
set +e

# Threaded mode under ThreadSanitizer: the hand-off ring, the I/O thread
# and the consumer (a 3 s stall here; the ASan run below stalls a minute).
echo "test: TSan build of test_thread"
CC=clang cmake -S . -B "$BUILD/tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMMWS_SANITIZE=thread -DMMWS_BUILD_BENCH=OFF >/dev/null &&
cmake --build "$BUILD/tsan" -j "$JOBS" --target test_thread mmws-sim >/dev/null
tsan_rc=$?
if [ $tsan_rc -eq 0 ]; then
  (cd "$BUILD/tsan" && MMWS_SOURCE_DIR="$root" MMWS_BUILD_DIR="$PWD" \
     MMWS_STALL_MS=3000 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
     timeout 600 ./test_thread) >"$BUILD/tsan/test_thread.log" 2>&1
  tsan_rc=$?
fi
if [ $tsan_rc -eq 0 ]; then
  echo "tsan: $(tail -1 "$BUILD/tsan/test_thread.log")"
else
  tail -60 "$BUILD/tsan/test_thread.log"
  echo "tsan: test_thread FAILED (log: $BUILD/tsan/test_thread.log)"
fi

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
# The TSan run counts as one more test.
total=$((total + 1))
[ $tsan_rc -ne 0 ] && failed=$((failed + 1))
echo "ctest: $((total - failed)) passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$total" -gt 0 ] && [ $tsan_rc -eq 0 ]
