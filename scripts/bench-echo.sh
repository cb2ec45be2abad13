#!/usr/bin/env bash
# bench-echo.sh — the round-trip echo benchmark (the method of
# github.com/tarasko/websocket-benchmark): a client sends a binary message of
# SIZE bytes to a Boost.Beast echo server on 127.0.0.1, waits for the whole
# echo, sends the next; round trips per second over a fixed time, over ws://
# and wss://, for the clients
#   beast    bench/echo/beast_client      Boost.Beast, sync
#   lws      bench/echo/lws_client        libwebsockets 4.1
#   ceiling  bench/echo/ceiling_client    one prebuilt frame, read header+SIZE
#   mmws     $BUILD/release/mmws-bench-echo
# Every client has the CLI `NAME URL SIZE SECONDS [CAFILE]` and prints round
# trips/s as its last stdout line.
#
# Builds bench/echo (C++, a separate CMake project) into $BUILD/echo,
# generates a test PKI (tests/certs.sh) into a temp dir, then for each
# transport and SIZE starts beast_server, runs the clients in rotation
# BENCH_REPEATS times for BENCH_SECONDS each, stops the server, and prints
# median, spread and the ratios to Beast and to the ceiling.
#
# Environment: BUILD (build), BENCH_SECONDS (3), BENCH_REPEATS (5),
# BENCH_SIZES ("256 8192 100000"), BENCH_TRANSPORTS ("ws wss"),
# BENCH_CPU (0: the core server and client are pinned to), JOBS (nproc).
# Exit status: 0, or 1 if any peer failed to build or run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SECS=${BENCH_SECONDS:-3}
REPEATS=${BENCH_REPEATS:-5}
SIZES=${BENCH_SIZES:-256 8192 100000}
TRANSPORTS=${BENCH_TRANSPORTS:-ws wss}
CPU=${BENCH_CPU:-0}
JOBS=${JOBS:-$(nproc)}

[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "BENCH_SECONDS must be a number (got '$SECS')" >&2; exit 2; }
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_REPEATS must be >= 1 (got '$REPEATS')" >&2; exit 2; }
for s in $SIZES; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_SIZES: bad size '$s'" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "bench-echo: taskset (util-linux) is required" >&2; exit 2; }

# ------------------------------------------------------------------ build --
E=$BUILD/echo
if ! { cmake -S "$root/bench/echo" -B "$E" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$E" -j "$JOBS"; } >"$BUILD/echo-build.log" 2>&1; then
  cat "$BUILD/echo-build.log" >&2
  echo "bench-echo: building bench/echo failed (log: $BUILD/echo-build.log)" >&2
  exit 1
fi
MMWS_BIN=$BUILD/release/mmws-bench-echo

tmp=$(mktemp -d)
server_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
"$root/tests/certs.sh" "$tmp/certs" >/dev/null
CA=$tmp/certs/ca.pem

# ---------------------------------------------------------------- helpers --
client_bin() {
  case $1 in
    beast) echo "$E/beast_client" ;;
    lws) echo "$E/lws_client" ;;
    ceiling) echo "$E/ceiling_client" ;;
    mmws) echo "$MMWS_BIN" ;;
  esac
}
CLIENTS=(beast lws ceiling mmws)
mmws_built=0
[ -x "$MMWS_BIN" ] && mmws_built=1
RUN_CLIENTS=(beast lws ceiling)
[ $mmws_built = 1 ] && RUN_CLIENTS+=(mmws)

