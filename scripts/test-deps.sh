#!/usr/bin/env bash
# test-deps.sh — installs the npm packages of the Node test server
# (tests/servers/node, pinned by its package-lock.json) with `npm ci`.
# Idempotent: runs npm only when node_modules is missing, is older than the
# lock file, or lacks ws. Needs node and npm (scripts/deps.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$root/tests/servers/node
lock=$dir/package-lock.json
mods=$dir/node_modules

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test-deps: '$tool' not found; run scripts/deps.sh as root (apt-get install nodejs npm)" >&2
    exit 1
  fi
done
if [ ! -f "$lock" ]; then
  echo "test-deps: $lock is missing" >&2
  exit 1
fi

if [ -f "$mods/ws/package.json" ] && [ ! "$lock" -nt "$mods" ]; then
  echo "test-deps: node test server packages present ($(node -p "require('$mods/ws/package.json').version" 2>/dev/null | sed 's/^/ws /'))"
  exit 0
fi

echo "test-deps: npm ci in tests/servers/node (node $(node --version), npm $(npm --version))"
(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
touch "$mods"   # npm ci keeps package mtimes; mark the install as newer than the lock
echo "test-deps: installed ws $(node -p "require('$mods/ws/package.json').version")"
