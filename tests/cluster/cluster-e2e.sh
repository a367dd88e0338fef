#!/usr/bin/env bash
# A three-node mcpd cluster proven end to end (issue 7): private Redis, three nodes, real Traefik
# 3.7.15 in front (traefik/*.yml, loopback copy), raw-HTTP Python clients (stdlib only:
# tests/cluster/e2e_*.py). Everything runs on 127.0.0.1; every process is stopped by PID.
#
#   tests/cluster/cluster-e2e.sh target/debug/mcpd
#
# Parts (each prints what it measured):
#   1 pinning      forward on, adoption default. A cookie-jar client over Traefik's TLS entry
#                  point: 200 tools/call node_info all on one node, 0 forwarded (sum of
#                  mcpd_forwarded_requests_total over the nodes); 30 GET /healthz through the
#                  default router rotate over n1..n3 with no Set-Cookie.
#   2 misroute     a valid session sent with another node's _mcp_backend cookie: forward on ->
#                  served by the owner + WARN class=misroute action=forwarded on the receiver;
#                  nodes restarted with forward off / adoption off -> 404 (-32001) + action=404.
#   3 node loss, ADR mode (forward off, adoption off): SIGKILL the pinned node; the next answer
#                  (after Traefik moves the client) is 404, the client re-initializes elsewhere;
#                  the dead keys are stale (`mcpd sessions`, WARN class); restarting the node
#                  purges them from Redis.
#   5a rolling deploy, ADR mode: $ROLL_CLIENTS raw clients (POST loop + GET SSE stream each,
#                  re-initializing on 404), n1..n3 restarted one at a time.
#   4 node loss, defaults (forward on, adoption on): SIGKILL the pinned node; the same session
#                  continues elsewhere (action=adopted); time from SIGKILL to the first success.
#   5b rolling deploy, defaults: as 5a; must show 0 failed calls and 0 re-initializations.
# (4 and 5b run after 5a so the nodes restart between modes only twice.)
# Last line: "cluster-e2e: N passed, M failed"; exit status 1 on any failed check.
# Env: ROLL_CLIENTS (20), WARMUP_S (2), STEADY_S (2), MCPT_CLUSTER_KEEP=1 keeps $WORK (logs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=cluster-e2e
# shellcheck source=SCRIPTDIR/harness.sh
. "$HERE/harness.sh"

