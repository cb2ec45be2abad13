#!/usr/bin/env bash
# demo.sh [URL] — `make demo`: the main job, offline. Starts the bundled
# exchange simulator (tools/mmws-sim) over wss:// on 127.0.0.1 with five
# latency profiles, runs a 5-connection mmws_pool against it for ~20 s
# with a fault every 4 s and eviction every 5 s, prints the live table and
# the summary, and stops the simulator. With URL (make demo URL=wss://...)
# the same pool runs against a real venue instead (needs internet).
# Exits 0 only if the demo reported gaps=0.
set -euo pipefail
BUILD=${BUILD:-build}
bin=$BUILD/release
url=${1:-}
seconds=${DEMO_SECONDS:-20}

if [ -n "$url" ]; then
  exec "$bin/mmws-demo" --url "$url" --seconds "$seconds" --print-every 200
fi

certs=$BUILD/demo/certs
. scripts/sim.sh
start_sim demo "$bin" "$certs"
"$bin/mmws-demo" --url "wss://localhost:$port/ws/btcusdt@bookTicker" \
  --ca "$certs/ca.pem" --resolve 127.0.0.1 --seconds "$seconds" \
  --control "$ctl" --fault-every-ms 4000 --evict-interval-s 5
