#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs every prerequisite (idempotently, pinned),
# then runs, in order, formatting and lint checks, the unit and integration tests (the real binary
# on real loopback sockets), the official MCP conformance suite, and the official TypeScript and
# Python SDK clients; then it builds the .deb, checks it (systemd-analyze verify and security) and
# runs it under real systemd in a systemd-nspawn container (needs root). Every step runs even if
# an earlier one failed; the exit code says whether all passed, and the last line counts the steps.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! bash tests/prereqs.sh; then
    echo "tests/run.sh: installing the test prerequisites failed (see above)" >&2
    echo "steps: 0 passed, 1 failed"
    exit 1
fi
# shellcheck source=/dev/null
. "${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}/env.sh"

for tool in "cargo fmt" "cargo clippy"; do
    if ! $tool --version >/dev/null 2>&1; then
        echo "tests/run.sh: '$tool' is missing from the Rust toolchain (rustup component add ${tool#cargo })" >&2
        exit 1
    fi
done

passed=0
failed=0
failures=()
step() {
    local name=$1
    shift
    echo
    echo "==> $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "==> $name: ok ($((SECONDS - start))s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "==> $name: FAILED ($((SECONDS - start))s)"
    fi
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --locked --all-targets -- -D warnings
step "cargo test" cargo test --locked
step "conformance suite" bash tests/conformance.sh target/debug/mcpd
step "SDK clients" bash tests/clients/run.sh target/debug/mcpd
step "SDK clients through Traefik and three nodes" bash tests/cluster/clients-through-traefik.sh target/debug/mcpd
step "rolling restart under SDK clients, 6 restarts (session adoption, no answer cut)" env ROUNDS=2 bash tests/cluster/rolling-restart-clients.sh target/debug/mcpd
step "rolling restart under SDK clients, adoption off (what clients do on 404)" bash tests/cluster/rolling-restart-clients.sh target/debug/mcpd no-adopt
step "three-node cluster end to end: pinning, misroute, node loss, rolling deploys" bash tests/cluster/cluster-e2e.sh target/debug/mcpd

# The Debian package: build it, check it statically, then run it under real systemd.
DEB="target/debian/(build-deb.sh failed)"
build_deb() {
    local out
    out="$(bash packaging/build-deb.sh)" || return 1
    DEB="$(tail -n 1 <<<"$out")"
    echo "package: $DEB ($(du -h "$DEB" | cut -f1))"
}
step "build .deb (packaging/build-deb.sh)" build_deb
step "package checks (tests/systemd/verify.sh)" bash tests/systemd/verify.sh "$DEB"
step "systemd e2e in systemd-nspawn (tests/systemd/nspawn-e2e.sh)" bash tests/systemd/nspawn-e2e.sh "$DEB"

echo
if ((failed > 0)); then
    echo "failed steps: ${failures[*]}"
fi
echo "steps: $passed passed, $failed failed"
((failed == 0))
