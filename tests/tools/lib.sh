# Shared helpers for tests/conformance.sh and tests/clients/run.sh (sourced, not run).
# The caller sets LOG_PREFIX and WORK (a private temp dir) and installs
# `trap mcpd_cleanup EXIT`, which stops the server it started (by PID) and removes WORK.
# shellcheck shell=bash

die() { echo "$LOG_PREFIX: ERROR: $*" >&2; exit 1; }

# Loads $MCPT_TEST_DEPS/env.sh written by tests/prereqs.sh (MCPT_NODE22, MCPT_VENV_PY, ...).
load_test_deps() {
  local deps="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}"
  [ -f "$deps/env.sh" ] || die "$deps/env.sh not found: run tests/prereqs.sh first"
  # shellcheck source=/dev/null
  . "$deps/env.sh"
  [ -x "$MCPT_NODE22" ] || die "Node 22 ($MCPT_NODE22) missing: run tests/prereqs.sh"
  [ -x "$MCPT_VENV_PY" ] || die "Python venv ($MCPT_VENV_PY) missing: run tests/prereqs.sh"
}

# Absolute path of an executable server binary, or die.
resolve_binary() {
  if ! [ -f "$1" ] || ! [ -x "$1" ]; then
    die "server binary $1 is not an executable file (cargo build first)"
  fi
  echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# A free port: bind port 0 on 127.0.0.1, print it, close (tiny reuse race, fine for tests).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

server_log_tail() {
  echo "---- last 40 lines of the server log ----" >&2
  tail -n 40 "$WORK/server.log" >&2 || true
  echo "----" >&2
}

# mcpd_start BINARY PORT  (config TOML on stdin; written to $WORK/mcpd.toml)
# Starts `BINARY serve --config`, stderr+stdout to $WORK/server.log, sets SERVER_PID,
# and waits (at most 10 s) until GET /healthz answers 200; dies with the log otherwise.
SERVER_PID=""
mcpd_start() {
  local binary="$1" port="$2"
  cat > "$WORK/mcpd.toml"
  "$binary" serve --config "$WORK/mcpd.toml" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  # One python3 process polls (cheaper than one per try): 0 = healthy, 2 = server exited,
  # 1 = no 200 before the deadline.
  local rc=0
  python3 - "http://127.0.0.1:$port/healthz" "$SERVER_PID" 10 <<'PY' || rc=$?
import os, sys, time, urllib.request
url, pid, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(2)
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
  case "$rc" in
    0) return 0 ;;
    2)
      wait "$SERVER_PID" && rc=0 || rc=$?
      SERVER_PID=""
      server_log_tail
      die "server exited (status $rc) before /healthz answered" ;;
    *)
      server_log_tail
      die "server did not answer 200 on http://127.0.0.1:$port/healthz within 10 s" ;;
  esac
}

server_alive() { [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; }

# Stops the server we started (SIGTERM, 5 s grace, then SIGKILL). Only that PID.
mcpd_stop() {
  if server_alive; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ]; then wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}

# shellcheck disable=SC2317  # invoked via trap
mcpd_cleanup() {
  local rc=$?
  mcpd_stop
  [ -z "${MCPT_KEEP_HOOK:-}" ] || "$MCPT_KEEP_HOOK" || true
  [ -z "${WORK:-}" ] || rm -rf "$WORK"
  exit "$rc"
}
