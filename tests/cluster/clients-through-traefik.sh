#!/usr/bin/env bash
# Official MCP clients that keep no cookies, through Traefik's sticky router, against a
# three-node mcpd cluster (private Redis, 127.0.0.1 only): proves misroute rescue.
#
#   tests/cluster/clients-through-traefik.sh target/debug/mcpd
#
# For `[cluster] forward_misroutes = true`, then `false` (nodes restarted in between):
#   ts-client   tests/clients/ts-client.mjs (TypeScript SDK, Node fetch: no cookie store)
#   inspector   $MCPT_INSPECTOR_CLI --method tools/call --tool-name echo (one session each)
#   py-nocookie tests/cluster/py_client_nocookie.py (Python SDK, cookie jar refusing everything)
#   py-tls      tests/cluster/py_client_tls.py (Python SDK over the TLS entry point, keeping the
#               `Secure` sticky cookie as its default jar does: pinned)
#   ts-modern   tests/clients/ts-modern.mjs --modern-only (@modelcontextprotocol/client 2.4.0 in
#               protocol 2026-07-28, no cookie store)
#   py-modern   tests/clients/py_modern.py --no-cookies (mcp.Client in 2026-07-28): these two
#               must pass in both modes with nothing forwarded and no session miss
# Each prints "<client> forward=<on|off>: N steps/calls ok, M failed", its /mcp requests (from
# Traefik's access log), how many were rescued by forwarding (mcpd_forwarded_requests_total
# deltas) and so how many landed on the session's node (pinned by the cookie, or by chance).
# Off-mode failures are EXPECTED for the cookieless clients; the pinned one must pass both.
# The script fails if forwarding-on shows any failure, or if forwarding-off shows no failure
# for the TS client over up to $OFF_TS_RUNS runs (then misroutes were not exercised).
# Last line: "cluster-clients: N passed, M failed". MCPT_CLUSTER_KEEP=1 keeps logs/configs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=cluster-clients
# shellcheck source=SCRIPTDIR/harness.sh
. "$HERE/harness.sh"