[ $# -eq 1 ] || die "usage: $0 PATH/TO/mcpd"
T_START="$(date +%s)"
ROLL_CLIENTS="${ROLL_CLIENTS:-20}"
WARMUP_S="${WARMUP_S:-2}"
STEADY_S="${STEADY_S:-2}"
PY_TIMEOUT=60          # any single Python client run
ROLL_MAX_S=100         # the rolling clients stop by themselves after this (safety net)
cluster_init "$1"

ROLL_PID=""
# shellcheck disable=SC2317  # invoked via trap
e2e_cleanup() {
  local rc=$?
  set +e
  [ -z "$ROLL_PID" ] || stop_pid "$ROLL_PID"
  (exit "$rc")
  cluster_cleanup
}
trap e2e_cleanup EXIT


# py OUTFILE SCRIPT ARGS... : a bounded Python run; its output is kept in OUTFILE and shown indented.
py() {
  local out="$1" rc=0; shift
  timeout --kill-after=5 "$PY_TIMEOUT" python3 "$HERE/$1" "${@:2}" >"$out" 2>&1 || rc=$?
  grep -v '^RESULT ' "$out" | sed 's/^/    /' || true
  [ "$rc" -eq 0 ] || say "python $1 exited with status $rc"
  return 0
}
# rget FILE KEY : a value from the RESULT line ("-" when absent).
rget() {
  local v
  v="$(sed -n 's/^RESULT .*\b'"$2"'=\([^ ]*\).*$/\1/p' "$1" | tail -n1)"
  echo "${v:--}"
}
num() { [[ "$1" =~ ^-?[0-9]+$ ]] && echo "$1" || echo -1; }   # for arithmetic on RESULT values
idx() { echo "${1#n}"; }                                       # n2 -> 2

fwd_total() { local i s=0; for i in 1 2 3; do s=$((s + $(node_forwarded "$i"))); done; echo "$s"; }
# miss_lines LOGFILE SESSION_ID : the WARN "does not hold" lines for that session (or nothing).
miss_lines() { grep -F "$2" "$1" 2>/dev/null | grep ' WARN ' | grep 'does not hold' || true; }
field() { sed -nE 's/.*[ ]'"$1"'="?([^" ]*)"?.*/\1/p' <<<"$2"; }   # field NAME LINE (quoted or not)
# wait_miss_line LOGFILE SESSION_ID [ACTION] : the first such line (with action=ACTION if given),
# polled for up to 2 s (the line is written while the request is handled).
wait_miss_line() {
  local l="" re="."
  [ $# -lt 3 ] || re=" action=\"?$3\"?( |$)"
  for _ in $(seq 20); do l="$(miss_lines "$1" "$2" | grep -E -m1 "$re" || true)"; [ -z "$l" ] || break; sleep 0.1; done
  echo "$l"
}
# wait_pinnable NODE : after a SIGKILLed node is back and UP in Traefik's API, wait until fresh
# (cookie-less) sessions through both entry points land on it again. Traefik's passive health check
# can keep skipping it for up to failureWindow (10 s) while the API already says UP; a rolling run
# started meanwhile would pin nobody to it, and its restart would prove nothing.
wait_pinnable() {
  local out
  out="$WORK/pinnable-$1.$(date +%s%N).out"
  py "$out" e2e_parts.py pinnable --urls "$TRAEFIK_URL,$TLS_URL" --cafile "$CA" --node "$1" --timeout 20
  check "new-sessions-reach-$1-again" "$([ "$(rget "$out" ok)" = 1 ]; echo $?)" \
    "20 s after its restart Traefik still sends no new session to $1"
}
nodes_spec() { echo "n1=${NODE_URL[1]},n2=${NODE_URL[2]},n3=${NODE_URL[3]}"; }
pids_spec() { echo "n1=${NODE_PID[1]},n2=${NODE_PID[2]},n3=${NODE_PID[3]}"; }

cluster_start_redis
cluster_start_nodes true
cluster_start_traefik
TLS_URL="https://127.0.0.1:$TRAEFIK_TLS_PORT"
CA="$WORK/traefik/certs/cert.pem"

# ================================================================ 1. pinning
echo
say "== 1. pinning (forward_misroutes=true, adoption default; cookie jar over $TLS_URL) =="
f0="$(fwd_total)"
py "$WORK/p1.out" e2e_parts.py pinning --url "$TLS_URL" --cafile "$CA" --nodes "$(nodes_spec)" --calls 200 --gets 30
f1="$(fwd_total)"
P1=$WORK/p1.out
fwd1=$((f1 - f0))
say "pinning: $(rget "$P1" ok)/$(rget "$P1" calls) on $(rget "$P1" top), forwarded $fwd1; default router: $(rget "$P1" hz | tr ',' ' '), cookies $(rget "$P1" hz_cookies)"
check pinning-one-node "$([ "$(rget "$P1" ok)" = 200 ] && [ "$(rget "$P1" distinct)" = 1 ] && [ "$(rget "$P1" top_n)" = 200 ]; echo $?)" \
  "$(rget "$P1" ok)/200 answered, on $(rget "$P1" distinct) node(s)"
check pinning-cookie-is-node "$([ "$(rget "$P1" jar_node)" = "$(rget "$P1" top)" ]; echo $?)" \
  "jar cookie names $(rget "$P1" jar_node), calls served by $(rget "$P1" top)"
check pinning-not-forwarded "$([ "$fwd1" -eq 0 ]; echo $?)" "$fwd1 request(s) forwarded"
check default-router-rotates "$([ "$(rget "$P1" hz_nodes)" = 3 ] && [ "$(rget "$P1" hz_rotating)" = 1 ] && [ "$(rget "$P1" hz_bad)" = 0 ]; echo $?)" \
  "/healthz answers: $(rget "$P1" hz), rotating=$(rget "$P1" hz_rotating), bad=$(rget "$P1" hz_bad)"
check default-router-no-cookie "$([ "$(rget "$P1" hz_cookies)" = 0 ]; echo $?)" "$(rget "$P1" hz_cookies) Set-Cookie header(s)"

# ================================================================ 2. misroute
misroute_part() { # misroute_part forwarded|404
  local expect="$1" out="$WORK/p2-$1.out" x y line cls owner act
  py "$out" e2e_parts.py misroute --url "$TLS_URL" --cafile "$CA" --nodes "$(nodes_spec)" --expect "$expect"
  x="$(rget "$out" x)" y="$(rget "$out" y)"
  line="$(wait_miss_line "${NODE_LOG[$(idx "$y")]}" "$(rget "$out" sid)" "$expect")"
  cls="$(field class "$line")" owner="$(field owner_node "$line")" act="$(field action "$line")"
  echo "    $y log: ${line:-<no WARN line for the session>}"
  check "cookie-map-$expect" "$([ "$(rget "$out" cookie_ok)" = 1 ]; echo $?)" "a computed cookie did not pin to its node"
  check "misroute-reached-$y-$expect" "$([ "$(rget "$out" repinned)" = 0 ]; echo $?)" "Traefik re-pinned instead of honouring $y's cookie"
  if [ "$expect" = forwarded ]; then
    say "misroute (forward on): session on $x, sent with $y's cookie -> HTTP $(rget "$out" status), node_info=$(rget "$out" node); $y logged class=${cls:-?} owner_node=${owner:-?} action=${act:-?}"
    check misroute-forwarded-served "$([ "$(rget "$out" status)" = 200 ] && [ "$(rget "$out" node)" = "$x" ]; echo $?)" \
      "HTTP $(rget "$out" status), node_info node=$(rget "$out" node) (owner $x)"
  else
    say "misroute (forward off, adoption off): session on $x, sent with $y's cookie -> HTTP $(rget "$out" status) code $(rget "$out" code); $y logged class=${cls:-?} owner_node=${owner:-?} action=${act:-?}"
    check misroute-strict-404 "$([ "$(rget "$out" status)" = 404 ] && [ "$(rget "$out" code)" = -32001 ]; echo $?)" \
      "HTTP $(rget "$out" status) code $(rget "$out" code), want 404 / -32001"
  fi
  check "misroute-logged-$expect" "$([ "$cls" = misroute ] && [ "$owner" = "$x" ] && [ "$act" = "$expect" ]; echo $?)" \
    "want class=misroute owner_node=$x action=$expect on $y, got: ${line:-nothing}"
}
echo
say "== 2. misroute =="
misroute_part forwarded

say "restarting the nodes: forward_misroutes=false adopt_orphans=false (ADR-0066 strict)"
cluster_stop_nodes_parallel
cluster_start_nodes_with false false
cluster_wait_traefik_up 20
misroute_part 404

# ================================================================ 3. node loss, ADR mode
echo
say "== 3. node loss, ADR mode (forward off, adoption off) =="
P3=$WORK/p3.out
py "$P3" e2e_parts.py nodeloss --url "$TLS_URL" --cafile "$CA" --nodes "$(nodes_spec)" --pids "$(pids_spec)" --mode adr --extra 2
p="$(rget "$P3" p)" dead="$(rget "$P3" dead)" by="$(rget "$P3" answered_by)"
[ "$p" != - ] || die "part 3: the node-loss client did not get going (see above)"
pi="$(idx "$p")"
sid3="${dead%%,*}"
say "node loss (ADR): $p SIGKILLed; first answer after $(rget "$P3" gateway_errors) gateway error(s): HTTP $(rget "$P3" first_status) code $(rget "$P3" first_code) from $by at +$(rget "$P3" first_ms) ms; re-initialized on $(rget "$P3" new_node)"
check adr-nodeloss-404 "$([ "$(rget "$P3" first_status)" = 404 ] && [ "$(rget "$P3" first_code)" = -32001 ]; echo $?)" \
  "first answer HTTP $(rget "$P3" first_status) code $(rget "$P3" first_code), want 404 / -32001"
check adr-nodeloss-reinit "$([ "$(rget "$P3" new_node)" != - ] && [ "$(rget "$P3" new_node)" != "$p" ] && [ "$(rget "$P3" more_ok)" = 5 ]; echo $?)" \
  "new session on $(rget "$P3" new_node), $(rget "$P3" more_ok)/5 further calls there"
# The dead node's keys: still in Redis, owner no longer alive.
py "$WORK/p3-keys-before.out" e2e_parts.py redis-keys --port "$REDIS_PORT" --ids "$dead"
check adr-dead-keys-present "$([ "$(rget "$WORK/p3-keys-before.out" present)" = 3 ]; echo $?)" \
  "$(rget "$WORK/p3-keys-before.out" present)/3 of $p's sessions in Redis after the SIGKILL (the purge check needs them)"
sess_owner=""
for _ in $(seq 60); do   # the heartbeat key lives 3 x heartbeat_interval (3 s)
  sess_owner="$("$BINARY" sessions --config "$WORK/${NODES[0]}.toml" show "$sid3" 2>&1 | sed -n 's/^node *//p')"
  case "$sess_owner" in *"(alive)"*|"") sleep 0.1 ;; *) break ;; esac
