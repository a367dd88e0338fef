#!/usr/bin/env bash
# Official MCP clients keep one session each while the three nodes behind Traefik are restarted
# one at a time (a rolling deploy), with NO application-level retry: proves session adoption.
#
#   [ROUNDS=N] tests/cluster/rolling-restart-clients.sh target/debug/mcpd [adopt|no-adopt]
#
# ROUNDS (default 1): how many times the three nodes are restarted in turn (ROUNDS=10 is 30
# restarts under load, the run recorded for issue 20; the test command runs 2).
#
# `adopt` (default): the cluster as shipped; every client must keep working (0 failed calls).
# `no-adopt`: adopt_orphans = false (forwarding stays on, so cookieless clients work until their
# node goes), to record what the official clients do when their session's node goes away, as
# under ADR-0066: the script then checks that they fail and that none re-initializes (same
# session id to the end) — the behaviour the README documents, with the workaround an
# application needs.
#
# Cluster: private Redis, three nodes (forward_misroutes = true, adopt_orphans at its default
# true), real Traefik in front, 127.0.0.1 only. Clients, each initializing ONCE and then calling
# `echo` (every 10th call `node_info`) every ~20 ms until a stop file appears:
#   ts-1, ts-2    tests/cluster/ts-loop.mjs (TypeScript SDK; Node fetch keeps no cookies, so
#                 Traefik round-robins every request) on Traefik's http entry point
#   py-nocookie   tests/cluster/py_loop.py --no-cookies (Python SDK, every cookie refused)
#   py-tls        tests/cluster/py_loop.py over Traefik's https entry point, trusting the
#                 harness's self-signed certificate, keeping cookies: pinned by `_mcp_backend`
#   py-legacy, py-auto  the Python SDK's high-level `mcp.Client` in mode "legacy" and "auto" (which
#                       negotiates the stateless 2026-07-28: it never fails, adoption or not)
#   ts-modern     tests/cluster/ts-modern-loop.mjs (@modelcontextprotocol/client 2.4.0 in mode
#                 'auto': 2026-07-28, no cookies, a listen stream kept open); besides no failed
#                 call, at least one drain must end its listen stream with the completion result
#                 (a stream ended without it is reported: an open defect, see below)
#                 (a `server/discover` probe first) — it dies whole on one answer cut mid-body
# After $WARMUP_S s, ROUNDS times, for n1, n2, n3 in turn: SIGTERM, wait for the exit (drain), start it again
# with the same config and port, wait until it is synced and UP in Traefik, then $STEADY_S s of
# traffic. Each client prints "<name>: requests=N failures=M longest_gap_ms=G session_changed=..
# nodes=.."; the script tabulates them and checks: a summary from every client, 0 failures,
# session id unchanged, > $MIN_REQUESTS requests each, at least one `action=adopted` log line,
# every drain exited 0, all nodes alive at the end; and, from the nodes' drain log lines and
# metrics, that no answer was cut (`cut=0`, mcpd_http_truncated_responses_total 0) and every
# request in flight at a drain was answered by its own handler (no 503 at a drain deadline, no
# call left unanswered).
# Last line: "rolling-clients: N passed, M failed". MCPT_CLUSTER_KEEP=1 keeps logs/configs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=rolling-clients
# shellcheck source=SCRIPTDIR/harness.sh
. "$HERE/harness.sh"

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 PATH/TO/mcpd [adopt|no-adopt]"
MODE="${2:-adopt}"
case "$MODE" in adopt|no-adopt) ;; *) die "mode must be adopt or no-adopt, not $MODE" ;; esac
cluster_init "$1"
export MCPT_NODE_MODULES
WARMUP_S="${WARMUP_S:-3}"
STEADY_S="${STEADY_S:-3}"
ROUNDS="${ROUNDS:-1}"                   # each round restarts n1, n2, n3 in turn
CLIENT_MAX_S="${CLIENT_MAX_S:-$((30 + ROUNDS * 60))}"  # clients stop by themselves after this (safety net)
CLIENT_STOP_WAIT_S=20                   # after the stop file: one call may take up to ~11 s
MIN_REQUESTS=50
CLIENTS=(ts-1 ts-2 py-nocookie py-tls py-legacy py-auto ts-modern)
# The clients that negotiate the stateless protocol 2026-07-28 (no session, no affinity).
declare -A STATELESS=([py-auto]=1 [ts-modern]=1)
STOP="$WORK/stop"
T_START="$(date +%s)"

declare -A CLIENT_PID CLIENT_OUT
stop_clients() {
  local c
  for c in "${CLIENTS[@]}"; do
    [ -z "${CLIENT_PID[$c]:-}" ] || stop_pid "${CLIENT_PID[$c]}"
    CLIENT_PID[$c]=""
  done
}
# shellcheck disable=SC2317  # invoked via trap
rolling_cleanup() {
  local rc=$?
  set +e
  stop_clients
  (exit "$rc")
  cluster_cleanup
}
trap rolling_cleanup EXIT

