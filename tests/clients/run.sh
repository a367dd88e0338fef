#!/usr/bin/env bash
# Runs the official-SDK client scenarios against a freshly started mcpd (the conformance fixtures
# on): in the session era ts-client.mjs (TypeScript SDK 1.x) and py_client.py (Python `mcp` 2.x,
# low-level ClientSession); in 2026-07-28 ts-modern.mjs (@modelcontextprotocol/client 2.4.0 in
# mode 'auto', and its legacy default) and py_modern.py (`mcp.Client` in mode "auto" and pinned).
#
#   tests/clients/run.sh target/debug/mcpd
#
# Needs tests/prereqs.sh to have run (reads $MCPT_TEST_DEPS/env.sh).
# Last line: "clients: N passed, M failed" (N/M count clients; a server that died during
# the run counts as one more failure). Exit 1 on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=clients
# shellcheck source=SCRIPTDIR/../tools/lib.sh
. "$HERE/../tools/lib.sh"

[ $# -eq 1 ] || die "usage: $0 PATH/TO/mcpd"
BINARY="$(resolve_binary "$1")"
load_test_deps
export MCPT_NODE_MODULES   # ts-client.mjs loads the SDK from there

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-clients.XXXXXX")"
trap mcpd_cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
# Default catalog (built-in tools); only the listen address and a quiet log are set.
mcpd_start "$BINARY" "$PORT" <<EOF
[server]
listen = "127.0.0.1:$PORT"

# The modern clients' MRTR and logging steps use the conformance fixtures.
[catalog]
conformance = true

[log]
level = "warn"
EOF
echo "clients: mcpd (pid $SERVER_PID) up on $BASE"

passed=0
failed=0
failed_names=()
# Each client is bounded by `timeout` so a hung SDK call cannot hang CI.
run_client() {
  local name="$1"; shift
  echo "clients: == $name =="
  local rc=0
  timeout --kill-after=5 180 "$@" "$BASE/mcp" || rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
  else
    [ "$rc" -ne 124 ] || echo "clients: $name timed out after 180 s"
    echo "clients: $name exited with status $rc"
    failed=$((failed + 1)); failed_names+=("$name")
  fi
}
run_client ts-client "$MCPT_NODE22" "$HERE/ts-client.mjs"
run_client py-client "$MCPT_VENV_PY" "$HERE/py_client.py"
run_client ts-modern "$MCPT_NODE22" "$HERE/ts-modern.mjs"
run_client py-modern "$MCPT_VENV_PY" "$HERE/py_modern.py" --metrics "$BASE/metrics"

if ! server_alive; then
  echo "clients: the server is no longer running" >&2
  failed=$((failed + 1)); failed_names+=("server-died")
fi
if [ "$failed" -ne 0 ]; then
  echo "clients: failed: ${failed_names[*]}"
  server_log_tail
fi
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
