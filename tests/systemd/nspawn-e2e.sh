#!/usr/bin/env bash
# The .deb under real systemd: boots Debian bookworm (systemd as PID 1, journald, redis-server)
# in systemd-nspawn, installs the package with apt and proves, printing what it measured:
#
#   install  apt-get install ./mcpd_*.deb enables and starts mcpd.service
#   a        the unit turns active only after READY=1 (systemd's own debug log, in order)
#   c        systemctl restart mcpd drains (STOPPING=1, /healthz 503) and comes back; a client
#            re-initializes and calls node_info
#   d        a SIGSTOPped mcpd is killed by the watchdog and restarted (NRestarts, journal)
#   b        two instances sharing redis: a request to b for a's session -> 404 and
#            `journalctl -u mcpd@b SESSION_ID=<id> CLASS=misroute` shows OWNER_NODE=a
#   e        three mcpd@ instances restarted one at a time while all /healthz are polled: never
#            more than one down
#   g        upgrade to a newer version of the same package: local conffile edit kept, mcpd and
#            the instances restarted
#   f        apt-get remove stops everything (no mcpd process left), the conffile stays until purge
#
#   tests/systemd/nspawn-e2e.sh target/debian/mcpd_<version>_amd64.deb
#
# Needs root, systemd-nspawn and debootstrap (tests/prereqs.sh installs them). The Debian rootfs
# is built once (~45 s) into $MCPT_TEST_DEPS/debian-rootfs and only read afterwards
# (--volatile=overlay). The container has a private network: the test's traffic stays inside it.
# If the machine cannot boot the container, this FAILS with the reason; it never skips.
# shellcheck disable=SC2016  # dpkg-query formats and container-side shell code are single-quoted on purpose
set -euo pipefail

LOG_PREFIX="nspawn-e2e"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/systemd/lib.sh
. "$HERE/lib.sh"

[ $# -eq 1 ] || die "usage: $0 PATH/mcpd_<version>_<arch>.deb"
[ -f "$1" ] || die "$1 not found (bash packaging/build-deb.sh builds it)"
DEB="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
DEB_NAME="$(basename "$DEB")"

WORK="$(mktemp -d)"
MONITOR_PID=""
FAILS=0
T_ALL="$(now)"

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
  local rc=$?
  stop_monitor || true
  ct_stop || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "$LOG_PREFIX: FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "$LOG_PREFIX: ok: $*"; }
section() { echo; echo "$LOG_PREFIX: ---- $*"; }

# ------------------------------------------------------------------ helpers (in the container)
# Values of `systemctl show -p PROP --value UNIT`.
prop() { ct_exec systemctl show -p "$2" --value "$1"; }

# The last PID-1 (systemd) and journal lines since a cursor, for one unit, as "monotonic text".
journal_since() {  # CURSOR [journalctl filters...]
  local cursor="$1"
  shift
  ct_exec journalctl --no-pager -q --after-cursor="$cursor" -o short-monotonic "$@" 2>/dev/null || true
}
journal_cursor() { ct_exec journalctl --no-pager -q -n 1 --show-cursor | sed -n 's/^-- cursor: //p'; }

# systemd's debug log shows every notification it gets and every state change, in order.
pid1_debug() { ct_exec systemctl log-level "$1"; }

# http PORT METHOD PATH [SESSION] [JSON]: curl -i inside the container; the reply (status line,
# headers, body) goes to $WORK/reply, the status code is printed.
http() {
  local port="$1" method="$2" path="$3" session="${4:-}" body="${5:-}"
  local -a args=(-s -i -m 5 -X "$method" "http://127.0.0.1:$port$path")
  if [ "$path" = /mcp ]; then
    args+=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
  fi
  [ -z "$session" ] || args+=(-H "Mcp-Session-Id: $session" -H 'MCP-Protocol-Version: 2025-11-25')
  [ -z "$body" ] || args+=(--data-binary "$body")
  ct_exec curl "${args[@]}" >"$WORK/reply" 2>/dev/null || true
  tr -d '\r' <"$WORK/reply" >"$WORK/reply.txt"
  awk 'NR == 1 { print $2 }' "$WORK/reply.txt" | grep -E '^[0-9]{3}$' || echo 000
}
reply_header() { sed -n "1,/^\$/{s/^$1: //Ip}" "$WORK/reply.txt" | head -n1; }
reply_body() { sed '1,/^$/d' "$WORK/reply.txt"; }

INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"nspawn-e2e","version":"1"}}}'
INITIALIZED='{"jsonrpc":"2.0","method":"notifications/initialized"}'
NODE_INFO='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"node_info","arguments":{}}}'