done
echo "    mcpd sessions show $sid3: node $sess_owner"
"$BINARY" sessions --config "$WORK/${NODES[0]}.toml" 2>&1 | grep -E "^SESSION|${p}" | sed 's/^/    mcpd sessions: /' || true
check adr-sessions-cli-stale "$([ -n "$sess_owner" ] && [[ "$sess_owner" != *"(alive)"* ]]; echo $?)" \
  "mcpd sessions show still says node '$sess_owner' 6 s after the SIGKILL"
line=""
[ "$by" = - ] || [ "$by" = "?" ] || line="$(wait_miss_line "${NODE_LOG[$(idx "$by")]}" "$sid3" 404)"
echo "    $by log: ${line:-<no WARN line for the session>}"
say "the first 404 for $p's session (+$(rget "$P3" first_ms) ms after the SIGKILL) was logged by $by as class=$(field class "$line") owner_node=$(field owner_node "$line") action=$(field action "$line")"
check adr-404-logged "$([ "$(field owner_node "$line")" = "$p" ] && [ "$(field action "$line")" = 404 ]; echo $?)" \
  "want owner_node=$p action=404 on $by, got: ${line:-nothing}"
if [ "$(field class "$line")" != stale ]; then
  say "NOTE: class=$(field class "$line"), not stale: with forwarding off the node does not probe the owner, and $p's heartbeat key (3 x heartbeat_interval) had not expired yet"
