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
rm -rf "$certs"
tests/certs.sh "$certs" >/dev/null
out=$(mktemp)
"$bin/mmws-sim" --tls "$certs/server.pem" "$certs/server.key" --rate 1000 \
  --profiles 200:100,600:300,1200:400,2500:800,4000:1500 --seed 7 >"$out" &
sim=$!
trap 'kill "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
  grep -q '^CONTROL' "$out" && break
  sleep 0.1
done
port=$(awk '/^LISTENING/{print $2}' "$out")
ctl=$(awk '/^CONTROL/{print $2}' "$out")
if [ -z "$port" ] || [ -z "$ctl" ]; then
  echo "demo: the simulator did not start" >&2
  exit 1
fi
echo "demo: simulator on wss://localhost:$port (pid $sim), control port $ctl"
"$bin/mmws-demo" --url "wss://localhost:$port/ws/btcusdt@bookTicker" \
  --ca "$certs/ca.pem" --resolve 127.0.0.1 --seconds "$seconds" \
  --control "$ctl" --fault-every-ms 4000 --evict-interval-s 5
