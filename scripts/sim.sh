# sim.sh — sourced by demo.sh and soak.sh: start_sim NAME BIN_DIR CERTS_DIR
# generates a PKI into CERTS_DIR, starts BIN_DIR/mmws-sim over wss:// on
# 127.0.0.1 (the demo's market profiles), waits for its LISTENING and
# CONTROL lines and sets $sim (pid), $port and $ctl; the simulator is
# stopped by PID when the calling script exits.
start_sim() {
  local name=$1 bin=$2 certs=$3
  rm -rf "$certs"
  tests/certs.sh "$certs" >/dev/null
  sim_out=$(mktemp)
  "$bin/mmws-sim" --tls "$certs/server.pem" "$certs/server.key" --rate 1000 \
    --profiles 200:100,600:300,1200:400,2500:800,4000:1500 --seed 7 >"$sim_out" &
  sim=$!
  trap 'kill "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; rm -f "$sim_out"' EXIT
  for _ in $(seq 100); do
    grep -q '^CONTROL' "$sim_out" && break
    sleep 0.1
  done
  port=$(awk '/^LISTENING/{print $2}' "$sim_out")
  ctl=$(awk '/^CONTROL/{print $2}' "$sim_out")
  if [ -z "$port" ] || [ -z "$ctl" ]; then
    echo "$name: the simulator did not start" >&2
    exit 1
  fi
  echo "$name: simulator on wss://localhost:$port (pid $sim), control port $ctl"
}