fi
# Once the heartbeat is gone (mcpd sessions said so above), the same dead id is classified stale.
py "$WORK/p3-probe.out" e2e_parts.py probe --url "$TLS_URL" --cafile "$CA" --nodes "$(nodes_spec)" --sid "$sid3" --node "$by"
line2="$(miss_lines "${NODE_LOG[$(idx "$by")]}" "$sid3" | grep -E -m1 'class="?stale' || true)"
echo "    $by log: ${line2:-<no class=stale WARN line for the session>}"
check adr-dead-session-stale "$([ "$(rget "$WORK/p3-probe.out" status)" = 404 ] && [ "$(field class "$line2")" = stale ] && [ "$(field owner_node "$line2")" = "$p" ] && [ "$(field action "$line2")" = 404 ]; echo $?)" \
  "after the heartbeat expired: HTTP $(rget "$WORK/p3-probe.out" status), want 404 and class=stale owner_node=$p action=404 on $by, got: ${line2:-nothing}"
# Start the dead node again (same config, same port): with adoption off its resync purges.
cluster_restart_node "$pi"
wait_pinnable "$p"
grep -E 'registry resynced' "${NODE_LOG[pi]}" | tail -n1 | sed "s/^/    $p log: /" || true
py "$WORK/p3-keys-after.out" e2e_parts.py redis-keys --port "$REDIS_PORT" --ids "$dead"
say "restarted $p: $(rget "$WORK/p3-keys-after.out" present) of its 3 dead sessions' keys left in Redis"
check adr-dead-keys-purged "$([ "$(rget "$WORK/p3-keys-after.out" present)" = 0 ]; echo $?)" \
  "$(rget "$WORK/p3-keys-after.out" present) key(s) of $p's dead sessions still in Redis after its restart"