# start_server TRANSPORT: starts beast_server pinned to $CPU, sets $port.
start_server() {
  local args=(0)
  [ "$1" = wss ] && args+=("$tmp/certs/server.pem" "$tmp/certs/server.key")
  : >"$tmp/server.out"
  taskset -c "$CPU" "$E/beast_server" "${args[@]}" >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  for _ in $(seq 200); do
    port=$(awk '/^LISTENING /{print $2; exit}' "$tmp/server.out")
    [ -n "$port" ] && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "bench-echo: beast_server ($1) did not start:" >&2
  cat "$tmp/server.err" >&2
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

tmo=$(awk -v s="$SECS" 'BEGIN { printf "%d", s + 30 }')

# run_client NAME URL SIZE SECONDS: prints round trips/s, or fails with the
# client's stderr on ours.
run_client() {
  local name=$1 url=$2 size=$3 secs=$4 out rc=0 ca=()
  [[ $url == wss://* ]] && ca=("$CA")
  out=$(timeout "$tmo" taskset -c "$CPU" "$(client_bin "$name")" "$url" "$size" "$secs" \
        "${ca[@]}" 2>"$tmp/client.err") || rc=$?
  local last
  last=$(printf '%s\n' "$out" | tail -n 1)
  if [ $rc -ne 0 ] || ! [[ $last =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "bench-echo: $name $url size $size failed (exit $rc):" >&2
    sed 's/^/  /' "$tmp/client.err" >&2
    return 1
  fi
  if [ -z "${tls_info:-}" ]; then tls_info=$(grep -m1 '^tls: ' "$tmp/client.err" | cut -c6- || true); fi
  echo "$last"
}

# stats V1 V2 ...: prints "median min max".
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}

# ----------------------------------------------------------------- header --
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
echo "== round-trip echo (tarasko/websocket-benchmark method); server: bench/echo/beast_server (Boost.Beast, 1 thread)"
echo "   $(nproc) CPUs (${cpu_model:-unknown}), $(uname -sr)"
echo "   server and client both pinned to CPU $CPU (taskset -c $CPU): on this $(nproc)-core"
echo "   machine one shared core gives the steadiest figures; every round trip"
echo "   includes the context switches between the two processes."
echo "   127.0.0.1, ${SECS} s per run, ${REPEATS} runs per client, clients in rotation;"
echo "   median round trips/s, spread = largest deviation of a run from the median;"
echo "   vs beast / vs ceiling = median / that client's median (higher is faster)."
printf '\n%-9s %7s  %-8s %12s %8s %9s %10s\n' transport size client "median rt/s" spread "vs beast" "vs ceiling"

# -------------------------------------------------------------------- run --
failed=0
declare -A R
for t in $TRANSPORTS; do
  for size in $SIZES; do
    if ! start_server "$t"; then failed=1; continue; fi
    url="$t://127.0.0.1:$port/"
    # Warm the server (page faults, buffer growth) before measuring.
    if ! run_client ceiling "$url" "$size" 0.2 >/dev/null; then failed=1; fi
    n=${#RUN_CLIENTS[@]}
    for ((r = 0; r < REPEATS; r++)); do
      for ((k = 0; k < n; k++)); do
        c=${RUN_CLIENTS[$(((r + k) % n))]}
        if v=$(run_client "$c" "$url" "$size" "$SECS"); then
          R[$t $size $c]+="$v "
        else
          failed=1
          R[$t $size $c fail]=1
        fi
      done
    done
    stop_server

    declare -A MED=() LO=() HI=()
    for c in "${RUN_CLIENTS[@]}"; do
      [ -n "${R[$t $size $c]:-}" ] || continue
      # shellcheck disable=SC2086
      read -r MED[$c] LO[$c] HI[$c] < <(stats ${R[$t $size $c]})
    done
    for c in "${CLIENTS[@]}"; do
      if [ "$c" = mmws ] && [ $mmws_built = 0 ]; then
        printf '%-9s %7s  %-8s %s\n' "$t" "$size" "$c" "mmws-bench-echo: not built"
        continue
      fi
      if [ -n "${R[$t $size $c fail]:-}" ] || [ -z "${MED[$c]:-}" ]; then
        printf '%-9s %7s  %-8s %s\n' "$t" "$size" "$c" "FAILED (see stderr)"
        continue
      fi
      awk -v t="$t" -v s="$size" -v c="$c" -v m="${MED[$c]}" -v lo="${LO[$c]}" -v hi="${HI[$c]}" \
          -v b="${MED[beast]:-0}" -v z="${MED[ceiling]:-0}" 'BEGIN {
        d = (hi - m > m - lo) ? hi - m : m - lo
        sp = m > 0 ? sprintf("+-%.1f%%", 100 * d / m) : "-"
        vb = b > 0 ? sprintf("%.2fx", m / b) : "-"
        vz = z > 0 ? sprintf("%.2fx", m / z) : "-"
        printf "%-9s %7s  %-8s %12.0f %8s %9s %10s\n", t, s, c, m, sp, vb, vz }'
    done
    unset MED LO HI
  done
done
echo
[ -n "${tls_info:-}" ] && echo "   wss: $tls_info (every client, OpenSSL $(openssl version | awk '{print $2}'))"
exit $failed
