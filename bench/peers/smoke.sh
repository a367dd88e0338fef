#!/usr/bin/env bash
# Smoke test for the peer servers: each one is started on a free port and driven through one
# session lifecycle with curl (initialize -> notifications/initialized -> tools/call echo ->
# DELETE) and one second of the churn generator, then stopped by its PID. Last, the churn
# generator's checks are checked against a stand-in server. Then one protocol 2026-07-28
# tools/call (no session, the `_meta` envelope, the Mcp-Method/Mcp-Name headers: what
# bench/lib/call.lua sends with BENCH_ERA=modern) against ts2 (TS SDK 2.x) and mcpd
# (target/release/mcpd; skipped when not built). Run bench/peers/build.sh first.
#
#   bash bench/peers/smoke.sh            # floor (ct, mt), rmcp-echo (NODELAY=0, 1; JSON=1), ts, py; ts2, mcpd (2026-07-28)
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
MODERN_PV=2026-07-28
MODERN_CALL='{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"'$MODERN_PV'","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"peers-smoke","version":"0"}}}}'

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

# req_modern URL BODY -> prints status: a protocol 2026-07-28 POST (no session; the version,
# Mcp-Method and Mcp-Name headers). Headers/body in $TMP/hdr, $TMP/body.
req_modern() {
  : >"$TMP/hdr"; : >"$TMP/body"
  curl -sS -m 5 -X POST -H "Accept: $ACCEPT" -H 'Content-Type: application/json' \
    -H "MCP-Protocol-Version: $MODERN_PV" -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' \
    --data-binary "$2" -D "$TMP/hdr" -o "$TMP/body" -w '%{http_code}' "$1" || true
}

# churn_check URL good|bad: one second of the churn generator over 2 connections. good: some
# lifecycles complete and no error is counted; bad: every call's body is refused (bad_body > 0)
# and no lifecycle completes.
churn_check() {
  local url="$1" want="$2" line verdict
  line="$("$BIN/churn" --conns 2 --duration 1 --timeout 2 "$url" | sed -n 's/^BENCHJSON //p')"
  verdict="$(python3 -c '
import json, sys
d = json.loads(sys.argv[1] or "{}"); want = sys.argv[2]
errs = sum(d.get(k, 0) for k in ("bad_status", "bad_body", "no_sid", "err_connect", "err_read", "err_write", "err_timeout"))
n = d.get("sessions", 0)
ok = (n > 0 and errs == 0) if want == "good" else (n == 0 and d.get("bad_body", 0) > 0)
print(("ok  " if ok else "FAIL"), f"churn generator ({want}): {n} lifecycles, {errs} errors", d.get("first_bad", "")[:120].replace("\n", " "))
' "$line" "$want")"
  echo "  $verdict"
  [[ "$verdict" == ok* ]] || FAILED=1
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
  churn_check "$url" good
  kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
  sed 's/^/  log: /' "$TMP/log" | head -3
}

smoke "floor RT=ct"            RT=ct -- "$BIN/floor"
smoke "floor RT=mt"            RT=mt -- "$BIN/floor"
smoke "rmcp-echo NODELAY=0"    NODELAY=0 -- "$BIN/rmcp-echo"
smoke "rmcp-echo NODELAY=1"    NODELAY=1 -- "$BIN/rmcp-echo"
smoke "rmcp-echo NODELAY=1 JSON=1" NODELAY=1 JSON=1 -- "$BIN/rmcp-echo"
smoke "ts (node $("$NODE" --version))" -- "$NODE" "$HERE/ts/server.mjs"
PY="${MCPT_VENV_PY:-}"
# shellcheck source=/dev/null
if [ -z "$PY" ] && [ -f "$DEPS_ENV" ]; then PY="$(. "$DEPS_ENV" && echo "${MCPT_VENV_PY:-}")"; fi
if [ -n "$PY" ] && [ -x "$PY" ]; then
  smoke "py (mcp $("$PY" -c 'import importlib.metadata as m; print(m.version("mcp"))'))" -- "$PY" "$HERE/py/server.py"
else
  echo "== py: FAIL: no test-deps venv with the mcp package (run tests/prereqs.sh)"; FAILED=1
fi

# smoke_modern LABEL PORT ENV... -- CMD...: one protocol 2026-07-28 tools/call echo, no session.
smoke_modern() {
  local label="$1" port="$2"; shift 2
  local -a envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  echo "== $label (port $port)"
  env PORT="$port" "${envs[@]}" "$@" >"$TMP/log" 2>&1 &
  SRV_PID=$!
  local url="http://127.0.0.1:$port/mcp" _ st
  for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/" && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  st="$(req_modern "$url" "$MODERN_CALL")"; check "tools/call echo $MODERN_PV" 200 "$st" 'Echo: hello'
  if grep -qi '^mcp-session-id:' "$TMP/hdr"; then echo "  FAIL a session id on a $MODERN_PV call"; FAILED=1; fi
  kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
  sed 's/^/  log: /' "$TMP/log" | head -3
}

smoke_modern "ts2 (node $("$NODE" --version))" "$(free_port)" -- "$NODE" "$HERE/ts2/server.mjs"
MCPD="$(cd "$HERE/../.." && pwd)/target/release/mcpd"
if [ -x "$MCPD" ]; then
  port="$(free_port)"
  printf '[server]\nlisten = "127.0.0.1:%s"\nnode_id = "smoke"\n[log]\nlevel = "warn"\n' "$port" >"$TMP/mcpd.toml"
  # mcpd takes its port from the config (PORT is set too, and ignored).
  smoke_modern "mcpd ($("$MCPD" --version 2>/dev/null))" "$port" -- "$MCPD" serve --config "$TMP/mcpd.toml"
else
  echo "== mcpd: SKIP (not built: cargo build --release)"
fi

# The churn generator's own checks, against a stand-in that splits every SSE body over two chunks.
for want in good bad; do
  port="$(free_port)"
  echo "== churn generator against a stand-in ($want answers, port $port)"
  python3 "$HERE/churn/check_server.py" "$port" "$( [ $want = good ] && echo GOOD || echo BAD )" &
  SRV_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/" && break; sleep 0.05; done
  churn_check "http://127.0.0.1:$port/mcp" "$want"
  kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=""
done

if [ "$FAILED" = 0 ]; then echo "peers smoke: all passed"; else echo "peers smoke: FAILED"; exit 1; fi