# ================================================================ 5. rolling deploy (runner)
# run_rolling LABEL : raw clients through the http entry point while n1, n2, n3 restart in turn.
run_rolling() {
  local label="$1" out="$WORK/roll-$1.out" stop="$WORK/roll-$1.stop" marks="$WORK/roll-$1.marks"
  local ready="$WORK/roll-$1.ready" i rc=0 before=() a f n4 logs=""
  rm -f "$stop" "$ready"; : >"$marks"
  for i in 1 2 3; do before[i]="$(wc -l <"${NODE_LOG[i]}")"; done
  timeout --kill-after=5 "$((ROLL_MAX_S + 30))" python3 "$HERE/e2e_rolling.py" --url "$TRAEFIK_URL" \
    --clients "$ROLL_CLIENTS" --label "$label" --stopfile "$stop" --marks "$marks" --ready "$ready" \
    --redis-port "$REDIS_PORT" --max-seconds "$ROLL_MAX_S" --dump "$WORK/roll-$label.json" >"$out" 2>&1 &
  ROLL_PID=$!
  for _ in $(seq 200); do
    if [ -f "$ready" ] || ! kill -0 "$ROLL_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  [ -f "$ready" ] || { cat "$out" >&2; die "rolling clients ($label) not ready within 20 s"; }
  head -n1 "$out" | sed 's/^/    /'
  local dist="" empty=0 c
  for i in 1 2 3; do
    c="$(curl -s --max-time 2 "${NODE_URL[i]}/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"])' 2>/dev/null || echo "?")"
    dist+="${NODES[i-1]}=$c "
    [ "$c" != 0 ] && [ "$c" != "?" ] || empty=1
  done
  echo "    sessions per node with the clients connected: $dist"
  check "roll-$label-sessions-on-every-node" "$empty" "sessions per node: $dist(a node without sessions makes its restart prove nothing)"
  sleep "$WARMUP_S"
  for i in 1 2 3; do
    echo "restart ${NODES[i-1]} $(date +%s%3N)" >>"$marks"
    cluster_restart_node "$i"
    check "roll-$label-drain-exit-${NODES[i-1]}" "$([ "$RESTART_EXIT_STATUS" -eq 0 ]; echo $?)" "exit status $RESTART_EXIT_STATUS after SIGTERM"
    sleep "$STEADY_S"
  done
  touch "$stop"
  for _ in $(seq 300); do kill -0 "$ROLL_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$ROLL_PID" 2>/dev/null && say "rolling clients ($label) still running 30 s after the stop file: stopping them"
  stop_pid "$ROLL_PID"
  wait "$ROLL_PID" 2>/dev/null || rc=$?
  ROLL_PID=""
  tail -n +2 "$out" | grep -v '^RESULT ' | sed 's/^/    /'
  for i in 1 2 3; do
    a="$(tail -n +"$((before[i] + 1))" "${NODE_LOG[i]}" | grep -c 'action="\{0,1\}adopted' || true)"
    f="$(tail -n +"$((before[i] + 1))" "${NODE_LOG[i]}" | grep -c 'action="\{0,1\}forwarded' || true)"
    n4="$(tail -n +"$((before[i] + 1))" "${NODE_LOG[i]}" | grep -c 'action="\{0,1\}404' || true)"
    logs+="${NODES[i-1]}: $a adopted/$f forwarded/$n4 404  "
  done
  echo "    node log WARN lines during the run (once per session id and class): $logs"
  ROLL_OUT="$out"
  if [ "$(rget "$out" failed)" = 0 ]; then ROLL_BACK="no client ever failed a call"
  else ROLL_BACK="every client serving again within $(rget "$out" max_recovery_ms) ms of each SIGTERM"; fi
  grep -q '^RESULT ' "$out" || { check "roll-$label-summary" 1 "no RESULT line (client rc $rc): $(tail -n 5 "$out" | tr '\n' ' ')"; return 0; }
  check "roll-$label-summary" 0 ""
  check "roll-$label-all-restarted" "$([ "$(rget "$out" restarts)" = 3 ]; echo $?)" "$(rget "$out" restarts) restarts seen by the clients"
  check "roll-$label-no-unexpected-failures" "$([ "$(rget "$out" fails_outside)" = 0 ]; echo $?)" \
    "$(rget "$out" fails_outside) failed call(s) before the first restart"
  check "roll-$label-every-client-back" "$([ "$(rget "$out" never)" = 0 ] && [ "$(rget "$out" not_serving_at_end)" = 0 ]; echo $?)" \
    "$(rget "$out" never) client/restart pair(s) never served again, $(rget "$out" not_serving_at_end) client(s) without a success after the last restart"
}

