#!/usr/bin/env bash
# User-space instructions per tool call and per session lifecycle, counted by callgrind: costs that
# repeat within ~1 % on a VM that exposes no hardware counters (where bench/run.sh can only report
# CPU time, which moves with the host). Each server runs under valgrind on core 0 and wrk drives it
# from core 1 - a warm-up, then the counters are zeroed, a measured run, and a dump, so start-up
# and shutdown are not counted. Calls: the floor, mcpd and rmcp (with TCP_NODELAY), 1 session x 50
# connections, and mcpd's same call in protocol 2026-07-28 (no session) over 50 connections. Lifecycles (initialize, initialized, echo, DELETE; bench/peers/churn over 4
# connections): mcpd and rmcp. Kernel work is not counted (bench/run.sh's `perf stat` figures
# include it where the VM allows).
#
#   bash bench/callgrind.sh [seconds] [--json FILE]   # default 8 s per measurement (~2 min in all)
#
# Prints one line per measurement (count, errors, instructions each) and the ratios; --json also
# writes them to FILE (bench/run.sh does, so a full run reports instructions on a VM without
# hardware counters). Exits 1 when
# a response was wrong or a server did not start. Builds the release binaries first (as
# bench/run.sh does); installs valgrind and wrk from apt when missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SECS=8
JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) JSON="${2:?--json needs a file}"; shift 2 ;;
    *) SECS="$1"; shift ;;
  esac
done
say() { echo "callgrind: $*"; }
die() { echo "callgrind: ERROR: $*" >&2; exit 2; }

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on core 0, load generator on core 1)"
for tool in valgrind wrk; do
  if ! command -v "$tool" >/dev/null; then
    say "installing $tool (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null || die "apt-get install $tool failed"
  fi
done
MCPD="$ROOT/target/release/mcpd"
FLOOR="$HERE/peers/target/release/floor"
RMCP="$HERE/peers/target/release/rmcp-echo"
CHURN="$HERE/peers/target/release/churn"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
(cd "$HERE/peers" && cargo build --release --quiet) || die "building bench/peers failed"

WORK="$(mktemp -d)"
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# initialize + notifications/initialized; prints the session id.
open_session() {
  local url=$1 sid
  sid=$(curl -s -D - -o /dev/null -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"callgrind","version":"1"}}}' \
    "$url" | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" { print $2 }')
  [ -n "$sid" ] || return 1
  curl -s -o /dev/null -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H "mcp-session-id: $sid" \
    -H 'mcp-protocol-version: 2025-06-18' \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url"
  echo "$sid"
}

# measure NAME MODE(call|churn) SESSIONS(yes|no) ENV... -- CMD...: prints "NAME MODE count errors
# instructions", the count being calls or completed lifecycles.
measure() {
  local name=$1 mode=$2 sessions=$3 port out sid=none url
  shift 3
  port=$(free_port)
  out="$WORK/$name.$mode.out"
  local envs=("PORT=$port")
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local cmd=("$@")
  if [ "${name%%-*}" = mcpd ]; then
    printf '[server]\nlisten = "127.0.0.1:%s"\nnode_id = "bench"\n[log]\nlevel = "warn"\n' "$port" >"$WORK/mcpd.toml"
    cmd+=(serve --config "$WORK/mcpd.toml")
  fi
  env "${envs[@]}" taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" \
    >"$WORK/$name.log" 2>&1 &
  SERVER=$!
  url="http://127.0.0.1:$port/mcp"
  for _ in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$SERVER" 2>/dev/null || { tail -5 "$WORK/$name.log" >&2; return 1; }
    sleep 0.2
  done
  if [ "$sessions" = yes ]; then
    sid=$(open_session "$url") || { say "$name: initialize gave no session id" >&2; return 1; }
  fi
  # load SECONDS: the calls (wrk) or the lifecycles (the churn generator) of this measurement.
  load() {
    if [ "$mode" = churn ]; then
      taskset -c 1 "$CHURN" --conns 4 --duration "$1" --timeout 10 "$url"
    else
      BENCH_SIDS=$sid BENCH_ERA=${BENCH_ERA:-legacy} taskset -c 1 wrk -t1 -c50 -s "$HERE/lib/call.lua" -d"$1s" --timeout 10s "$url"
    fi
  }
  load 2 >/dev/null
  callgrind_control -z "$SERVER" >/dev/null 2>&1
  load "$SECS" >"$WORK/$name.wrk"
  callgrind_control -d "$SERVER" >/dev/null 2>&1
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
  # The dump requested above is the file's first part; the one written at exit counts nothing.
  python3 - "$name" "$mode" "$WORK/$name.wrk" "$out.1" <<'EOF'
import json, re, sys
name, mode, wrk, dump = sys.argv[1:]
w = json.loads(re.search(r"^BENCHJSON (.*)$", open(wrk).read(), re.M).group(1))
errors = sum(w.get(k, 0) for k in ("bad_status", "bad_body", "no_sid", "err_connect", "err_read", "err_write", "err_timeout"))
total = next(int(l.split()[1]) for l in open(dump) if l.startswith("summary:"))
print(name, mode, w["sessions"] if mode == "churn" else w["requests"], errors, total)
EOF
}

say "user-space instructions per call (1 session x 50 connections) and per session lifecycle (4 connections), ${SECS} s each under callgrind"
results="$WORK/results"
measure floor call no -- "$FLOOR" >>"$results"
measure mcpd call yes -- "$MCPD" >>"$results"
# The same echo call in protocol 2026-07-28: no session, the envelope and headers on each call.
BENCH_ERA=modern measure mcpd-modern call no -- "$MCPD" >>"$results"
measure rmcp-nd call yes NODELAY=1 -- "$RMCP" >>"$results"
measure mcpd churn no -- "$MCPD" >>"$results"
measure rmcp-nd churn no NODELAY=1 -- "$RMCP" >>"$results"
python3 - "$results" "$SECS" "$JSON" <<'EOF'
import json, sys
rows = [l.split() for l in open(sys.argv[1])]
per = {}
failed = False
measured = []
for name, mode, n, err, total in rows:
    n, err, total = int(n), int(err), int(total)
    per[name, mode] = total / n if n else None
    failed |= err > 0 or not n
    measured.append({"peer": name, "mode": mode, "count": n, "errors": err, "instructions": total,
                     "per_each": per[name, mode]})
    unit = "lifecycles" if mode == "churn" else "calls"
    each = f"{per[name, mode]:9,.0f}" if n else "        -"
    print(f"callgrind: {name:8s} {n:7d} {unit:10s} {err} errors  {each} instructions each")
def ratio(a, b, label):
    if per.get(a) and per.get(b):
        print(f"callgrind: {label} {per[a] / per[b]:.2f}x")
ratio(("mcpd", "call"), ("floor", "call"), "per call, mcpd / floor")
ratio(("mcpd-modern", "call"), ("mcpd", "call"), "per call, mcpd 2026-07-28 / mcpd in a session")
ratio(("rmcp-nd", "call"), ("mcpd", "call"), "per call, rmcp (TCP_NODELAY) / mcpd")
ratio(("rmcp-nd", "churn"), ("mcpd", "churn"), "per lifecycle, rmcp (TCP_NODELAY) / mcpd")
if sys.argv[3]:
    with open(sys.argv[3], "w") as f:
        json.dump({"seconds": int(sys.argv[2]), "failed": failed, "rows": measured}, f, indent=1)
sys.exit(1 if failed else 0)
EOF
