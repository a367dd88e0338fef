#!/usr/bin/env bash
# Builds the benchmark's peer servers; idempotent (cargo rebuilds only what changed, npm ci
# runs only when the installed tree is not from the current lock).
#
#   bash bench/peers/build.sh
#
# floor + rmcp-echo + churn (the churn load generator): a standalone Cargo workspace (own Cargo.lock, own target/), so mcpd's own
# build never resolves rmcp/axum. ts (SDK 1.x) and ts2 (SDK 2.x): npm ci from each one's pinned
# package-lock.json; run them with Node 22 (tests/prereqs.sh installs one and writes $MCPT_NODE22
# into its env.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "peers/build: ERROR: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found"
cargo build --release --locked --manifest-path "$HERE/Cargo.toml" \
  || die "cargo build of floor/rmcp-echo/churn failed"

# Like tests/prereqs.sh: the system npm only installs; the servers run on Node 22.
# npm ci wipes node_modules first, so skip it when the stamp says this exact lock is installed.
for peer in ts ts2; do
  DIR="$HERE/$peer"
  STAMP="$DIR/node_modules/.mcpd-installed-lock.json"
  if cmp -s "$DIR/package-lock.json" "$STAMP" 2>/dev/null; then
    echo "peers/build: $peer node_modules up to date"
  else
    command -v npm >/dev/null 2>&1 || die "npm not found (tests/prereqs.sh installs it)"
    # The EBADENGINE warning (system npm on Node 20, package wants >= 22) is harmless.
    (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $DIR failed"
    cp "$DIR/package-lock.json" "$STAMP"
  fi
done
TS="$HERE/ts"

# Node 22 for the TS peer: $MCPT_NODE22 from the test deps, else a node on PATH if it is v22+.
NODE="${MCPT_NODE22:-}"
DEPS_ENV="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}/env.sh"
# shellcheck source=/dev/null
if [ -z "$NODE" ] && [ -f "$DEPS_ENV" ]; then NODE="$(. "$DEPS_ENV" && echo "${MCPT_NODE22:-}")"; fi
if [ -z "$NODE" ] || [ ! -x "$NODE" ]; then NODE="$(command -v node || true)"; fi
NODE_VER="$("$NODE" --version 2>/dev/null || echo none)"
case "$NODE_VER" in v2[2-9].*|v[3-9][0-9].*) ;; *) echo "peers/build: WARNING: no Node >= 22 found (got $NODE_VER at '${NODE:-}'); run tests/prereqs.sh" >&2 ;; esac

echo "floor:     PORT=N [RT=ct|mt WORKERS=1] $HERE/target/release/floor"
echo "rmcp-echo: PORT=N [NODELAY=0|1 JSON=0|1 RT=mt|ct WORKERS=n] $HERE/target/release/rmcp-echo"
echo "ts:        PORT=N $NODE $TS/server.mjs   # node $NODE_VER"
echo "ts2:       PORT=N $NODE $HERE/ts2/server.mjs   # node $NODE_VER; protocol 2026-07-28 calls (legacy era stateless)"
echo "churn:     $HERE/target/release/churn [--conns N] [--duration S] http://127.0.0.1:PORT/mcp"