# mcp_session PORT: initialize + notifications/initialized; prints the session id (or fails).
mcp_session() {
  local port="$1" code sid
  code="$(http "$port" POST /mcp "" "$INIT")"
  sid="$(reply_header mcp-session-id)"
  if [ "$code" != 200 ] || [ -z "$sid" ]; then
    echo "initialize on :$port answered $code (session id '${sid}'): $(reply_body | head -c 300)" >&2
    return 1
  fi
  code="$(http "$port" POST /mcp "$sid" "$INITIALIZED")"
  if [ "$code" != 202 ]; then
    echo "notifications/initialized on :$port answered $code, expected 202" >&2
    return 1
  fi
  echo "$sid"
}

# node_info PORT SESSION: prints the node id that answered (or fails).
node_info() {
  local code node
  code="$(http "$1" POST /mcp "$2" "$NODE_INFO")"
  # JSON reply, or an SSE stream whose data: line holds it.
  node="$(reply_body | sed -n 's/^data: //p; /^{/p' | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    r = m.get("result") or {}
    s = r.get("structuredContent") or {}
    if "node" in s:
        print(s["node"]); break
    for c in r.get("content", []):
        try:
            print(json.loads(c.get("text", ""))["node"]); sys.exit(0)
        except Exception:
            pass
' 2>/dev/null || true)"
  if [ "$code" != 200 ] || [ -z "$node" ]; then
    echo "node_info on :$1 answered $code: $(reply_body | head -c 300)" >&2
    return 1
  fi
  echo "$node"
}

# healthz PORT: prints "CODE BODY".
healthz() {
  local code
  code="$(http "$1" GET /healthz)"
  echo "$code $(reply_body | tr -d '\n')"
}

