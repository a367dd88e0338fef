#!/usr/bin/env bash
# Runs the pinned MCP Inspector CLI (@modelcontextprotocol/inspector-cli 1.0.3) with Node 22.
#
#   tests/tools/inspector-cli.sh http://127.0.0.1:8080/mcp --transport http --method tools/list
#   tests/tools/inspector-cli.sh URL --transport http --method tools/call --tool-name echo --tool-arg message=hi
#
# Why a wrapper: 1.0.3's build/index.js picks its package.json with
# fs.existsSync("../package.json") (relative to the *cwd*) but imports it relative to the
# module, so it only works when run from inside its build/ directory.
set -euo pipefail
DEPS="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}"
[ -f "$DEPS/env.sh" ] || { echo "inspector-cli: ERROR: $DEPS/env.sh not found: run tests/prereqs.sh first" >&2; exit 1; }
# shellcheck source=/dev/null
. "$DEPS/env.sh"
cd "$(dirname "$MCPT_INSPECTOR_CLI")"
exec "$MCPT_NODE22" "$MCPT_INSPECTOR_CLI" "$@"
