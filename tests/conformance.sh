#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# tests/tools/package.json) against a freshly started mcpd with the conformance fixtures on.
#
#   tests/conformance.sh target/debug/mcpd
#
# 1. starts `BINARY serve --config <tmp>` on a free 127.0.0.1 port, waits for /healthz;
# 2. runs, with Node 22, suite 0.1.16's default (active) scenarios and `--suite pending`, then
#    suite 0.2.0-alpha.12 (`conformance-alpha`) with `--requirements 2026-07-28` (the stateless
#    protocol: scored and pending scenarios) and `--requirements 2025-11-25` (sessions);
# 3. reads every checks.json the suites wrote and counts checks: SUCCESS = passed,
#    FAILURE or WARNING = failed (the suite itself lets WARNING pass; we don't), INFO = not counted.
#    The tasks extension's scenarios (`tasks-*`, not scored by the suite) are left out: mcpd does
#    not implement the extension.
# Last line: "conformance: N passed, M failed" (checks). Exit 1 on any failure.
#
# Needs tests/prereqs.sh to have run (reads $MCPT_TEST_DEPS/env.sh).
# MCPT_CONFORMANCE_KEEP=DIR keeps the suite's output and the server log in DIR.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=conformance
# shellcheck source=SCRIPTDIR/tools/lib.sh
. "$HERE/tools/lib.sh"