# ================================================================ 5a. rolling deploy, ADR mode
echo
say "== 5a. rolling deploy, ADR mode (forward off, adoption off): $ROLL_CLIENTS raw clients, http entry point, _mcp_backend cookie sent back by hand =="
run_rolling a
RA="$ROLL_OUT"
say "rolling (ADR): calls $(rget "$RA" calls), failed $(rget "$RA" failed), re-inits $(rget "$RA" reinits) (peak $(rget "$RA" peak_reinit)/s), $ROLL_BACK, redis keys left for dead sessions $(rget "$RA" keys_left)"
check roll-a-reinit-exercised "$([ "$(num "$(rget "$RA" reinits)")" -gt 0 ]; echo $?)" "no re-initialization: ADR-mode session loss was not exercised"
check roll-a-keys-left "$([ "$(rget "$RA" keys_left)" = 0 ] && [ "$(rget "$RA" keys_other)" = 0 ]; echo $?)" \
  "$(rget "$RA" keys_left) key(s) of this run's sessions (abandoned $(rget "$RA" keys_left_abandoned), final $(rget "$RA" keys_left_final)) and $(rget "$RA" keys_other) other new key(s) left"

# ================================================================ 4. node loss, defaults
echo
say "restarting the nodes: forward_misroutes=true, adopt_orphans default (true)"
cluster_stop_nodes_parallel
cluster_start_nodes_with true default defaults
cluster_wait_traefik_up 20
say "== 4. node loss with adoption on (default) and forwarding on =="
P4=$WORK/p4.out
py "$P4" e2e_parts.py nodeloss --url "$TLS_URL" --cafile "$CA" --nodes "$(nodes_spec)" --pids "$(pids_spec)" --mode adopt
p="$(rget "$P4" p)" nn="$(rget "$P4" new_node)"
[ "$p" != - ] || die "part 4: the node-loss client did not get going (see above)"
line=""
if [ "$nn" != - ]; then
  line="$(wait_miss_line "${NODE_LOG[$(idx "$nn")]}" "$(rget "$P4" sid)" adopted)"
  miss_lines "${NODE_LOG[$(idx "$nn")]}" "$(rget "$P4" sid)" | sed "s/^/    $nn log: /"
fi
say "node loss (adoption): $p SIGKILLed; same session served by $nn $(rget "$P4" first_ms) ms after the SIGKILL (HTTP $(rget "$P4" first_status), after $(rget "$P4" gateway_errors) gateway error(s) from Traefik); $nn logged class=$(field class "$line") action=$(field action "$line")"
check adopt-nodeloss-same-session "$([ "$(rget "$P4" first_status)" = 200 ] && [ "$(rget "$P4" same_sid)" = 1 ] && [ "$nn" != "$p" ] && [ "$(rget "$P4" more_ok)" = 5 ]; echo $?)" \
  "HTTP $(rget "$P4" first_status), same session=$(rget "$P4" same_sid), node $nn (killed $p), $(rget "$P4" more_ok)/5 further calls there"
check adopt-nodeloss-logged "$([ "$(field class "$line")" = stale ] && [ "$(field owner_node "$line")" = "$p" ]; echo $?)" \
  "want class=stale action=adopted owner_node=$p on $nn, got: ${line:-nothing}"
cluster_restart_node "$(idx "$p")"
wait_pinnable "$p"

# ================================================================ 5b. rolling deploy, defaults
echo
say "== 5b. rolling deploy, defaults (forward on, adoption on): same clients =="
run_rolling b
RB="$ROLL_OUT"
say "rolling (defaults): calls $(rget "$RB" calls), failed $(rget "$RB" failed), re-inits $(rget "$RB" reinits) (peak $(rget "$RB" peak_reinit)/s), $ROLL_BACK, redis keys left for dead sessions $(rget "$RB" keys_left)"
check roll-b-no-failed-calls "$([ "$(rget "$RB" failed)" = 0 ]; echo $?)" "$(rget "$RB" failed) failed call(s)"
check roll-b-no-reinit "$([ "$(rget "$RB" reinits)" = 0 ]; echo $?)" "$(rget "$RB" reinits) re-initialization(s)"
check roll-b-keys-left "$([ "$(rget "$RB" keys_left)" = 0 ] && [ "$(rget "$RB" keys_other)" = 0 ]; echo $?)" \
  "$(rget "$RB" keys_left) key(s) of this run's sessions (abandoned $(rget "$RB" keys_left_abandoned), final $(rget "$RB" keys_left_final)) and $(rget "$RB" keys_other) other new key(s) left"

check nodes-alive "$(nodes_alive; echo $?)" "a node died"
took=$(( $(date +%s) - T_START ))
echo
say "took $took s"
check bounded-3-minutes "$([ "$took" -lt 180 ]; echo $?)" "took $took s"
[ "$failed" -eq 0 ] || say "failed: ${failed_names[*]}"
echo "cluster-e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