ok_if() { if "$@"; then echo 0; else echo 1; fi; }

# Number of mcp:session:* keys in our Redis (RESP over a socket: redis-cli is not required).
redis_session_count() {
  python3 - "$REDIS_PORT" <<'PY' || echo "?"
import socket, sys
script = "return #redis.call('KEYS', ARGV[1])"
args = ["EVAL", script, "0", "mcp:session:*"]
cmd = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as c:
    c.sendall(cmd)
    reply = c.recv(64).decode()
if not reply.startswith(":"):
    sys.exit(f"unexpected reply {reply!r}")
print(int(reply[1:].split("\r\n")[0]))
PY
}

# start_client NAME CMD... : runs it in the background (bounded by timeout), output to a file.
start_client() {
  local name="$1"; shift
  CLIENT_OUT[$name]="$WORK/$name.out"
  timeout --kill-after=5 "$((CLIENT_MAX_S + 20))" "$@" >"${CLIENT_OUT[$name]}" 2>&1 &
  CLIENT_PID[$name]=$!
}

cluster_start_redis
if [ "$MODE" = adopt ]; then
  cluster_start_nodes true
else
  cluster_start_nodes_with true false no-adopt
fi
cluster_start_traefik
MCP_URL="$TRAEFIK_URL/mcp"
MCP_TLS_URL="https://127.0.0.1:$TRAEFIK_TLS_PORT/mcp"
CAFILE="$WORK/traefik/certs/cert.pem"

start_client ts-1 "$MCPT_NODE22" "$HERE/ts-loop.mjs" "$MCP_URL" ts-1 "$STOP" "$CLIENT_MAX_S"
start_client ts-2 "$MCPT_NODE22" "$HERE/ts-loop.mjs" "$MCP_URL" ts-2 "$STOP" "$CLIENT_MAX_S"
start_client py-nocookie "$MCPT_VENV_PY" "$HERE/py_loop.py" "$MCP_URL" py-nocookie "$STOP" \
  --max-seconds "$CLIENT_MAX_S" --no-cookies
start_client py-tls "$MCPT_VENV_PY" "$HERE/py_loop.py" "$MCP_TLS_URL" py-tls "$STOP" \
  --max-seconds "$CLIENT_MAX_S" --cafile "$CAFILE"
start_client py-legacy "$MCPT_VENV_PY" "$HERE/py_loop.py" "$MCP_URL" py-legacy "$STOP" \
  --max-seconds "$CLIENT_MAX_S" --client-mode legacy
start_client ts-modern "$MCPT_NODE22" "$HERE/ts-modern-loop.mjs" "$MCP_URL" ts-modern "$STOP" "$CLIENT_MAX_S"
start_client py-auto "$MCPT_VENV_PY" "$HERE/py_loop.py" "$MCP_URL" py-auto "$STOP" \
  --max-seconds "$CLIENT_MAX_S" --client-mode auto

# Every client has a session (or has given up) before the clock starts.
for _ in $(seq 200); do
  pending=0
  for c in "${CLIENTS[@]}"; do
    if ! grep -qE "^(session |stateless |$c: requests=)" "${CLIENT_OUT[$c]}" 2>/dev/null && kill -0 "${CLIENT_PID[$c]}" 2>/dev/null; then
      pending=1
    fi
  done
  [ "$pending" -eq 1 ] || break
  sleep 0.1
done
for c in "${CLIENTS[@]}"; do
  sid="$(sed -n 's/^session //p' "${CLIENT_OUT[$c]}" | head -n1)"
  if grep -q '^stateless 2026-07-28' "${CLIENT_OUT[$c]}"; then
    sid="none: it speaks the stateless protocol 2026-07-28"
  fi
  say "client $c (pid ${CLIENT_PID[$c]}): session ${sid:-NONE}"
done
SESSIONS_BEFORE="$(redis_session_count)"
say "redis mcp:session:* keys with the clients running: $SESSIONS_BEFORE"

say "warm-up ${WARMUP_S} s"
sleep "$WARMUP_S"
declare -a DOWN_LINE EXIT_STATUS
RESTARTS=0 TRUNCATED=0
for round in $(seq "$ROUNDS"); do
  for i in 1 2 3; do
    RESTARTS=$((RESTARTS + 1))
    say "== rolling restart $RESTARTS (round $round): ${NODES[i-1]} (pid ${NODE_PID[i]}) =="
    # What this process counted before its drain (its drain's own count is in its log line).
    TRUNCATED=$((TRUNCATED + $(node_truncated "$i")))
    cluster_restart_node "$i"
    EXIT_STATUS[RESTARTS]=$RESTART_EXIT_STATUS
    DOWN_LINE[RESTARTS]="${NODES[i-1]}: exited after ${RESTART_EXITED_MS} ms (status $RESTART_EXIT_STATUS), serving again after ${RESTART_SYNCED_MS} ms, UP in Traefik after ${RESTART_UP_MS} ms"
    sleep "$STEADY_S"
  done