[ $# -eq 1 ] || die "usage: $0 PATH/TO/mcpd"
cluster_init "$1"
export MCPT_NODE_MODULES
INSPECTOR_CALLS="${INSPECTOR_CALLS:-5}"
OFF_TS_RUNS="${OFF_TS_RUNS:-3}"
CLIENT_TIMEOUT=60

cluster_start_redis
# The modern clients' MRTR and logging steps use the conformance fixtures.
NODE_EXTRA=$'[catalog]\nconformance = true'
cluster_start_nodes true
cluster_start_traefik
MCP_URL="$TRAEFIK_URL/mcp"

declare -A RESULT FWD REQS  # RESULT[client,mode]="ok failed", FWD[..]="n1=a n2=b n3=c", REQS[..]="total rescued"

fwd_snapshot() { local i; for i in 1 2 3; do printf '%s ' "$(node_forwarded "$i")"; done; printf '%s %s' "$(mcp_requests)" "$(all_misses)"; }
# Requests that reached a node not holding their session, on all nodes.
all_misses() {
  local i n=0
  for i in 1 2 3; do
    n=$((n + $(curl -s --max-time 2 "${NODE_URL[$i]}/metrics" 2>/dev/null | awk '/^mcpd_session_misses_total/ {s += $NF} END {printf "%d\n", s}')))
  done
  echo "$n"
}
# /mcp requests Traefik has finished (its JSON access log goes to stdout: $WORK/traefik.log).
mcp_requests() { grep -c '"RequestPath":"/mcp"' "$WORK/traefik.log" || true; }
fwd_delta() { # fwd_delta "BEFORE" "AFTER" -> "n1=a n2=b n3=c"
  local -a b a; read -r -a b <<<"$1"; read -r -a a <<<"$2"
  echo "n1=$((a[0] - b[0])) n2=$((a[1] - b[1])) n3=$((a[2] - b[2]))"
}
reqs_delta() { # reqs_delta "BEFORE" "AFTER" -> "total rescued misses"
  local -a b a; read -r -a b <<<"$1"; read -r -a a <<<"$2"
  echo "$((a[3] - b[3])) $((a[0] - b[0] + a[1] - b[1] + a[2] - b[2])) $((a[4] - b[4]))"
}

# run_sdk_client NAME MODE CMD... : the client prints "<x>: N passed, M failed" as its last line.
# The URL ($CLIENT_URL, default $MCP_URL) is appended to CMD.
run_sdk_client() {
  local name="$1" mode="$2"; shift 2
  local out="$WORK/$name.$mode.$RANDOM.out" rc=0 ok fail
  timeout --kill-after=5 "$CLIENT_TIMEOUT" "$@" "${CLIENT_URL:-$MCP_URL}" >"$out" 2>&1 || rc=$?
  read -r ok fail < <(sed -nE 's/^[a-z-]+: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$out" | tail -n1) || true
  if [ -z "${ok:-}" ]; then ok=0; fail=1; fi            # no summary line: crashed or timed out
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  [ "$rc" -ne 124 ] || say "$name timed out after $CLIENT_TIMEOUT s"
  if [ "$fail" -ne 0 ]; then
    grep -E '^FAIL' "$out" | cut -c1-220 | sed "s/^/    [$name $mode] /" | head -n 12
  fi
  LAST_OK=$ok LAST_FAIL=$fail
}

run_inspector() { # run_inspector MODE
  local mode="$1" i rc ok=0 fail=0 out
  for i in $(seq "$INSPECTOR_CALLS"); do
    out="$WORK/inspector.$mode.$i.out"; rc=0
    # inspector-cli 1.0.3 tests fs.existsSync("../package.json") against the CWD but imports
    # it relative to build/index.js: it only starts with its build/ directory as the cwd.
    (cd "$(dirname "$MCPT_INSPECTOR_CLI")" && exec timeout --kill-after=5 30 "$MCPT_NODE22" "$MCPT_INSPECTOR_CLI" \
      "$MCP_URL" --transport http --method tools/call --tool-name echo --tool-arg "message=hi-$i") >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && grep -q "Echo: hi-$i" "$out"; then
      ok=$((ok + 1))
    else
      fail=$((fail + 1))
      echo "    [inspector $mode] call $i rc=$rc: $(tr '\n' ' ' <"$out" | cut -c1-200)"
    fi
  done
  LAST_OK=$ok LAST_FAIL=$fail
}

record() { # record CLIENT MODE UNIT BEFORE
  local client="$1" mode="$2" unit="$3" before="$4" after total rescued misses
  sleep 1   # Traefik logs a request when it completes: let the last ones (GET streams) land
  after="$(fwd_snapshot)"
  RESULT[$client,$mode]="$LAST_OK $LAST_FAIL"
  FWD[$client,$mode]="$(fwd_delta "$before" "$after")"
  REQS[$client,$mode]="$(reqs_delta "$before" "$after")"
  read -r total rescued misses <<<"${REQS[$client,$mode]}"
  say "$client forward=$mode: $LAST_OK $unit ok, $LAST_FAIL failed; $total /mcp requests: $((total - misses)) landed on the session's node, $misses on another node, $rescued of those rescued by forwarding (by node: ${FWD[$client,$mode]})"
}

run_mode() { # run_mode on|off
  local mode="$1" before r
  say "== forward_misroutes=$([ "$mode" = on ] && echo true || echo false) =="
  before="$(fwd_snapshot)"
  if [ "$mode" = on ]; then
    run_sdk_client ts-client "$mode" "$MCPT_NODE22" "$HERE/../clients/ts-client.mjs"
  else
    # Off: repeat until the TS client shows a failure (it should on the first run).
    local tot_ok=0 tot_fail=0
    for r in $(seq "$OFF_TS_RUNS"); do
      run_sdk_client ts-client "$mode" "$MCPT_NODE22" "$HERE/../clients/ts-client.mjs"
      tot_ok=$((tot_ok + LAST_OK)); tot_fail=$((tot_fail + LAST_FAIL))
      [ "$LAST_FAIL" -eq 0 ] || break
    done
    say "ts-client forward=off: failures after $r run(s)"
    LAST_OK=$tot_ok LAST_FAIL=$tot_fail
  fi
  record ts-client "$mode" steps "$before"

  before="$(fwd_snapshot)"
  run_inspector "$mode"
  record inspector "$mode" calls "$before"

  before="$(fwd_snapshot)"
  run_sdk_client py-nocookie "$mode" "$MCPT_VENV_PY" "$HERE/py_client_nocookie.py"
  record py-nocookie "$mode" steps "$before"

  # 2026-07-28 clients keeping no cookie: any node serves any request, nothing is forwarded.
  before="$(fwd_snapshot)"
  run_sdk_client ts-modern "$mode" "$MCPT_NODE22" "$HERE/../clients/ts-modern.mjs" --modern-only
  record ts-modern "$mode" steps "$before"

  before="$(fwd_snapshot)"
  run_sdk_client py-modern "$mode" "$MCPT_VENV_PY" "$HERE/../clients/py_modern.py" --no-cookies \
    --metrics "${NODE_URL[1]}/metrics,${NODE_URL[2]}/metrics,${NODE_URL[3]}/metrics"
  record py-modern "$mode" steps "$before"

  before="$(fwd_snapshot)"
  MCPT_TLS_CA="$WORK/traefik/certs/cert.pem" CLIENT_URL="https://127.0.0.1:$TRAEFIK_TLS_PORT/mcp" \
    run_sdk_client py-tls "$mode" "$MCPT_VENV_PY" "$HERE/py_client_tls.py"
  record py-tls "$mode" steps "$before"

  local i logs=""
  for i in 1 2 3; do
    logs+="${NODES[i-1]}: $(grep -c 'action="\{0,1\}forwarded' "${NODE_LOG[i]}" || true) forwarded/$(grep -c 'action="\{0,1\}404' "${NODE_LOG[i]}" || true) 404  "
  done
  say "misroute WARN lines (logged once per session id): $logs"
  if nodes_alive; then check "nodes-alive-$mode" 0 ""; else check "nodes-alive-$mode" 1 "a node died"; fi
}

run_mode on
for c in ts-client inspector py-nocookie py-tls; do
  read -r _ f <<<"${RESULT[$c,on]}"
  check "$c-forward-on" "$([ "$f" -eq 0 ] && echo 0 || echo 1)" "$f failure(s) with forwarding on"
done
# The cookie pins: nothing of the TLS client's was forwarded.
read -r _ r _ <<<"${REQS[py-tls,on]}"
# (Its last step POSTs the DELETEd id with urllib, which keeps no cookie: that one may be forwarded.)
check "py-tls-pinned" "$([ "$r" -le 1 ] && echo 0 || echo 1)" "$r of its requests were forwarded: the cookie did not pin it"
cluster_stop_nodes
cluster_start_nodes false
run_mode off
read -r _ f <<<"${RESULT[ts-client,off]}"
check "ts-client-forward-off-reproduces" "$([ "$f" -gt 0 ] && echo 0 || echo 1)" \
  "no failure with forwarding off: the test did not exercise misroutes"
read -r _ f <<<"${RESULT[py-tls,off]}"
check "py-tls-forward-off-pinned" "$([ "$f" -eq 0 ] && echo 0 || echo 1)" "$f failure(s): a pinned client needs no forwarding"
# The stateless clients need neither the cookie nor forwarding: no failure, nothing forwarded,
# no request counted as a session miss, in both modes.
for c in ts-modern py-modern; do
  for mode in on off; do
    read -r _ f <<<"${RESULT[$c,$mode]}"
    read -r t r m <<<"${REQS[$c,$mode]}"
    check "$c-forward-$mode" "$([ "$f" -eq 0 ] && [ "$r" -eq 0 ] && [ "$m" -eq 0 ] && echo 0 || echo 1)" \
      "$f failure(s), $r request(s) forwarded, $m session miss(es) of $t"
  done
done

echo
printf '%-12s | %-44s | %-44s\n' client "forward=on: ok/failed; requests: home/away/rescued" "forward=off: ok/failed; requests: home/away/rescued"
printf '%-12s-+-%-44s-+-%-44s\n' "------------" "--------------------------------------------" "--------------------------------------------"
for c in ts-client inspector py-nocookie py-tls ts-modern py-modern; do
  read -r o1 f1 <<<"${RESULT[$c,on]}"; read -r o2 f2 <<<"${RESULT[$c,off]}"
  read -r t1 r1 m1 <<<"${REQS[$c,on]}"; read -r t2 r2 m2 <<<"${REQS[$c,off]}"
  printf '%-12s | %-44s | %-44s\n' "$c" "$o1/$f1; $((t1 - m1))/$m1/$r1" "$o2/$f2; $((t2 - m2))/$m2/$r2"
done
echo "(home: requests that reached the session's node, pinned by the cookie or by chance; away: reached"
echo " another node; rescued: of those, forwarded to the owner. Off-mode failures are expected for the"
echo " cookieless clients: that is the misroute problem forwarding solves)"
echo
[ "$failed" -eq 0 ] || say "failed: ${failed_names[*]}"
echo "cluster-clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
