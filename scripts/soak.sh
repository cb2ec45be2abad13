#!/usr/bin/env bash
# soak.sh — `make soak`: the long soak, not part of `make test`. Builds the
# ASan+UBSan build (the same cmake line as test.sh, $BUILD/asan), starts the
# bundled exchange simulator over wss:// on 127.0.0.1 with generated
# certificates (as demo.sh does), and runs tools/mmws-soak against it for
# SOAK_SECONDS (default 600, the first 60 s a warm-up before the baseline):
# a 5-connection pool with a fault every 3 s (kill, close with a code,
# stall, double kill, rate burst, pause).
# The last line is the soak's
#   soak: seconds=S faults=F delivered=N gaps=G rss_kb_start=A rss_kb_end=B
#         fds_start=C fds_end=D
# and the exit status is the soak's (0 only if every bound held; a crash
# or a leak found by the sanitizers also makes it non-zero).
# SOAK_ARGS passes more options to mmws-soak (e.g. "--rss-growth-pct 8").
set -euo pipefail
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
dir=$BUILD/asan
seconds=${SOAK_SECONDS:-600}

CC=gcc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMMWS_SANITIZE=address,undefined -DMMWS_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j "$JOBS" --target mmws-sim mmws-soak

# Two ASan settings keep RSS a measure of the library, not of ASan:
# - quarantine_size_mb=4: ASan keeps freed memory in a quarantine (256 MiB
#   by default) to catch use-after-free. Every reconnect frees a read
#   buffer and TLS state into it, so with the default the quarantine would
#   still be filling after ten minutes and RSS would grow for that reason
#   alone. At 4 MiB it is full within the warm-up.
# - malloc_context_size=2: ASan records the stack of every allocation and
#   free in a depot that is never freed. Most allocations of a connection
#   are OpenSSL's, built without frame pointers, so the fast unwinder reads
#   junk frames past its first two and every new connection adds new
#   "unique" stacks: measured, ~8 KiB of RSS a second (+20% in ten
#   minutes) with the heap flat. Two frames (the allocating function and
#   its caller) stay finite; errors are still caught and their own stack is
#   full. Rerun with a larger value to get longer allocation stacks.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:quarantine_size_mb=4:malloc_context_size=2
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

certs=$BUILD/soak/certs
. scripts/sim.sh
start_sim soak "$dir" "$certs"
set +e
# shellcheck disable=SC2086
"$dir/mmws-soak" --url "wss://localhost:$port/ws/btcusdt@bookTicker" \
  --ca "$certs/ca.pem" --resolve 127.0.0.1 --seconds "$seconds" \
  --control "$ctl" ${SOAK_ARGS:-}
rc=$?
exit "$rc"
