#!/usr/bin/env bash
# bench-pool.sh — the pool's two benchmarks, each against the bundled
# exchange simulator (mmws-sim) on 127.0.0.1:
#
# 1. Hedging: one-way delivered latency (the simulator's "ts" -> the
#    delivery, CLOCK_MONOTONIC on one host) of 5 single connections side by
#    side vs an mmws_pool of 3 and of 5, all on one simulator whose
#    connections get the same delay and an independent jitter draw per
#    message ($BUILD/release/mmws-bench-hedge). Plain ws:// (TLS does not
#    change what redundancy buys; the firehose below covers TLS).
#    Target: pool p99 <= 0.7 x the best single's p99, pool p50 <= its p50.
#
# 2. Firehose: messages/s one client takes from the simulator at full speed
#    (--rate 0, 200-byte messages), ws:// and wss://, for
#      mmws   $BUILD/release/mmws-bench-read
#      beast  bench/echo/beast_reader     Boost.Beast, sync
#      lws    bench/echo/lws_reader       libwebsockets, 1 MiB rx buffer
#    all with the CLI `NAME URL SECONDS [CAFILE]`: count for SECONDS after
#    the first message, check that "u" grows by 1, print msgs/s last. A
#    fresh simulator for every run (each client starts at u=1); simulator
#    and client pinned to different cores; clients in rotation, repeated;
#    median and spread. Targets: mmws/lws >= 1.5, mmws/beast >= 1.0.
#
# Builds bench/echo (C++, a separate CMake project) into $BUILD/echo, as
# bench-echo.sh does; uses the release build's mmws-sim and tools (run
# `make build` first). Test PKI from tests/certs.sh in a temp dir.
#
# Environment:
#   BUILD (build), JOBS (nproc)
#   BENCH_POOL_SECONDS (3)         firehose: seconds per run
#   BENCH_POOL_REPEATS (5)         firehose: runs per client and transport
#   BENCH_POOL_TRANSPORTS ("ws wss")
#   BENCH_POOL_HEDGE_SECONDS (20)  hedging: recording window
#   BENCH_POOL_HEDGE_RATE (500)    hedging: messages/s
#   BENCH_POOL_HEDGE_PROFILE (100:4000)  delay_us:jitter_us of every
#                                  connection
#   BENCH_POOL_PARTS ("hedge firehose")  which parts to run
#   BENCH_POOL_SIM_CPU (0), BENCH_POOL_CLIENT_CPU (1)  taskset cores
# Exit status: 0, or 1 if a program failed to build or run (a missed
# target is reported, not a failure); 2 on bad settings.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SECS=${BENCH_POOL_SECONDS:-3}
REPEATS=${BENCH_POOL_REPEATS:-5}
TRANSPORTS=${BENCH_POOL_TRANSPORTS:-ws wss}
HSECS=${BENCH_POOL_HEDGE_SECONDS:-20}
HRATE=${BENCH_POOL_HEDGE_RATE:-500}
HPROF=${BENCH_POOL_HEDGE_PROFILE:-100:4000}
PARTS=${BENCH_POOL_PARTS:-hedge firehose}
SIM_CPU=${BENCH_POOL_SIM_CPU:-0}
CLI_CPU=${BENCH_POOL_CLIENT_CPU:-1}
JOBS=${JOBS:-$(nproc)}

