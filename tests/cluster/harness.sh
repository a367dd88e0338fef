# A three-node mcpd cluster behind Traefik, on 127.0.0.1 only (sourced, not run).
#
#   . tests/cluster/harness.sh
#   LOG_PREFIX=my-test
#   cluster_init target/debug/mcpd        # WORK dir, deps, `trap cluster_cleanup EXIT`
#   cluster_start_redis
#   cluster_start_nodes true              # [cluster] forward_misroutes = true|false; waits for sync
#   cluster_start_traefik                 # writes the config from traefik/*.yml, waits for the API
#   ... $TRAEFIK_URL/mcp, ${NODE_URL[1..3]}, ${NODE_LOG[1..3]} ...
#   cluster_stop_nodes; cluster_start_nodes false   # restart the nodes (Redis and Traefik stay)
#   cluster_restart_node 2                # rolling-deploy step: SIGTERM n2, start it again, wait UP
#
# Everything started here is recorded by PID and stopped by PID (cluster_stop_all / the EXIT
# trap); nothing else is touched. MCPT_CLUSTER_KEEP=1 keeps $WORK (logs, generated configs).
# shellcheck shell=bash

CLUSTER_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER_ROOT="$(cd "$CLUSTER_HERE/../.." && pwd)"
# shellcheck source=SCRIPTDIR/../tools/lib.sh
. "$CLUSTER_ROOT/tests/tools/lib.sh"

NODES=(n1 n2 n3)
declare -a NODE_PORT NODE_URL NODE_PID NODE_LOG
REDIS_PID="" REDIS_PORT=""
TRAEFIK_PID="" TRAEFIK_PORT="" TRAEFIK_TLS_PORT="" TRAEFIK_ADMIN_PORT="" TRAEFIK_URL=""

say() { echo "$LOG_PREFIX: $*"; }

# check NAME OK(0|1) WHY — counts a named check; the failures' names collect in failed_names.
passed=0 failed=0 failed_names=()
check() {
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$1"); say "CHECK FAILED: $1: $3"; fi
}

