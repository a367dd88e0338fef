#!/usr/bin/env bash
# The benchmark: mcpd against its peers (bare hyper floor, rmcp, TypeScript SDK) on this machine.
#
#   bash bench/run.sh            # full: 3 interleaved rounds, memory to 50,000 (mcpd 100,000) sessions (~20-25 min)
#   bash bench/run.sh --quick    # smoke: 1 round, short cells, 10,000 sessions (~5 min)
#
# Builds everything (cargo build --release; bench/peers/build.sh; apt-get install wrk if missing),
# runs bench/lib/driver.py (servers on core 0, load on core 1, every process stopped by PID) and, in
# a full run, bench/callgrind.sh (instructions per call), writes
# bench/results/run-<time>[-quick].json, then BENCHMARKS.md and bench/chart.svg
# (bench/lib/report.py). Exits 1 when any cell had errors (the report says FAILED).
# Extra arguments go to the driver (e.g. --rounds 5, --duration 10, --peers mcpd,floor).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
say() { echo "bench: $*"; }
die() { echo "bench: ERROR: $*" >&2; exit 2; }

QUICK=""
ARGS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) ARGS+=("$a") ;;
  esac
done

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on core 0, load generator on core 1)"
command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v python3 >/dev/null || die "python3 missing"

# Node 22, Traefik and redis-server come from the test prerequisites (tests/prereqs.sh).
DEPS_ENV="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}/env.sh"
# shellcheck source=/dev/null
[ -f "$DEPS_ENV" ] && . "$DEPS_ENV"
if [ ! -x "${MCPT_NODE22:-}" ] || [ ! -x "${MCPT_TRAEFIK:-}" ]; then
  say "test prerequisites (Node 22, Traefik) missing: running tests/prereqs.sh"
  bash "$ROOT/tests/prereqs.sh" || die "tests/prereqs.sh failed"
  # shellcheck source=/dev/null
  . "$DEPS_ENV"
fi
export MCPT_REDIS_SERVER="${MCPT_REDIS_SERVER:-/usr/bin/redis-server}"

if ! command -v wrk >/dev/null; then
  say "installing wrk (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null || die "apt-get install wrk failed"
fi
command -v openssl >/dev/null || { apt-get install -y -qq openssl >/dev/null || die "openssl missing"; }

say "building mcpd (cargo build --release)"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
if [ -f "$HERE/peers/build.sh" ]; then
  say "building the peers (bench/peers/build.sh)"
  bash "$HERE/peers/build.sh" || say "WARNING: bench/peers/build.sh failed; peers without a binary are reported as not built"
else
  say "WARNING: bench/peers/build.sh missing; the peers are reported as not built"
fi

# Streams need one descriptor each on both sides: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open-file limit: $(ulimit -n)"

mkdir -p "$HERE/results"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$HERE/results/run-$STAMP${QUICK:+-quick}.json"
say "running (raw results: ${OUT#"$ROOT"/})"
rc=0
python3 "$HERE/lib/driver.py" ${QUICK:+--quick} --out "$OUT" "${ARGS[@]}" || rc=$?
[ -f "$OUT" ] || die "the driver wrote no results (exit $rc)"
[ "$rc" -eq 0 ] || say "WARNING: the driver exited with $rc; reporting what it measured"
# Instructions per call and per lifecycle, counted by callgrind (user space): the steady figure on
# a VM without hardware counters. Merged into the results as "callgrind".
if [ -z "$QUICK" ]; then
  say "counting instructions with callgrind (bench/callgrind.sh)"
  CG="$OUT.callgrind"
  bash "$HERE/callgrind.sh" 8 --json "$CG" || { rc=1; say "WARNING: bench/callgrind.sh failed"; }
  if [ -f "$CG" ]; then
    python3 - "$OUT" "$CG" <<'EOF'
import json, sys
out, cg = sys.argv[1:]
with open(out) as f:
    d = json.load(f)
with open(cg) as f:
    d["callgrind"] = json.load(f)
with open(out, "w") as f:
    json.dump(d, f, indent=1)
EOF
    rm -f "$CG"
  fi
fi
rrc=0
python3 "$HERE/lib/report.py" "$OUT" --md "$ROOT/BENCHMARKS.md" --svg "$HERE/chart.svg" || rrc=$?
if [ "$rc" -ne 0 ] || [ "$rrc" -ne 0 ]; then
  say "FAILED (driver exit $rc, report exit $rrc): see BENCHMARKS.md"
  exit 1
fi
say "done: BENCHMARKS.md, bench/chart.svg, ${OUT#"$ROOT"/}"