num='^[0-9]+([.][0-9]+)?$'
[[ $SECS =~ $num ]] || { echo "BENCH_POOL_SECONDS must be a number (got '$SECS')" >&2; exit 2; }
[[ $HSECS =~ $num ]] || { echo "BENCH_POOL_HEDGE_SECONDS must be a number (got '$HSECS')" >&2; exit 2; }
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_POOL_REPEATS must be >= 1 (got '$REPEATS')" >&2; exit 2; }
[[ $HRATE =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_POOL_HEDGE_RATE must be >= 1 (got '$HRATE')" >&2; exit 2; }
[[ $HPROF =~ ^[0-9]+:[0-9]+$ ]] || { echo "BENCH_POOL_HEDGE_PROFILE must be DELAY_US:JITTER_US (got '$HPROF')" >&2; exit 2; }
for t in $TRANSPORTS; do
  [[ $t == ws || $t == wss ]] || { echo "BENCH_POOL_TRANSPORTS: ws or wss (got '$t')" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "bench-pool: taskset (util-linux) is required" >&2; exit 2; }
if [ "$(nproc)" -lt 2 ] && [ "$SIM_CPU$CLI_CPU" != 00 ]; then
  echo "bench-pool: one CPU only: simulator and client share CPU 0" >&2
  SIM_CPU=0 CLI_CPU=0
fi

R=$BUILD/release
SIM=$R/mmws-sim
for b in "$SIM" "$R/mmws-bench-hedge" "$R/mmws-bench-read"; do
  [ -x "$b" ] || { echo "bench-pool: $b is not built (run make build)" >&2; exit 1; }
done

failed=0
tmp=$(mktemp -d)
sim_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_sim ARGS...: starts mmws-sim pinned to $SIM_CPU, sets $port.
start_sim() {
  : >"$tmp/sim.out"
  taskset -c "$SIM_CPU" "$SIM" --host 127.0.0.1 --port 0 "$@" >"$tmp/sim.out" 2>"$tmp/sim.err" &
  sim_pid=$!
  for _ in $(seq 200); do
    port=$(awk '/^LISTENING /{print $2; exit}' "$tmp/sim.out")
    [ -n "$port" ] && return 0
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench-pool: mmws-sim $* did not start:" >&2
  sed 's/^/  /' "$tmp/sim.err" >&2
  stop_sim
  return 1
}

stop_sim() {
  [ -n "$sim_pid" ] || return 0
  kill "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=
}

# CPU ticks (user + system) the simulator has used so far.
sim_ticks() { awk '{ print $14 + $15 }' "/proc/$sim_pid/stat" 2>/dev/null || echo 0; }

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
echo "== bench-pool: mmws_pool hedging and firehose reads against mmws-sim"
echo "   $(nproc) CPUs (${cpu_model:-unknown}), $(uname -sr); simulator on CPU $SIM_CPU,"
echo "   client on CPU $CLI_CPU (taskset); 127.0.0.1"

# ---------------------------------------------------------------- hedging --
if [[ " $PARTS " == *" hedge "* ]]; then
  profs=$HPROF,$HPROF,$HPROF,$HPROF,$HPROF
  echo
  echo "== hedging: one-way latency, simulator ts -> delivery (recv_ns), us"
  echo "   mmws-sim --rate $HRATE --profiles $profs (ws://): every connection"
  echo "   the same delay ${HPROF%%:*} us plus its own uniform draw of 0..${HPROF##*:} us per message"
  echo "   (a message never overtakes the previous one on a connection). Jitter"
  echo "   chosen much larger than the host's own noise and no larger than the"
  echo "   message spacing allows without heavy head-of-line blocking, so the"
  echo "   effect of redundancy is clear. 5 singles, a pool of 3 and a pool of 5"
  echo "   (13 connections) measured side by side for ${HSECS} s after a 1 s warm-up."
  echo "   ideal N = per message, the smallest latency among singles 1..N (the"
  echo "   same draws, no pool cost): what the pool should approach."
  echo
  if start_sim --rate "$HRATE" --profiles "$profs"; then
    rc=0
    timeout "$(awk -v s="$HSECS" 'BEGIN { printf "%d", s + 60 }')" \
      taskset -c "$CLI_CPU" "$R/mmws-bench-hedge" "ws://127.0.0.1:$port/" "$HSECS" \
      >"$tmp/hedge.out" 2>"$tmp/hedge.err" || rc=$?
    stop_sim
    cat "$tmp/hedge.out"
    # What uniform jitter allows: the p99 of the smallest of N draws is
    # (1 - 0.01^(1/N)) J, of one draw 0.99 J (head-of-line blocking aside).
    awk -v p="$HPROF" 'BEGIN { split(p, f, ":"); d = f[1]; j = f[2]
      printf "   expected from the jitter alone (no head-of-line blocking, no host noise):\n"
      printf "   p99 ratio pool/single = (D + (1 - 0.01^(1/N)) J) / (D + 0.99 J) = %.2f for N=3, %.2f for N=5\n",
        (d + (1 - 0.01 ^ (1 / 3)) * j) / (d + 0.99 * j), (d + (1 - 0.01 ^ (1 / 5)) * j) / (d + 0.99 * j) }'
    if [ $rc -ne 0 ]; then
      echo "bench-pool: mmws-bench-hedge failed (exit $rc):" >&2
      sed 's/^/  /' "$tmp/hedge.err" >&2
      failed=1
    else
      echo "   pool detail (stderr of mmws-bench-hedge):"
      sed 's/^/     /' "$tmp/hedge.err"
    fi
  else
    failed=1
  fi
fi

# --------------------------------------------------------------- firehose --
if [[ " $PARTS " == *" firehose "* ]]; then
  E=$BUILD/echo
  peers=1
  if ! { cmake -S "$root/bench/echo" -B "$E" -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$E" -j "$JOBS"; } >"$BUILD/echo-build.log" 2>&1; then
    cat "$BUILD/echo-build.log" >&2
    echo "bench-pool: building bench/echo failed (log: $BUILD/echo-build.log); mmws alone" >&2
    failed=1
    peers=0
  fi
  "$root/tests/certs.sh" "$tmp/certs" >/dev/null
  CA=$tmp/certs/ca.pem

  client_bin() {
    case $1 in
      mmws) echo "$R/mmws-bench-read" ;;
      beast) echo "$E/beast_reader" ;;
      lws) echo "$E/lws_reader" ;;
    esac
  }
  CLIENTS=(mmws beast lws)
  RUN_CLIENTS=(mmws)
  [ $peers = 1 ] && RUN_CLIENTS=(mmws beast lws)
  tmo=$(awk -v s="$SECS" 'BEGIN { printf "%d", s + 30 }')

  # run_client NAME TRANSPORT: fresh simulator, one run; prints
  # "msgs/s cpu_ns_per_msg gaps first_u sim_cpu%", or fails.
  run_client() {
    local name=$1 t=$2 out rc=0 ca=() simargs=(--rate 0 --size 200 --profiles 0:0)
    if [ "$t" = wss ]; then
      simargs+=(--tls "$tmp/certs/server.pem" "$tmp/certs/server.key")
      ca=("$CA")
    fi
    start_sim "${simargs[@]}" || return 1
    local k0 w0 k1 w1
    k0=$(sim_ticks)
    w0=$(date +%s.%N)
    out=$(timeout "$tmo" taskset -c "$CLI_CPU" "$(client_bin "$name")" \
          "$t://127.0.0.1:$port/" "$SECS" "${ca[@]}" 2>"$tmp/client.err") || rc=$?
    k1=$(sim_ticks)
    w1=$(date +%s.%N)
    stop_sim
    local last
    last=$(printf '%s\n' "$out" | tail -n 1)
    if [ $rc -ne 0 ] || ! [[ $last =~ ^[0-9]+([.][0-9]+)?$ ]]; then
      echo "bench-pool: $name $t failed (exit $rc):" >&2
      sed 's/^/  /' "$tmp/client.err" >&2
      return 1
    fi
    if [ -z "${tls_info:-}" ]; then tls_info=$(grep -m1 '^tls: ' "$tmp/client.err" | cut -c6- || true); fi
    local st
    st=$(grep -m1 '^messages=' "$tmp/client.err" || true)
    awk -v v="$last" -v st="$st" -v k="$((k1 - k0))" -v w0="$w0" -v w1="$w1" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN {
      n = split(st, f, /[ =]/); cpu = "-"; gaps = "-"; fu = "-"
      for (i = 1; i < n; i += 2) {
        if (f[i] == "cpu_ns_per_msg") cpu = f[i + 1]
        if (f[i] == "gaps") gaps = f[i + 1]
        if (f[i] == "first_u") fu = f[i + 1]
      }
      w = w1 - w0; sc = w > 0 ? 100 * k / hz / w : 0
      printf "%s %s %s %s %.0f\n", v, cpu, gaps, fu, sc }'
  }

  # stats V1 V2 ...: prints "median min max".
  stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
      END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
  }

  echo
  echo "== firehose: messages/s one client takes from mmws-sim --rate 0 --size 200"
  echo "   (one producer, one consumer: simulator on CPU $SIM_CPU, client on CPU $CLI_CPU)."
  echo "   A fresh simulator per run; ${SECS} s counted after the first message;"
  echo "   ${REPEATS} runs per client, clients in rotation. median msgs/s, spread = largest"
  echo "   deviation of a run from the median; cpu ns/msg = the client's process CPU"
  echo "   time per message (median), independent of how fast the producer is;"
  echo "   sim cpu = the simulator's CPU use during the run (near 100%: the"
  echo "   producer, not the client, sets msgs/s); gaps = \"u\" not previous + 1."
  printf '\n%-9s %-6s %12s %8s %12s %8s %5s %9s %9s\n' transport client "median msg/s" spread \
    "cpu ns/msg" "sim cpu" gaps "vs lws" "vs beast"

  declare -A V=() C=() G=() SC=()
  for t in $TRANSPORTS; do
    n=${#RUN_CLIENTS[@]}
    for ((r = 0; r < REPEATS; r++)); do
      for ((k = 0; k < n; k++)); do
        c=${RUN_CLIENTS[$(((r + k) % n))]}
        if res=$(run_client "$c" "$t"); then
          read -r v cpu gaps fu sc <<<"$res"
          [[ $gaps =~ ^[0-9]+$ ]] || gaps=0
          V[$t $c]+="$v "
          C[$t $c]+="$cpu "
          SC[$t $c]+="$sc "
          G[$t $c]=$(( ${G[$t $c]:-0} + gaps ))
          [ "$fu" = 1 ] || echo "bench-pool: $c $t started at u=$fu, not 1" >&2
        else
          failed=1
        fi
      done
    done

    declare -A MED=() LO=() HI=() CPU=() SCPU=()
    for c in "${RUN_CLIENTS[@]}"; do
      [ -n "${V[$t $c]:-}" ] || continue
      # shellcheck disable=SC2086
      read -r MED[$c] LO[$c] HI[$c] < <(stats ${V[$t $c]})
      # shellcheck disable=SC2086
      read -r CPU[$c] _ _ < <(stats ${C[$t $c]})
      # shellcheck disable=SC2086
      read -r SCPU[$c] _ _ < <(stats ${SC[$t $c]})
    done
    for c in "${CLIENTS[@]}"; do
      if [ -z "${MED[$c]:-}" ]; then
        why="FAILED (see stderr)"
        [ $peers = 0 ] && [ "$c" != mmws ] && why="not built"
        printf '%-9s %-6s %s\n' "$t" "$c" "$why"
        continue
      fi
      awk -v t="$t" -v c="$c" -v m="${MED[$c]}" -v lo="${LO[$c]}" -v hi="${HI[$c]}" \
          -v cpu="${CPU[$c]}" -v sc="${SCPU[$c]}" -v g="${G[$t $c]}" \
          -v l="${MED[lws]:-0}" -v b="${MED[beast]:-0}" 'BEGIN {
        d = (hi - m > m - lo) ? hi - m : m - lo
        sp = m > 0 ? sprintf("+-%.1f%%", 100 * d / m) : "-"
        vl = l > 0 ? sprintf("%.2fx", m / l) : "-"
        vb = b > 0 ? sprintf("%.2fx", m / b) : "-"
        printf "%-9s %-6s %12.0f %8s %12.0f %7.0f%% %5d %9s %9s\n", t, c, m, sp, cpu, sc, g, vl, vb }'
    done
    if [ -n "${MED[mmws]:-}" ] && [ -n "${MED[lws]:-}" ] && [ -n "${MED[beast]:-}" ]; then
      awk -v t="$t" -v m="${MED[mmws]}" -v l="${MED[lws]}" -v b="${MED[beast]}" \
          -v cm="${CPU[mmws]}" -v cl="${CPU[lws]}" -v cb="${CPU[beast]}" 'BEGIN {
        rl = m / l; rb = m / b
        printf "%-9s target mmws/lws >= 1.5: %.2fx [%s]; mmws/beast >= 1.0: %.2fx [%s];", t, rl, (rl >= 1.5 ? "met" : "MISSED"), rb, (rb >= 1.0 ? "met" : "MISSED")
        printf " cpu per msg: lws/mmws %.1fx, beast/mmws %.1fx\n", cl / cm, cb / cm }'
    fi
    unset MED LO HI CPU SCPU
  done
  echo
  [ -n "${tls_info:-}" ] && echo "   wss: $tls_info (OpenSSL $(openssl version | awk '{print $2}'))"
fi
exit $failed