# cluster_init BINARY
cluster_init() {
  [ $# -eq 1 ] || die "usage: cluster_init PATH/TO/mcpd"
  BINARY="$(resolve_binary "$1")"
  load_test_deps
  [ -x "${MCPT_TRAEFIK:-}" ] || die "traefik ($MCPT_TRAEFIK) missing: run tests/prereqs.sh"
  [ -x "${MCPT_REDIS_SERVER:-}" ] || die "redis-server ($MCPT_REDIS_SERVER) missing: run tests/prereqs.sh"
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-cluster.XXXXXX")"
  trap cluster_cleanup EXIT
  trap 'exit 130' INT TERM
  for i in 1 2 3; do NODE_PORT[i]="$(free_port)"; NODE_URL[i]="http://127.0.0.1:${NODE_PORT[i]}"; done
}

# Polls URL until python expression EXPR (on the parsed JSON as `j`, status as `s`) is true.
# wait_json URL SECONDS EXPR [PID]  -> 0 ok, 1 timeout, 2 PID died
wait_json() {
  python3 - "$@" <<'PY'
import json, os, sys, time, urllib.request
url, secs, expr = sys.argv[1], float(sys.argv[2]), sys.argv[3]
pid = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else 0
end = time.monotonic() + secs
while time.monotonic() < end:
    if pid:
        try: os.kill(pid, 0)
        except ProcessLookupError: sys.exit(2)
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            s, j = r.status, json.loads(r.read() or b"null")
            if eval(expr):
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
}

stop_pid() { # stop_pid PID NAME: SIGTERM, 5 s grace, SIGKILL; only that PID
  local pid="$1"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cluster_start_redis() {
  REDIS_PORT="$(free_port)"
  mkdir -p "$WORK/redis"
  "$MCPT_REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$WORK/redis" --logfile "$WORK/redis.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  python3 - "$REDIS_PORT" <<'PY' || die "redis-server did not answer PING on port $REDIS_PORT"
import socket, sys, time
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as c:
            c.sendall(b"PING\r\n")
            if c.recv(16).startswith(b"+PONG"): sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
  say "redis-server (pid $REDIS_PID) on 127.0.0.1:$REDIS_PORT"
}

# cluster_start_nodes true|false  — starts n1..n3 with `[cluster] forward_misroutes` set and
# adopt_orphans at its default (logs in $WORK/<node>.<true|false>.log), and waits until every
# /healthz says synced and every node's heartbeat is in Redis (so peers can be found).
cluster_start_nodes() {
  cluster_start_nodes_with "$1" default "$1"
}

cluster_stop_nodes() {
  local i
  for i in 1 2 3; do stop_pid "${NODE_PID[i]:-}"; NODE_PID[i]=""; done
}

# cluster_restart_node I  — a rolling-deploy step for node I (1..3): SIGTERM its PID and wait for
# it to exit (the drain takes ~2-3 s; SIGKILL after 15 s), start it again with the same
# $WORK/<node>.toml on the same port (its log is appended to ${NODE_LOG[I]}), wait until its
# /healthz says synced plus one heartbeat period, and, when Traefik runs, until Traefik's API
# shows all 3 servers UP again in both services. Sets (milliseconds since the SIGTERM):
# RESTART_EXITED_MS (process gone), RESTART_SYNCED_MS (serving again, registry synced),
# RESTART_UP_MS (Traefik routes to it again), and RESTART_EXIT_STATUS. Dies on a timeout.
cluster_restart_node() {
  local i="$1" pid="${NODE_PID[$1]:-}" name="${NODES[$1-1]}" t0 rc=0 svc
  [ -n "$pid" ] || die "cluster_restart_node $i: node $name is not running"
  t0="$(date +%s%N)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "node $name (pid $pid) still running 15 s after SIGTERM: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  RESTART_EXIT_STATUS=0
  wait "$pid" 2>/dev/null || RESTART_EXIT_STATUS=$?
  RESTART_EXITED_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  NODE_PID[i]=""
  echo "---- restarted by cluster_restart_node ----" >>"${NODE_LOG[i]}"
  "$BINARY" serve --config "$WORK/$name.toml" >>"${NODE_LOG[i]}" 2>&1 &
  NODE_PID[i]=$!
  wait_json "${NODE_URL[i]}/healthz" 15 's == 200 and j["registry"]["synced"] is True' "${NODE_PID[i]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "${NODE_LOG[i]}" >&2
    die "restarted node $name (${NODE_URL[i]}) not synced within 15 s (rc $rc)"
  fi
  RESTART_SYNCED_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  sleep 1.2   # one heartbeat period: every peer has seen the new boot's heartbeat
  if [ -n "$TRAEFIK_PID" ]; then
    for svc in mcpd-sticky@file mcpd@file; do
      wait_json "http://127.0.0.1:$TRAEFIK_ADMIN_PORT/api/http/services/$svc" 20 \
        'len(j.get("serverStatus", {})) == 3 and all(v == "UP" for v in j["serverStatus"].values())' \
        "$TRAEFIK_PID" || { tail -n 30 "$WORK/traefik.log" >&2; die "Traefik service $svc: $name not UP again within 20 s"; }
    done
  fi
  RESTART_UP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  say "node $name restarted (pid ${NODE_PID[i]}): exited ${RESTART_EXITED_MS} ms after SIGTERM (status $RESTART_EXIT_STATUS), synced at ${RESTART_SYNCED_MS} ms, UP in Traefik at ${RESTART_UP_MS} ms"
}

nodes_alive() {
  local i
  for i in 1 2 3; do kill -0 "${NODE_PID[i]:-0}" 2>/dev/null || return 1; done
}

# Writes $WORK/traefik/{traefik.yml,dynamic/mcpd.yml} from the committed files, loopback ports
# substituted (each file written to a temp name, then renamed: Traefik watches the directory).
cluster_write_traefik_config() {
  local t="$WORK/traefik"
  mkdir -p "$t/dynamic" "$t/certs"
  if [ ! -f "$t/certs/cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      -keyout "$t/certs/key.pem" -out "$t/certs/cert.pem" >/dev/null 2>&1 \
      || die "openssl could not make a self-signed certificate"
  fi
  python3 - "$CLUSTER_ROOT/traefik" "$t" "$TRAEFIK_PORT" "$TRAEFIK_TLS_PORT" "$TRAEFIK_ADMIN_PORT" \
    "${NODE_URL[1]}" "${NODE_URL[2]}" "${NODE_URL[3]}" <<'PY' || die "cannot generate the Traefik config"
import os, sys
src, dst, web, tls, admin, *nodes = sys.argv[1:]
def put(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)           # atomic: Traefik never sees a half-written file
def sub(text, pairs):
    for old, new in pairs:
        if old not in text:
            sys.exit(f"{old!r} not found in the committed Traefik config")
        text = text.replace(old, new)
    return text
static = sub(open(f"{src}/traefik.yml").read(), [
    ('address: ":80"', f'address: "127.0.0.1:{web}"'),
    ('address: ":443"', f'address: "127.0.0.1:{tls}"'),
    ('address: "127.0.0.1:8081"', f'address: "127.0.0.1:{admin}"'),
    ("directory: /etc/traefik/dynamic", f"directory: {dst}/dynamic"),
    # The tests count every /mcp request in the access log, not only the failed ones.
    ('  filters:\n    statusCodes: ["400-599"]\n', ""),
])
dynamic = sub(open(f"{src}/dynamic/mcpd.yml").read(), [
    *[(f"http://10.0.0.{i}:8080", u) for i, u in enumerate(nodes, 1)],
    ("/etc/traefik/certs/", f"{dst}/certs/"),
])
put(f"{dst}/dynamic/mcpd.yml", dynamic)
put(f"{dst}/traefik.yml", static)
PY
}

# Starts Traefik and waits until its API shows both routers enabled and all 3 servers UP in
# both services (/ping alone says nothing about the dynamic config).
cluster_start_traefik() {
  TRAEFIK_PORT="$(free_port)"; TRAEFIK_TLS_PORT="$(free_port)"; TRAEFIK_ADMIN_PORT="$(free_port)"
  TRAEFIK_URL="http://127.0.0.1:$TRAEFIK_PORT"
  cluster_write_traefik_config
  "$MCPT_TRAEFIK" --configFile="$WORK/traefik/traefik.yml" >"$WORK/traefik.log" 2>&1 &
  TRAEFIK_PID=$!
  local api="http://127.0.0.1:$TRAEFIK_ADMIN_PORT/api" rc=0
  wait_json "$api/http/routers" 20 \
    'all(any(r.get("name")==n and r.get("status")=="enabled" for r in j) for n in ("mcp@file","default@file"))' \
    "$TRAEFIK_PID" || rc=$?
  [ "$rc" -eq 0 ] || { tail -n 30 "$WORK/traefik.log" >&2; die "Traefik routers not loaded (rc $rc)"; }
  local svc
  for svc in mcpd-sticky@file mcpd@file; do
    wait_json "$api/http/services/$svc" 20 \
      'len(j.get("serverStatus", {})) == 3 and all(v == "UP" for v in j["serverStatus"].values())' \
      "$TRAEFIK_PID" || { tail -n 30 "$WORK/traefik.log" >&2; die "Traefik service $svc: not all 3 servers UP"; }
  done
  say "traefik (pid $TRAEFIK_PID) http $TRAEFIK_URL, https 127.0.0.1:$TRAEFIK_TLS_PORT, api $api"
  say "note: the _mcp_backend cookie is Secure: over this http entry point cookie-keeping clients never send it back (curl excepted for 127.0.0.1)"
}

# Sum of mcpd_forwarded_requests_total on node I (all owners, all outcomes).
node_forwarded() {
  curl -s --max-time 2 "${NODE_URL[$1]}/metrics" 2>/dev/null \
    | awk '/^mcpd_forwarded_requests_total/ {s += $NF} END {printf "%d\n", s}'
}

# Sum of mcpd_http_truncated_responses_total on node I (all causes): answers it could not finish.
node_truncated() {
  curl -s --max-time 2 "${NODE_URL[$1]}/metrics" 2>/dev/null \
    | awk '/^mcpd_http_truncated_responses_total/ {s += $NF} END {printf "%d\n", s}'
}

# drain_totals LOG... — over every drain those node logs record: "<drains> <connections open at
# the stop> <requests in flight then> <answered 503> <cut> <calls running in sessions> <stopped>
# <unanswered>".
drain_totals() {
  awk '
    /connections drained/ {
      d++
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "requests") r += kv[2]; else if (kv[1] == "connections") f += kv[2]
        else if (kv[1] == "answered_503") a += kv[2]; else if (kv[1] == "cut") c += kv[2]
      }
    }
    /the requests running in them were answered/ {
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "running") cr += kv[2]; else if (kv[1] == "stopped") cs += kv[2]
        else if (kv[1] == "unanswered") cu += kv[2]
      }
    }
    END { printf "%d %d %d %d %d %d %d %d\n", d, f, r, a, c, cr, cs, cu }
  ' "$@"
}