done

for i in 1 2 3; do TRUNCATED=$((TRUNCATED + $(node_truncated "$i"))); done
SESSIONS_END="$(redis_session_count)"
say "redis mcp:session:* keys after the rolling restart (clients still running): $SESSIONS_END"
say "stopping the clients (stop file)"
touch "$STOP"
for _ in $(seq $((CLIENT_STOP_WAIT_S * 10))); do
  running=0
  for c in "${CLIENTS[@]}"; do kill -0 "${CLIENT_PID[$c]}" 2>/dev/null && running=1; done
  [ "$running" -eq 1 ] || break
  sleep 0.1
done
for c in "${CLIENTS[@]}"; do
  if kill -0 "${CLIENT_PID[$c]}" 2>/dev/null; then say "client $c still running ${CLIENT_STOP_WAIT_S} s after the stop file: stopping it"; fi
done
stop_clients
SESSIONS_AFTER="$(redis_session_count)"

# ---------------------------------------------------------------- results
declare -A REQ FAILS GAP CHANGED SEEN LISTEN
for c in "${CLIENTS[@]}"; do
  line="$(grep -E "^$c: requests=[0-9]+ failures=[0-9]+ longest_gap_ms=[0-9]+ session_changed=(yes|no) nodes=" "${CLIENT_OUT[$c]}" | tail -n1 || true)"
  if [ -n "$line" ]; then
    read -r r f g ch seen < <(sed -E \
      's/^[^:]+: requests=([0-9]+) failures=([0-9]+) longest_gap_ms=([0-9]+) session_changed=(yes|no) nodes=(.*)$/\1 \2 \3 \4 \5/' <<<"$line")
    LISTEN[$c]="$(sed -nE 's/.* listen_completed=([0-9]+) listen_lost=([0-9]+) listen_refused=([0-9]+)$/\1 \2 \3/p' <<<"$line")"
    seen="${seen%% listen_*}"
    REQ[$c]=$r FAILS[$c]=$f GAP[$c]=$g CHANGED[$c]=$ch SEEN[$c]="${seen:--}"
    check "summary-$c" 0 ""
  else
    REQ[$c]=0 FAILS[$c]="?" GAP[$c]="?" CHANGED[$c]="?" SEEN[$c]="?"
    check "summary-$c" 1 "no summary line (crashed or killed); last lines: $(tail -n 3 "${CLIENT_OUT[$c]}" | tr '\n' ' ' | cut -c1-300)"
  fi
  if grep -q '^FAIL' "${CLIENT_OUT[$c]}"; then
    grep '^FAIL' "${CLIENT_OUT[$c]}" | head -n 6 | cut -c1-230 | sed "s/^/    [$c] /"
  fi
  grep -E '^INFO (http|_mcp_backend|GET requests|session id changed|teardown)' "${CLIENT_OUT[$c]}" | cut -c1-230 | sed "s/^/    [$c] /" || true
done

ADOPTED=0 logs=""
for i in 1 2 3; do
  a="$(grep -c 'action="\{0,1\}adopted' "${NODE_LOG[i]}" || true)"
  f="$(grep -c 'action="\{0,1\}forwarded' "${NODE_LOG[i]}" || true)"
  # 404s a node decided: a registry miss (action=404), or a forward or adoption that failed
  # ("... answering 404").
  n404="$(grep -c -e 'action="\{0,1\}404' -e 'answering 404' "${NODE_LOG[i]}" || true)"
  ADOPTED=$((ADOPTED + a))
  logs+="${NODES[i-1]}: $a adopted/$f forwarded/$n404 404  "
done

read -r DRAINS D_CONN D_REQ D_503 D_CUT C_RUN C_STOP C_UNANS < <(drain_totals "${NODE_LOG[1]}" "${NODE_LOG[2]}" "${NODE_LOG[3]}")

