#!/usr/bin/env bash
# Smoke test for the peer servers: each one is started on a free port and driven through one
# session lifecycle with curl (initialize -> notifications/initialized -> tools/call echo ->
# DELETE), then stopped by its PID. Run bench/peers/build.sh first.
#
#   bash bench/peers/smoke.sh            # floor (ct, mt), rmcp-echo (NODELAY=0, 1; JSON=1), ts
#
# Replies may be JSON or SSE (rmcp and the TS SDK answer POSTs with text/event-stream); a call
# passes when its status is right and, for tools/call, the body contains "Echo: hello".
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/target/release"
NODE="${MCPT_NODE22:-}"
DEPS_ENV="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}/env.sh"
# shellcheck source=/dev/null
if [ -z "$NODE" ] && [ -f "$DEPS_ENV" ]; then NODE="$(. "$DEPS_ENV" && echo "${MCPT_NODE22:-}")"; fi
[ -n "$NODE" ] && [ -x "$NODE" ] || NODE="$(command -v node)"

TMP="$(mktemp -d)"
SRV_PID=""
cleanup() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PV=2025-06-18
ACCEPT='application/json, text/event-stream'
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'$PV'","capabilities":{},"clientInfo":{"name":"peers-smoke","version":"0"}}}'
INITED='{"jsonrpc":"2.0","method":"notifications/initialized"}'
CALL='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}'

FAILED=0
# check NAME WANT_STATUS_REGEX GOT_STATUS [BODY_MUST_CONTAIN]
check() {
  local name="$1" want="$2" got="$3" needle="${4:-}" ok=1
  [[ "$got" =~ ^($want)$ ]] || ok=0
  if [ -n "$needle" ] && ! grep -qF "$needle" "$TMP/body"; then ok=0; fi
  local ct; ct="$(grep -i '^content-type:' "$TMP/hdr" | tr -d '\r' | cut -d' ' -f2-)"
  printf '  %-4s %-26s HTTP %s  %s (%s bytes)\n' "$([ $ok = 1 ] && echo ok || echo FAIL)" "$name" "$got" "${ct:-no content-type}" "$(wc -c <"$TMP/body")"
  [ $ok = 1 ] || { FAILED=1; sed 's/^/       | /' "$TMP/hdr" "$TMP/body" | head -20; }
}

# req METHOD URL BODY [SESSION] -> prints status; headers/body in $TMP/hdr, $TMP/body
req() {
  local method="$1" url="$2" body="$3" sid="${4:-}"
  local -a h=(-H "Accept: $ACCEPT" -H 'Content-Type: application/json')
  [ -n "$sid" ] && h+=(-H "Mcp-Session-Id: $sid" -H "Mcp-Protocol-Version: $PV")
  local -a d=(); [ -n "$body" ] && d=(--data-binary "$body")
  : >"$TMP/hdr"; : >"$TMP/body"   # a failed curl leaves the last request's files otherwise
  curl -sS -m 5 -X "$method" "${h[@]}" "${d[@]}" -D "$TMP/hdr" -o "$TMP/body" -w '%{http_code}' "$url" || true
}

# smoke LABEL ENV... -- CMD...
smoke() {
  local label="$1"; shift
  local -a envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  local port; port="$(free_port)"
  echo "== $label (port $port)"
  env PORT="$port" "${envs[@]}" "$@" >"$TMP/log" 2>&1 &
  SRV_PID=$!
  local url="http://127.0.0.1:$port/mcp" _
  for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/" && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  local st sid
  st="$(req POST "$url" "$INIT")"; check initialize 200 "$st" '"serverInfo"'
  sid="$(grep -i '^mcp-session-id:' "$TMP/hdr" | tr -d '\r' | cut -d' ' -f2)"
  [ -n "$sid" ] || { echo "  FAIL no mcp-session-id"; FAILED=1; }
  st="$(req POST "$url" "$INITED" "$sid")"; check notifications/initialized 202 "$st"
  st="$(req POST "$url" "$CALL" "$sid")"; check "tools/call echo" 200 "$st" 'Echo: hello'
  st="$(req DELETE "$url" "" "$sid")"; check DELETE '200|202|204' "$st"
  kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
  sed 's/^/  log: /' "$TMP/log" | head -3
}

smoke "floor RT=ct"            RT=ct -- "$BIN/floor"
smoke "floor RT=mt"            RT=mt -- "$BIN/floor"
smoke "rmcp-echo NODELAY=0"    NODELAY=0 -- "$BIN/rmcp-echo"
smoke "rmcp-echo NODELAY=1"    NODELAY=1 -- "$BIN/rmcp-echo"
smoke "rmcp-echo NODELAY=1 JSON=1" NODELAY=1 JSON=1 -- "$BIN/rmcp-echo"
smoke "ts (node $("$NODE" --version))" -- "$NODE" "$HERE/ts/server.mjs"

if [ "$FAILED" = 0 ]; then echo "peers smoke: all passed"; else echo "peers smoke: FAILED"; exit 1; fi
