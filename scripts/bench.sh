#!/usr/bin/env bash
# bench.sh — `make bench`: runs every bench_* program of the release build.
# Each prints its figures beside a baseline measured in the same run.
set -euo pipefail
BUILD=${BUILD:-build}
rc=0
for b in "$BUILD"/release/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" || rc=1
done
# The round-trip echo benchmark against Boost.Beast, libwebsockets and the
# ceiling client (BENCH_ECHO=0 skips it).
[ "${BENCH_ECHO:-1}" = 0 ] || { echo "== bench-echo"; scripts/bench-echo.sh || rc=1; }
# The pool's hedging latency and the firehose against Beast/lws readers,
# both against the bundled simulator (BENCH_POOL=0 skips it).
[ "${BENCH_POOL:-1}" = 0 ] || { echo "== bench-pool"; scripts/bench-pool.sh || rc=1; }
exit $rc