cluster_stop_all() {
  cluster_stop_nodes
  stop_pid "$TRAEFIK_PID"; TRAEFIK_PID=""
  stop_pid "$REDIS_PID"; REDIS_PID=""
}

# shellcheck disable=SC2317  # invoked via trap
cluster_cleanup() {
  local rc=$?
  cluster_stop_all
  if [ -n "${MCPT_CLUSTER_KEEP:-}" ]; then
    echo "$LOG_PREFIX: kept $WORK" >&2
  else
    [ -z "${WORK:-}" ] || rm -rf "$WORK"
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- added for cluster-e2e.sh

# cluster_start_nodes_with FWD ADOPT [TAG] — starts n1..n3 with `[cluster] forward_misroutes =
# FWD` and `adopt_orphans = ADOPT` (true|false; `default` leaves the key out), then waits until
# every /healthz says synced plus one heartbeat period (every node has seen every peer). Logs go
# to $WORK/<node>.<TAG>.log (TAG defaults to fwd-FWD.adopt-ADOPT; a TAG used twice appends);
# cluster_restart_node then restarts with the same config. $NODE_EXTRA, if set, is appended to
# every node's config (whole TOML sections).
cluster_start_nodes_with() {
  local fwd="$1" adopt="$2" tag="${3:-fwd-$1.adopt-$2}" i rc adopt_line=""
  [ "$adopt" = default ] || adopt_line="adopt_orphans = $adopt"
  for i in 1 2 3; do
    NODE_LOG[i]="$WORK/${NODES[i-1]}.$tag.log"
    cat > "$WORK/${NODES[i-1]}.toml" <<EOT
[server]
listen = "127.0.0.1:${NODE_PORT[i]}"
node_id = "${NODES[i-1]}"

[redis]
url = "redis://127.0.0.1:$REDIS_PORT"
heartbeat_interval = "1s"

[cluster]
forward_misroutes = $fwd
$adopt_line

[log]
format = "text"
level = "info"
${NODE_EXTRA:-}
EOT
    "$BINARY" serve --config "$WORK/${NODES[i-1]}.toml" >>"${NODE_LOG[i]}" 2>&1 &
    NODE_PID[i]=$!
  done
  for i in 1 2 3; do
    rc=0
    wait_json "${NODE_URL[i]}/healthz" 15 's == 200 and j["registry"]["synced"] is True' "${NODE_PID[i]}" || rc=$?
    if [ "$rc" -ne 0 ]; then
      tail -n 30 "${NODE_LOG[i]}" >&2
      die "node ${NODES[i-1]} (${NODE_URL[i]}) not synced within 15 s (rc $rc)"
    fi
  done
  sleep 1.2   # one heartbeat period more so every node has seen every peer's heartbeat
  say "nodes up (forward_misroutes=$fwd adopt_orphans=$adopt): n1 ${NODE_URL[1]} (pid ${NODE_PID[1]}), n2 ${NODE_URL[2]} (pid ${NODE_PID[2]}), n3 ${NODE_URL[3]} (pid ${NODE_PID[3]})"
}

# cluster_stop_nodes_parallel — SIGTERM all three node PIDs at once, then wait for each (SIGKILL
# after 15 s); the drains overlap instead of taking ~3 x 2.5 s. Only those PIDs are touched.
cluster_stop_nodes_parallel() {
  local i pid
  for i in 1 2 3; do
    pid="${NODE_PID[i]:-}"
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  for i in 1 2 3; do
    pid="${NODE_PID[i]:-}"
    [ -n "$pid" ] || continue
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    NODE_PID[i]=""
  done
}

# cluster_wait_traefik_up [SECONDS] — until Traefik's API shows all 3 servers UP in both services.
cluster_wait_traefik_up() {
  local secs="${1:-20}" svc
  for svc in mcpd-sticky@file mcpd@file; do
    wait_json "http://127.0.0.1:$TRAEFIK_ADMIN_PORT/api/http/services/$svc" "$secs" \
      'len(j.get("serverStatus", {})) == 3 and all(v == "UP" for v in j["serverStatus"].values())' \
      "$TRAEFIK_PID" || { tail -n 30 "$WORK/traefik.log" >&2; die "Traefik service $svc: not all 3 servers UP within $secs s"; }
  done
}