[ $# -eq 1 ] || die "usage: $0 PATH/TO/mcpd"
BINARY="$(resolve_binary "$1")"
load_test_deps
[ -f "$MCPT_CONFORMANCE" ] || die "conformance suite ($MCPT_CONFORMANCE) missing: run tests/prereqs.sh"
[ -f "${MCPT_CONFORMANCE_ALPHA:-}" ] || die "conformance suite 0.2.0 (${MCPT_CONFORMANCE_ALPHA:-MCPT_CONFORMANCE_ALPHA unset}) missing: run tests/prereqs.sh"
# The suite's CLI has a `#!/usr/bin/env node` shebang; keep Node 22 first on PATH in case
# anything it starts looks `node` up (on Node 20 it crashes at import).
PATH="$(dirname "$MCPT_NODE22"):$PATH"
export PATH

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcpd-conformance.XXXXXX")"
# shellcheck disable=SC2317  # invoked from mcpd_cleanup
keep_output() {
  [ -n "${MCPT_CONFORMANCE_KEEP:-}" ] || return 0
  mkdir -p "$MCPT_CONFORMANCE_KEEP"
  cp -r "$WORK"/. "$MCPT_CONFORMANCE_KEEP"/
}
MCPT_KEEP_HOOK=keep_output
trap mcpd_cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
# Only the keys this test needs; the server's defaults fill in the rest.
mcpd_start "$BINARY" "$PORT" <<EOF
[server]
listen = "127.0.0.1:$PORT"

[catalog]
conformance = true

[log]
level = "warn"
EOF
echo "conformance: mcpd (pid $SERVER_PID) up on $BASE"
[ -z "${MCPT_CONFORMANCE_KEEP:-}" ] || echo "conformance: suite output and server log will be kept in $MCPT_CONFORMANCE_KEEP"

# Runs one suite; its output goes to the terminal and to $WORK/<name>.txt. Never aborts
# the script (set -e): the exit status is recorded and judged below.
declare -A SUITE_RC=()
run_suite() {
  local name="$1" cli="$2"; shift 2
  echo "conformance: == suite $name =="
  local rc=0
  "$MCPT_NODE22" "$cli" server --url "$BASE/mcp" -o "$WORK/$name" "$@" \
    >"$WORK/$name.txt" 2>&1 || rc=$?
  # Show the suite's summary ("✓ name: N passed, M failed" per scenario, "Total: ...");
  # the per-scenario progress chatter before it is left in the file. No summary (the CLI
  # crashed, e.g. on a too-old Node): show everything.
  if grep -q '^=== SUMMARY ===' "$WORK/$name.txt"; then
    sed -n '/^=== SUMMARY ===/,$p' "$WORK/$name.txt"
  else
    cat "$WORK/$name.txt"
  fi
  SUITE_RC[$name]=$rc
}
run_suite active "$MCPT_CONFORMANCE"                    # 0.1.16's default suite: 30 scenarios
run_suite pending "$MCPT_CONFORMANCE" --suite pending   # json-schema-2020-12, server-sse-polling
run_suite modern "$MCPT_CONFORMANCE_ALPHA" --requirements 2026-07-28  # 37 scored + 13 not scored
run_suite legacy "$MCPT_CONFORMANCE_ALPHA" --requirements 2025-11-25  # 30 scored + 3 not scored

SERVER_DIED=0
server_alive || SERVER_DIED=1

# Count checks ourselves from checks.json (WARNING counts as a failure here).
export CONF_WORK="$WORK" CONF_RC_ACTIVE="${SUITE_RC[active]}" CONF_RC_PENDING="${SUITE_RC[pending]}" \
  CONF_RC_MODERN="${SUITE_RC[modern]}" CONF_RC_LEGACY="${SUITE_RC[legacy]}" CONF_SERVER_DIED="$SERVER_DIED"
set +e
python3 - <<'PY'
import glob, json, os, re, sys

work = os.environ["CONF_WORK"]
# Scenario results expected per suite, not counting the tasks extension's (see the header).
expected_scenarios = {"active": 30, "pending": 2, "modern": 40, "legacy": 33}
passed = failed = 0
problems = []
for suite, want in expected_scenarios.items():
    rc = int(os.environ[f"CONF_RC_{suite.upper()}"])
    # directory name: server-<scenario>-<timestamp like 2026-11-22T06-09-11-697Z>
    name = lambda path: re.sub(r"^server-|-\d{4}-\d\d-\d\dT[\d-]+Z$", "", os.path.basename(os.path.dirname(path)))
    files = [p for p in sorted(glob.glob(os.path.join(work, suite, "*", "checks.json")))
             if not name(p).startswith("tasks-")]
    suite_failed = 0
    for path in files:
        scenario = name(path)
        try:
            checks = json.load(open(path))
        except Exception as e:  # a truncated/garbled file is a failure, not a crash
            problems.append(f"{suite}/{scenario}: unreadable checks.json: {e}")
            failed += 1; suite_failed += 1
            continue
        for c in checks:
            status = c.get("status")
            if status == "SUCCESS":
                passed += 1
            elif status in ("FAILURE", "WARNING"):
                failed += 1; suite_failed += 1
                msg = c.get("errorMessage") or c.get("description") or ""
                details = json.dumps(c.get("details"))[:400] if c.get("details") else ""
                problems.append(f"{suite}/{scenario}: {status} {c.get('id')} ({c.get('name')}): {msg} {details}".rstrip())
    if len(files) != want:
        problems.append(f"suite {suite}: expected {want} scenario results, found {len(files)}")
        failed += 1; suite_failed += 1
    if rc != 0 and suite_failed == 0:
        problems.append(f"suite {suite}: conformance CLI exited {rc} without a failing check (see its output above)")
        failed += 1
if os.environ["CONF_SERVER_DIED"] == "1":
    problems.append("the server was no longer running after the suites (its log is below)")
    failed += 1
for p in problems:
    print(f"conformance: FAIL {p}")
if passed == 0 and failed == 0:
    print("conformance: FAIL no checks were run")
    failed = 1
# The summary line is printed by the shell below, after the server log, so it stays last.
with open(os.path.join(work, "summary.txt"), "w") as f:
    f.write(f"conformance: {passed} passed, {failed} failed\n")
sys.exit(0 if failed == 0 else 1)
PY
rc=$?
set -e
[ -f "$WORK/summary.txt" ] || { echo "conformance: ERROR: checking the results crashed" >&2; rc=1; echo "conformance: 0 passed, 1 failed" > "$WORK/summary.txt"; }
if [ "$rc" -ne 0 ] && [ -s "$WORK/server.log" ]; then
  server_log_tail
fi
cat "$WORK/summary.txt"
exit "$rc"
