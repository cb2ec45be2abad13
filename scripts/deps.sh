#!/usr/bin/env bash
# deps.sh — installs the Debian packages mmws needs, skipping what is
# already installed (dpkg -s). Idempotent; runs apt-get only when something
# is missing. Must run as root on a fresh Debian 12 machine.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config    # compiler, build system
  clang libclang-rt-14-dev llvm       # clang -Werror build, libFuzzer, LSan
  libssl-dev openssl                  # TLS, SHA-1/base64; test certificates
  libc-ares-dev                       # non-blocking DNS
  libxxhash-dev                       # XXH3 for the duplicate filter
  valgrind                            # leak checks
  python3 python3-websockets          # independent test server (Python)
  nodejs                              # independent test server (Node ws)
  libboost1.81-dev libwebsockets-dev  # bench: Beast echo server and clients
  util-linux                          # taskset, for the bench
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$p")
  fi
done
# Debian's nodejs has no npm (NodeSource's does): add the npm package only
# when no npm is on PATH, so it never fights a nodejs that ships its own.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
else
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages and not root; install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
"$(dirname "${BASH_SOURCE[0]}")/test-deps.sh"