# wait_healthy PORT [SECONDS]: until /healthz answers 200.
wait_healthy() {
  for _ in $(seq $((${2:-10} * 10))); do
    [ "$(http "$1" GET /healthz)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# A /healthz poller INSIDE the container (one process, 50 ms period), one line per round:
# "<epoch seconds> <code port1> <code port2> ...". Stopped by stop_monitor (by PID).
start_monitor() {  # OUTFILE PORT...
  local out="$1"
  shift
  ct_exec rm -f /run/e2e-monitor-stop
  # shellcheck disable=SC2016  # expanded by the container's sh
  ct_exec sh -c '
    while [ ! -e /run/e2e-monitor-stop ]; do
      line="$(date +%s.%N)"
      for p in "$@"; do
        line="$line $(curl -s -o /dev/null -m 1 -w "%{http_code}" "http://127.0.0.1:$p/healthz")"
      done
      echo "$line"
      sleep 0.05
    done' monitor "$@" >"$out" 2>/dev/null &
  MONITOR_PID=$!
  sleep 0.3
}
stop_monitor() {
  [ -n "$MONITOR_PID" ] || return 0
  [ -z "$CT_LEADER" ] || ct_exec touch /run/e2e-monitor-stop 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$MONITOR_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$MONITOR_PID" 2>/dev/null || true
  wait "$MONITOR_PID" 2>/dev/null || true
  MONITOR_PID=""
}

# instance_config NAME PORT: /etc/mcpd/NAME.toml for a node sharing the container's redis-server.
# Strict 404 on misses (no forwarding/adoption), so the misroute is answered by the node itself.
instance_config() {
  ct_exec sh -c "cat >/etc/mcpd/$1.toml" <<EOF
[server]
listen = "127.0.0.1:$2"
node_id = "$1"

[redis]
url = "redis://127.0.0.1:6379"
heartbeat_interval = "1s"

[cluster]
forward_misroutes = false
adopt_orphans = false
EOF
}

# ------------------------------------------------------------------ preflight, image, boot
section "setup"
ct_preflight
ensure_rootfs
# The upgrade package (g): the same contents as a newer version (dpkg-deb repack, no rebuild).
UPG_DIR="$WORK/upgrade"
mkdir -p "$UPG_DIR"
dpkg-deb -R "$DEB" "$WORK/repack"
OLD_VERSION="$(dpkg-deb -f "$DEB" Version)"
NEW_VERSION="$OLD_VERSION+e2e1"
sed -i "s/^Version: .*/Version: $NEW_VERSION/" "$WORK/repack/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -b "$WORK/repack" "$UPG_DIR/mcpd_${NEW_VERSION}_$(dpkg-deb -f "$DEB" Architecture).deb" >/dev/null
rm -rf "$WORK/repack"

ct_start "mcpd-e2e-$$" --bind-ro="$DEB:/pkgs/$DEB_NAME" --bind-ro="$UPG_DIR:/pkgs-upgrade"
say "container: $(ct_exec sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), systemd $(ct_exec systemctl --version | awk 'NR == 1 { print $2 }'), redis-server $(ct_exec systemctl is-active redis-server)"
[ "$(ct_exec systemctl is-active redis-server)" = active ] || die "redis-server is not active in the container"

# ------------------------------------------------------------------ install
section "install: cd /pkgs && apt-get install ./$DEB_NAME"
t0="$(now)"
if ct_exec sh -c "cd /pkgs && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./$DEB_NAME" >"$WORK/apt.log" 2>&1; then
  pass "installed in $(elapsed "$t0") s: $(ct_exec dpkg-query -W -f '${Package} ${Version} ${Status}' mcpd)"
else
  tail -n 20 "$WORK/apt.log" >&2
  die "apt-get install ./$DEB_NAME failed in the container"
fi
enabled="$(ct_exec systemctl is-enabled mcpd 2>&1 || true)"
active="$(ct_exec systemctl is-active mcpd 2>&1 || true)"
if [ "$enabled" = enabled ] && [ "$active" = active ]; then
  pass "after install: mcpd.service $enabled, $active, MainPID $(prop mcpd MainPID), Status=\"$(prop mcpd StatusText)\""
else
  fail "after install: mcpd.service is-enabled=$enabled is-active=$active"
  ct_exec journalctl -u mcpd --no-pager -n 30 >&2 || true
fi
if wait_healthy 8080 5; then
  pass "GET /healthz on 127.0.0.1:8080: $(healthz 8080)"
else
  fail "/healthz on 127.0.0.1:8080 did not answer 200: $(healthz 8080)"
fi
say "hardening in effect: User=$(ct_exec ps -o user= -p "$(prop mcpd MainPID)" 2>/dev/null || echo '?'), NoNewPrivileges=$(prop mcpd NoNewPrivileges), ProtectSystem=$(prop mcpd ProtectSystem), LimitNOFILE=$(prop mcpd LimitNOFILE)"

# ------------------------------------------------------------------ a. active only after READY
section "a: the unit becomes active only after READY=1"
ct_exec systemctl stop mcpd
pid1_debug debug
cursor="$(journal_cursor)"
t0="$(now)"
rc=0
ct_exec systemctl start mcpd || rc=$?
start_s="$(elapsed "$t0")"
state="$(prop mcpd ActiveState)"
pid1_debug info
exec_us="$(prop mcpd ExecMainStartTimestampMonotonic)"
active_us="$(prop mcpd ActiveEnterTimestampMonotonic)"
journal_since "$cursor" _PID=1 >"$WORK/a-pid1.log"
journal_since "$cursor" -u mcpd >"$WORK/a-unit.log"
ready_line="$(grep -n 'mcpd.service: Got notification message from PID [0-9]* (READY=1' "$WORK/a-pid1.log" | head -n1 || true)"
running_line="$(grep -n 'mcpd.service: Changed start -> running' "$WORK/a-pid1.log" | head -n1 || true)"
listening_line="$(grep -n 'mcpd listening on' "$WORK/a-unit.log" | head -n1 || true)"
started_line="$(grep -n 'Started mcpd.service' "$WORK/a-unit.log" | head -n1 || true)"
say "systemctl start: rc $rc after $start_s s, ActiveState=$state; exec -> active: $(((active_us - exec_us) / 1000)) ms"
say "  READY   : ${ready_line#*:}"
say "  running : ${running_line#*:}"
say "  journal : ${listening_line#*:}"
say "  journal : ${started_line#*:}"
if [ "$rc" -eq 0 ] && [ "$state" = active ] && [ -n "$ready_line" ] && [ -n "$running_line" ] \
    && [ "${ready_line%%:*}" -lt "${running_line%%:*}" ] && [ -n "$listening_line" ] && [ -n "$started_line" ] \
    && [ "${listening_line%%:*}" -lt "${started_line%%:*}" ] && [ "$active_us" -gt "$exec_us" ]; then
  pass "a: start returned with ActiveState=active; PID 1 got READY=1 before 'start -> running', and 'mcpd listening' precedes 'Started'"
else
  fail "a: no proof that mcpd.service turned active only after READY=1 (see the lines above)"
  tail -n 40 "$WORK/a-pid1.log" >&2
fi

# The counter-proofs: no READY, never active. A node whose port is taken fails its start job
# (and is retried: Restart=on-failure); a bad config exits 78 and is not restarted at all.
ct_exec sh -c 'printf "[server]\nlisten = \"127.0.0.1:8080\"\nnode_id = \"busy\"\n" >/etc/mcpd/busy.toml'
ct_exec sh -c 'printf "[server]\nlisten = \"127.0.0.1:8089\"\nno_such_key = 1\n" >/etc/mcpd/bad.toml'
rc_busy=0
ct_exec systemctl start mcpd@busy 2>/dev/null || rc_busy=$?
busy_state="$(prop mcpd@busy ActiveState)/$(prop mcpd@busy SubState), exit status $(prop mcpd@busy ExecMainStatus)"
busy_err="$(ct_exec journalctl --no-pager -q -u mcpd@busy -o cat _COMM=mcpd 2>/dev/null | head -n1 || true)"
rc_bad=0
ct_exec systemctl start mcpd@bad 2>/dev/null || rc_bad=$?
sleep 2.5   # > RestartSec=1s: a restart would have happened by now
bad_state="$(prop mcpd@bad ActiveState)/$(prop mcpd@bad SubState), exit status $(prop mcpd@bad ExecMainStatus), NRestarts $(prop mcpd@bad NRestarts)"
bad_err="$(ct_exec journalctl --no-pager -q -u mcpd@bad -o cat _COMM=mcpd 2>/dev/null | head -n1 || true)"
say "port taken: systemctl start mcpd@busy rc $rc_busy, $busy_state; ${busy_err:-no error logged}"
say "bad config: systemctl start mcpd@bad rc $rc_bad, $bad_state; ${bad_err:-no error logged}"
if [ "$rc_busy" -ne 0 ] && ! [[ "$busy_state" == active/* ]] && [ "$rc_bad" -ne 0 ] \
    && [ "$(prop mcpd@bad ExecMainStatus)" = 78 ] && [ "$(prop mcpd@bad NRestarts)" = 0 ] \
    && [ "$(prop mcpd@bad ActiveState)" = failed ]; then
  pass "a: without READY the start job fails; exit 78 (bad config) is not restarted"
else
  fail "a: a unit that never sent READY (port taken / bad config) did not fail as expected"
fi
ct_exec systemctl stop mcpd@busy mcpd@bad >/dev/null 2>&1 || true
ct_exec systemctl reset-failed >/dev/null 2>&1 || true
ct_exec rm -f /etc/mcpd/busy.toml /etc/mcpd/bad.toml

# ------------------------------------------------------------------ c. restart drains and comes back
section "c: systemctl restart mcpd drains and comes back"
sid_old="$(mcp_session 8080)" || { fail "c: no session before the restart"; sid_old=""; }
pid_old="$(prop mcpd MainPID)"
start_monitor "$WORK/c-monitor.txt" 8080
pid1_debug debug
cursor="$(journal_cursor)"
t0="$(now)"
rc=0
ct_exec systemctl restart mcpd || rc=$?
restart_s="$(elapsed "$t0")"
pid1_debug info
wait_healthy 8080 5 || true
sleep 0.3   # a few 200 rounds after the restart
stop_monitor
pid_new="$(prop mcpd MainPID)"
journal_since "$cursor" _PID=1 >"$WORK/c-pid1.log"
journal_since "$cursor" -u mcpd >"$WORK/c-unit.log"
stopping="$(grep -c 'mcpd.service: Got notification message from PID [0-9]* (STOPPING=1' "$WORK/c-pid1.log" || true)"
draining_line="$(grep -m1 -E 'draining' "$WORK/c-unit.log" || true)"
stopped_line="$(grep -m1 -E 'mcpd\[[0-9]+\]: stopped|: stopped$' "$WORK/c-unit.log" || true)"
# The monitor's sequence of codes, run-length encoded: "200x12 503x38 000x3 200x9".
codes="$(awk '{ print $2 }' "$WORK/c-monitor.txt" | uniq -c | awk '{ printf "%s%sx%s", sep, $2, $1; sep = " " }')"
drain_ms="$(awk '$2 == 503 { if (!f) f = $1; l = $1 } END { if (f) printf "%d", (l - f) * 1000; else print 0 }' "$WORK/c-monitor.txt")"
say "systemctl restart: rc $rc in $restart_s s, MainPID $pid_old -> $pid_new, STOPPING=1 notifications: $stopping"
say "  /healthz during the restart (50 ms polls): $codes (503 for ~$drain_ms ms)"
say "  journal: ${draining_line:-no 'draining' line}"
say "  journal: ${stopped_line:-no 'stopped' line}"
after_old=""
[ -z "$sid_old" ] || after_old="$(http 8080 POST /mcp "$sid_old" "$NODE_INFO")"
sid_new="$(mcp_session 8080)" || sid_new=""
node=""
[ -z "$sid_new" ] || node="$(node_info 8080 "$sid_new")" || node=""
say "  old session after the restart: $after_old; re-initialized: ${sid_new:-none}, node_info -> node '${node}'"
if [ "$rc" -eq 0 ] && [ "$pid_new" != "$pid_old" ] && [ "$stopping" -ge 1 ] && [ "$drain_ms" -gt 0 ] \
    && grep -q ' 503$' "$WORK/c-monitor.txt" && [ "$(tail -n 1 "$WORK/c-monitor.txt" | awk '{ print $2 }')" = 200 ] \
    && [ "$after_old" = 404 ] && [ -n "$node" ]; then
  pass "c: restart drained (STOPPING=1, /healthz 503 for ~$drain_ms ms), came back in $restart_s s; the client re-initialized and node_info answered '$node'"
else
  fail "c: restart/drain not as expected (see above)"
  tail -n 30 "$WORK/c-pid1.log" >&2
fi

# ------------------------------------------------------------------ d. watchdog
section "d: a SIGSTOPped mcpd is killed by the watchdog and restarted"
ct_exec mkdir -p /etc/systemd/system/mcpd.service.d
ct_exec sh -c 'cat >/etc/systemd/system/mcpd.service.d/e2e-watchdog.conf' <<'EOF'
[Service]
WatchdogSec=2s
TimeoutAbortSec=5s
EOF
ct_exec systemctl daemon-reload
ct_exec systemctl restart mcpd
restarts_before="$(prop mcpd NRestarts)"
pid_before="$(prop mcpd MainPID)"
say "drop-in WatchdogSec=$(prop mcpd WatchdogUSec); MainPID $pid_before, NRestarts $restarts_before"
cursor="$(journal_cursor)"
t0="$(now)"
ct_exec systemctl kill -s SIGSTOP --kill-whom=main mcpd
restarted=""
for _ in $(seq 150); do
  if [ "$(prop mcpd NRestarts)" -gt "$restarts_before" ] && [ "$(prop mcpd ActiveState)" = active ]; then
    restarted="$(elapsed "$t0")"
    break
  fi
  sleep 0.1
done
journal_since "$cursor" -u mcpd >"$WORK/d-unit.log"
timeout_line="$(grep -m1 'Watchdog timeout' "$WORK/d-unit.log" || true)"
result_line="$(grep -m1 "Failed with result 'watchdog'" "$WORK/d-unit.log" || true)"
say "  ${timeout_line:-no 'Watchdog timeout' line}"
say "  ${result_line:-no \"Failed with result 'watchdog'\" line}"
say "  NRestarts $restarts_before -> $(prop mcpd NRestarts), MainPID $pid_before -> $(prop mcpd MainPID), $(prop mcpd ActiveState)"
if [ -n "$restarted" ] && [ -n "$timeout_line" ] && wait_healthy 8080 5; then
  pass "d: SIGSTOP -> watchdog timeout -> restarted and serving again after $restarted s"
else
  fail "d: the watchdog did not restart the stopped mcpd within 15 s"
  tail -n 20 "$WORK/d-unit.log" >&2
fi
ct_exec rm -f /etc/systemd/system/mcpd.service.d/e2e-watchdog.conf
ct_exec systemctl daemon-reload
ct_exec systemctl restart mcpd
say "drop-in removed: WatchdogSec back to $(prop mcpd WatchdogUSec)"

# ------------------------------------------------------------------ b. misroute in the journal
section "b: a misrouted request is in the journal of mcpd@b with OWNER_NODE=a"
instance_config a 8081
instance_config b 8082
instance_config c 8083
t0="$(now)"
ct_exec systemctl start mcpd@a mcpd@b mcpd@c
say "mcpd@a, mcpd@b, mcpd@c started in $(elapsed "$t0") s: $(ct_exec systemctl is-active mcpd@a mcpd@b mcpd@c | tr '\n' ' ')"
# b must be connected to Redis, or it would classify the miss as "unclassified".
for _ in $(seq 50); do
  healthz 8082 | grep -q '"state":"connected"' && healthz 8081 | grep -q '"state":"connected"' && break
  sleep 0.1
done
say "  a: $(healthz 8081)"
say "  b: $(healthz 8082)"
sid=""
sid="$(mcp_session 8081)" || fail "b: initialize on a failed"
if [ -n "$sid" ]; then
  node="$(node_info 8081 "$sid")" || node=""
  # Registration is asynchronous (requests never wait on Redis): wait for a's key first, or b
  # would see an unknown session (and log that id once, as "unknown").
  registered=""
  for _ in $(seq 50); do
    if [ "$(ct_exec redis-cli -p 6379 EXISTS "mcp:session:$sid" 2>/dev/null)" = 1 ]; then registered=yes; break; fi
    sleep 0.1
  done
  say "session $sid on a (node_info: '$node'); in redis: ${registered:-no} ($(ct_exec redis-cli -p 6379 GET "mcp:session:$sid" 2>/dev/null))"
  code_b="$(http 8082 POST /mcp "$sid" "$NODE_INFO")"
  say "the same session sent to b: HTTP $code_b $(reply_body | head -c 200)"
  entry=""
  for _ in $(seq 50); do
    entry="$(ct_exec journalctl --no-pager -q -u mcpd@b SESSION_ID="$sid" CLASS=misroute -o verbose 2>/dev/null || true)"
    [ -n "$entry" ] && break
    sleep 0.1
  done
  say "journalctl -u mcpd@b SESSION_ID=$sid CLASS=misroute -o verbose:"
  if [ -n "$entry" ]; then
    grep -E '^    (MESSAGE|PRIORITY|SESSION_ID|NODE|OWNER_NODE|CLASS|_SYSTEMD_UNIT)=' <<<"$entry" | sed 's/^ */    /'
  else
    say "    (no entry); everything b logged about it:"
    ct_exec journalctl --no-pager -q -u mcpd@b -n 20 >&2 || true
  fi
  if [ "$node" = a ] && [ "$code_b" = 404 ] && grep -q '^    OWNER_NODE=a$' <<<"$entry" \
      && grep -q '^    NODE=b$' <<<"$entry" && grep -q '^    PRIORITY=4$' <<<"$entry"; then
    pass "b: b answered 404 and journald has the WARN entry SESSION_ID=$sid CLASS=misroute NODE=b OWNER_NODE=a"
  else
    fail "b: expected node_info 'a' (got '$node'), 404 from b (got $code_b) and a WARN misroute entry with OWNER_NODE=a"
  fi
fi

# ------------------------------------------------------------------ e. rolling restart of three
section "e: rolling restart of mcpd@a, mcpd@b, mcpd@c (never more than one down)"
for p in 8081 8082 8083; do wait_healthy "$p" 5 || fail "e: :$p not healthy before the rolling restart"; done
start_monitor "$WORK/e-monitor.txt" 8081 8082 8083
times=""
for inst_port in a:8081 b:8082 c:8083; do
  inst="${inst_port%:*}"
  t0="$(now)"
  ct_exec systemctl restart "mcpd@$inst" || fail "e: systemctl restart mcpd@$inst failed"
  times="$times mcpd@$inst=$(elapsed "$t0")s"
  # Wait until the restarted node serves again before touching the next one.
  wait_healthy "${inst_port#*:}" 10 || fail "e: mcpd@$inst not healthy after its restart"
done
sleep 0.3
stop_monitor
rounds="$(wc -l <"$WORK/e-monitor.txt")"
max_down="$(awk '{ d = 0; for (i = 2; i <= NF; i++) if ($i != 200) d++; if (d > m) m = d } END { print m + 0 }' "$WORK/e-monitor.txt")"
per_node="$(awk '{ for (i = 2; i <= NF; i++) if ($i != 200) n[i]++ } END { printf "a %d, b %d, c %d", n[2], n[3], n[4] }' "$WORK/e-monitor.txt")"
say "restart times:$times; $rounds poll rounds; rounds with a node down (503 or no answer): $per_node; most nodes down at once: $max_down"
if [ "$rounds" -gt 10 ] && [ "$max_down" -le 1 ] && [ "$max_down" -ge 0 ]; then
  pass "e: never more than one of three down during the rolling restart ($rounds rounds)"
else
  fail "e: $max_down nodes down at once (or too few rounds: $rounds)"
fi

# ------------------------------------------------------------------ g. upgrade
section "g: upgrade to $NEW_VERSION keeps the local conffile edit and restarts the services"
ct_exec sh -c 'sed -i "1i # local edit by the e2e test" /etc/mcpd/mcpd.toml'
ct_exec sh -c 'sed -i "s/^#level = \"info\"/level = \"debug\"/" /etc/mcpd/mcpd.toml'
ct_exec systemctl restart mcpd
pids_before="$(for u in mcpd mcpd@a mcpd@b mcpd@c; do printf '%s=%s ' "$u" "$(prop "$u" MainPID)"; done)"
t0="$(now)"
if ct_exec sh -c "cd /pkgs-upgrade && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./mcpd_${NEW_VERSION}_*.deb" >"$WORK/apt-upgrade.log" 2>&1; then
  upgrade_s="$(elapsed "$t0")"
  pids_after="$(for u in mcpd mcpd@a mcpd@b mcpd@c; do printf '%s=%s ' "$u" "$(prop "$u" MainPID)"; done)"
  version="$(ct_exec dpkg-query -W -f '${Version}' mcpd)"
  kept="$(ct_exec grep -c -e '^# local edit by the e2e test$' -e '^level = "debug"$' /etc/mcpd/mcpd.toml || true)"
  say "apt-get install ./mcpd_${NEW_VERSION}_*.deb: $upgrade_s s, version now $version"
  say "  MainPIDs before: $pids_before"
  say "  MainPIDs after : $pids_after"
  say "  local edits still in /etc/mcpd/mcpd.toml: $kept of 2; no .dpkg-new/.dpkg-dist: $(ct_exec sh -c 'ls /etc/mcpd/*.dpkg-* 2>/dev/null | wc -l')"
  changed=0
  for u in mcpd mcpd@a mcpd@b mcpd@c; do
    b="$(sed -n "s/.*\b$u=\([0-9]*\) .*/\1/p" <<<" $pids_before")"
    a="$(sed -n "s/.*\b$u=\([0-9]*\) .*/\1/p" <<<" $pids_after")"
    [ "$a" != "$b" ] && [ "$a" != 0 ] && changed=$((changed + 1))
  done
  if [ "$version" = "$NEW_VERSION" ] && [ "$kept" = 2 ] && [ "$changed" = 4 ]; then
    pass "g: upgraded; the conffile edit survived; mcpd and the 3 running instances were restarted"
  else
    fail "g: after the upgrade: version $version, $kept/2 local edits, $changed/4 units restarted"
  fi
else
  tail -n 20 "$WORK/apt-upgrade.log" >&2
  fail "g: apt-get install of the upgrade package failed"
fi

# ------------------------------------------------------------------ f. remove, purge
section "f: apt-get remove stops every mcpd; the conffile stays until purge"
say "before: $(ct_exec pgrep -c -x mcpd || true) mcpd processes"
t0="$(now)"
ct_exec sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q mcpd' >"$WORK/apt-remove.log" 2>&1 || fail "f: apt-get remove -y mcpd failed"
remove_s="$(elapsed "$t0")"
left="$(ct_exec pgrep -a -x mcpd || true)"
states="$(ct_exec systemctl is-active mcpd mcpd@a mcpd@b mcpd@c 2>/dev/null | tr '\n' ' ' || true)"
status="$(ct_exec dpkg-query -W -f '${Status}' mcpd 2>/dev/null || true)"
conf_after_remove="$(ct_exec sh -c 'test -f /etc/mcpd/mcpd.toml && echo present || echo absent')"
say "apt-get remove: $remove_s s; units: $states; mcpd processes: ${left:-none}; dpkg: $status; /etc/mcpd/mcpd.toml $conf_after_remove"
ct_exec sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q mcpd' >"$WORK/apt-purge.log" 2>&1 || fail "f: apt-get purge -y mcpd failed"
conf_after_purge="$(ct_exec sh -c 'test -f /etc/mcpd/mcpd.toml && echo present || echo absent')"
status_purge="$(ct_exec dpkg-query -W -f '${Status}' mcpd 2>/dev/null || echo 'not known')"
say "apt-get purge: /etc/mcpd/mcpd.toml $conf_after_purge; dpkg: $status_purge; left in /etc/mcpd: $(ct_exec sh -c 'ls /etc/mcpd 2>/dev/null | tr "\n" " "')"
if [ -z "$left" ] && ! grep -qw active <<<"$states" && [ "$status" = "deinstall ok config-files" ] \
    && [ "$conf_after_remove" = present ] && [ "$conf_after_purge" = absent ]; then
  pass "f: remove stopped mcpd and its instances (no process left), kept the conffile; purge deleted it"
else
  fail "f: remove/purge not as expected (see above)"
fi

# ------------------------------------------------------------------ done
section "done"
ct_stop
say "total $(elapsed "$T_ALL") s"
if [ "$FAILS" -gt 0 ]; then
  say "$FAILS check(s) FAILED"
  exit 1
fi
say "all checks passed"