echo
for r in $(seq "$RESTARTS"); do say "downtime #$r ${DOWN_LINE[r]}"; done
say "drains: $DRAINS logged; at the stops $D_CONN connections open with $D_REQ requests in flight (SSE streams included); $D_503 answered 503 at a deadline, $D_CUT connections cut; in sessions: $C_RUN calls running, $C_STOP stopped, $C_UNANS unanswered"
say "truncated answers counted by the nodes (mcpd_http_truncated_responses_total before each drain and at the end): $TRUNCATED"
say "node log lines: $logs"
say "redis mcp:session:* keys: $SESSIONS_BEFORE at start, $SESSIONS_END after the rolling restart, $SESSIONS_AFTER after the clients ended (they DELETE)"
echo
printf '%-12s | %8s | %8s | %14s | %15s | %s\n' client requests failures "longest gap ms" "session changed" "nodes seen"
printf '%-12s-+-%8s-+-%8s-+-%14s-+-%15s-+-%s\n' ------------ -------- -------- -------------- --------------- ----------
for c in "${CLIENTS[@]}"; do
  printf '%-12s | %8s | %8s | %14s | %15s | %s\n' "$c" "${REQ[$c]}" "${FAILS[$c]}" "${GAP[$c]}" "${CHANGED[$c]}" "${SEEN[$c]}"
done
echo

for c in "${CLIENTS[@]}"; do
  if [ "${STATELESS[$c]:-0}" = 1 ]; then
    # A 2026-07-28 client has no session to lose: any node serves its next request, with
    # adoption or without.
    check "stateless-$c" "$(ok_if grep -q '^stateless 2026-07-28' "${CLIENT_OUT[$c]}")" "did not negotiate 2026-07-28"
    check "no-failures-$c" "$(ok_if [ "${FAILS[$c]}" = 0 ])" "${FAILS[$c]} failed call(s)"
    if [ -n "${LISTEN[$c]:-}" ]; then
      # Its listen stream was on a node that drained at least once (every node restarts): each
      # drain ends it with the listen request's completion result, never without.
      read -r l_done l_lost l_refused <<<"${LISTEN[$c]}"
      say "$c listen streams: $l_done completed by drains, $l_lost ended without a result, $l_refused reopen attempts refused"
      check "listen-completed-$c" "$(ok_if [ "$l_done" -gt 0 ])" "no listen stream was completed by a drain"
      # Not a check yet: one run in CI (6 restarts) saw 1 of 6 streams end without the result,
      # cause not found (the client's reason is in its output above). Reported, to be fixed.
      if [ "$l_lost" -ne 0 ]; then
        say "NOTE: $c: $l_lost listen stream(s) ended without a completion result (known open defect, not counted)"
        grep -E "^INFO listen" "${CLIENT_OUT[$c]}" | head -n 5 | sed "s/^/    [$c] /"
      fi
    fi
  elif [ "$MODE" = adopt ]; then
    check "no-failures-$c" "$(ok_if [ "${FAILS[$c]}" = 0 ])" "${FAILS[$c]} failed call(s)"
  else
    check "fails-without-adoption-$c" "$(ok_if [ "${FAILS[$c]}" != 0 ])" "no failed call: its node going away was not exercised"
  fi
  # In both modes: the official clients never re-initialize (adopt: they need not; no-adopt:
  # they do not, and stay broken).
  check "same-session-$c" "$(ok_if [ "${CHANGED[$c]}" = no ])" "session_changed=${CHANGED[$c]}"
  check "requests-$c" "$(ok_if [ "${REQ[$c]}" -gt "$MIN_REQUESTS" ])" "only ${REQ[$c]} requests (want > $MIN_REQUESTS)"
done
if [ "$MODE" = adopt ]; then
  check "adoption-exercised" "$(ok_if [ "$ADOPTED" -gt 0 ])" "no action=adopted line in any node log"
else
  check "no-adoption-when-off" "$(ok_if [ "$ADOPTED" -eq 0 ])" "$ADOPTED action=adopted line(s) with adopt_orphans = false"
fi
for r in $(seq "$RESTARTS"); do
  check "drain-exit-$r" "$(ok_if [ "${EXIT_STATUS[r]}" -eq 0 ])" "restart $r: exit status ${EXIT_STATUS[r]} after SIGTERM"
done
check "nodes-alive" "$(ok_if nodes_alive)" "a node died"
check "every-drain-logged" "$(ok_if [ "$DRAINS" -eq "$RESTARTS" ])" "$DRAINS 'connections drained' lines for $RESTARTS restarts"
check "no-answer-cut" "$(ok_if [ "$((D_CUT + TRUNCATED))" -eq 0 ])" "$D_CUT cut by drains, $TRUNCATED counted truncated"
check "every-call-answered" "$(ok_if [ "$((C_UNANS + D_503))" -eq 0 ])" "$C_UNANS calls unanswered, $D_503 requests answered 503 at a drain deadline"

say "mode $MODE; took $(( $(date +%s) - T_START )) s"
[ "$failed" -eq 0 ] || say "failed: ${failed_names[*]}"
echo "rolling-clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
