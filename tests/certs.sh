#!/usr/bin/env bash
# certs.sh OUTDIR — generates the test PKI with openssl, fresh each run:
#   ca.pem ca.key                 test CA
#   server.pem server.key         signed by ca, SAN localhost 127.0.0.1 ::1
#   wronghost.pem wronghost.key   signed by ca, SAN wrong.example only
#   expired.pem expired.key       signed by ca, SAN as server, expired
#   selfsigned.pem selfsigned.key self-signed, SAN as server (not from ca)
#   client.pem client.key         client certificate signed by ca
# Idempotent: an OUTDIR that already has ca.pem is left as it is.
set -euo pipefail
out=$1
mkdir -p "$out"
[ -f "$out/ca.pem" ] && exit 0
cd "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
san="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.pem -days 30 -subj "/CN=mmws test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

leaf() { # name san days_start_offset
  local name=$1 ext=$2
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$name.key" -out "$tmp/$name.csr" -subj "/CN=$name" 2>/dev/null
  printf '%s\nbasicConstraints=CA:FALSE\n' "$ext" > "$tmp/$name.ext"
}
leaf server "$san"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 30 -extfile "$tmp/server.ext" 2>/dev/null
leaf wronghost "subjectAltName=DNS:wrong.example"
openssl x509 -req -in "$tmp/wronghost.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out wronghost.pem -days 30 -extfile "$tmp/wronghost.ext" 2>/dev/null
leaf client "extendedKeyUsage=clientAuth"
openssl x509 -req -in "$tmp/client.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out client.pem -days 30 -extfile "$tmp/client.ext" 2>/dev/null

# Expired: valid from 10 days ago to 2 days ago (openssl ca allows dates).
leaf expired "$san"
mkdir -p "$tmp/ca/newcerts"; : > "$tmp/ca/index.txt"; echo 01 > "$tmp/ca/serial"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
dir = $tmp/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = p
[p]
commonName = supplied
CNF
openssl ca -batch -config "$tmp/ca.cnf" -cert ca.pem -keyfile ca.key \
  -in "$tmp/expired.csr" -out expired.pem -notext \
  -startdate "$(date -u -d '10 days ago' +%Y%m%d%H%M%SZ)" \
  -enddate "$(date -u -d '2 days ago' +%Y%m%d%H%M%SZ)" \
  -extfile "$tmp/expired.ext" 2>/dev/null

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout selfsigned.key -out selfsigned.pem -days 30 -subj "/CN=localhost" \
  -addext "$san" 2>/dev/null
rm -f ca.srl
echo "certs: generated in $out"
