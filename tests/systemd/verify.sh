#!/usr/bin/env bash
# Static checks of the .deb, no container needed:
#   tests/systemd/verify.sh target/debian/mcpd_<version>_amd64.deb
#
# 1. contents: /usr/bin/mcpd, the conffile /etc/mcpd/mcpd.toml, both units, maintainer scripts
#    with the generated systemd snippets;
# 2. the packaged mcpd accepts the packaged config (`check-config`), the "#key = value" defaults
#    written in it are the binary's real defaults, and it mentions every key the binary knows;
# 3. `systemd-analyze verify` of mcpd.service and mcpd@a.service: fails on ANY output on stderr
#    (it exits 0 for unknown keys and bad values, which it only reports as "ignoring" warnings);
# 4. `systemd-analyze security --offline=yes --threshold=20` of both (exposure <= 2.0).
#
# The unit checks run with --root=<the extracted package + the host's systemd units>, because
# verify needs ExecStart= to exist and the units they refer to (sysinit.target, ...) to be found.
set -euo pipefail

LOG_PREFIX="verify"
die() { echo "$LOG_PREFIX: ERROR: $*" >&2; exit 1; }
say() { echo "$LOG_PREFIX: $*"; }

[ $# -eq 1 ] || die "usage: $0 PATH/mcpd_<version>_<arch>.deb"
DEB="$1"
[ -f "$DEB" ] || die "$DEB not found (bash packaging/build-deb.sh builds it)"
command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze missing (package systemd)"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb missing"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"
FAILS=0
fail() { echo "$LOG_PREFIX: FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { echo "$LOG_PREFIX: ok: $*"; }

# ---------------------------------------------------------------- 1. contents
dpkg-deb -x "$DEB" "$ROOT"
dpkg-deb -e "$DEB" "$WORK/control"
say "$(basename "$DEB"): $(dpkg-deb -f "$DEB" Package Version Architecture Depends Recommends | tr '\n' ' ')"
for f in usr/bin/mcpd etc/mcpd/mcpd.toml usr/lib/systemd/system/mcpd.service usr/lib/systemd/system/mcpd@.service; do
  [ -f "$ROOT/$f" ] || fail "/$f is not in the package"
done
[ -x "$ROOT/usr/bin/mcpd" ] || fail "/usr/bin/mcpd is not executable"
grep -qx /etc/mcpd/mcpd.toml "$WORK/control/conffiles" 2>/dev/null || fail "/etc/mcpd/mcpd.toml is not a conffile"
grep -q 'deb-systemd-helper enable mcpd.service' "$WORK/control/postinst" || fail "postinst does not enable mcpd.service"
# shellcheck disable=SC2016  # a literal $_dh_action, as in the generated snippet
grep -qF 'deb-systemd-invoke $_dh_action mcpd.service' "$WORK/control/postinst" || fail "postinst does not start/restart mcpd.service"
grep -q 'deb-systemd-invoke stop mcpd.service' "$WORK/control/prerm" || fail "prerm does not stop mcpd.service"
if grep -q '#DEBHELPER#' "$WORK/control/postinst" "$WORK/control/prerm" "$WORK/control/postrm"; then
  fail "a maintainer script still has an unreplaced #DEBHELPER# line"
fi
[ "$FAILS" -gt 0 ] || ok "contents: $(dpkg-deb -c "$DEB" | grep -c '^-') files, conffiles: $(tr '\n' ' ' <"$WORK/control/conffiles")"

# ---------------------------------------------------------------- 2. the packaged config
MCPD="$ROOT/usr/bin/mcpd"
CONF="$ROOT/etc/mcpd/mcpd.toml"
if "$MCPD" check-config --config "$CONF" >"$WORK/effective.toml" 2>"$WORK/check.err"; then
  ok "mcpd check-config accepts /etc/mcpd/mcpd.toml"
else
  fail "mcpd check-config rejects the packaged /etc/mcpd/mcpd.toml: $(cat "$WORK/check.err")"
fi
# The commented "#key = value" lines, uncommented, must change nothing: they are the defaults.
sed -E 's/^#([a-z_]+ = )/\1/' "$CONF" >"$WORK/uncommented.toml"
if "$MCPD" check-config --config "$WORK/uncommented.toml" >"$WORK/uncommented.out" 2>"$WORK/check.err" \
    && cmp -s "$WORK/effective.toml" "$WORK/uncommented.out"; then
  ok "the $(grep -cE '^#[a-z_]+ = ' "$CONF") commented defaults in mcpd.toml are the binary's defaults"
else
  fail "uncommenting the '#key = value' lines of mcpd.toml changes the config (stale defaults?): $(cat "$WORK/check.err"; diff "$WORK/effective.toml" "$WORK/uncommented.out" || true)"
fi
# Every key the binary knows is written in the file (set or as a commented default).
missing=""
section=""
while IFS= read -r line; do
  case "$line" in
    "["*"]") section="$line" ;;
    *" = "*)
      key="${line%% = *}"
      awk -v s="$section" -v k="$key" '
        $0 == s { in_s = 1; next } /^\[/ { in_s = 0 }
        in_s && ($0 ~ "^#?" k " = ") { found = 1 } END { exit !found }' "$CONF" \
        || missing="$missing ${section}${key}"
      ;;
  esac
done <"$WORK/effective.toml"
if [ -z "$missing" ]; then
  ok "mcpd.toml documents all $(grep -c ' = ' "$WORK/effective.toml") keys the binary knows"
else
  fail "mcpd.toml does not mention these keys:$missing"
fi

# ---------------------------------------------------------------- 3. systemd-analyze verify
# The host's own units give verify the targets our units refer to.
mkdir -p "$ROOT/lib/systemd/system"
for d in /lib/systemd/system /usr/lib/systemd/system; do
  if [ -d "$d" ]; then cp -an "$d/." "$ROOT/lib/systemd/system/" 2>/dev/null || true; fi
done
cp -a "$ROOT/usr/lib/systemd/system/mcpd.service" "$ROOT/usr/lib/systemd/system/mcpd@.service" "$ROOT/lib/systemd/system/"
for unit in mcpd.service mcpd@a.service; do
  rc=0
  systemd-analyze verify --root="$ROOT" "$unit" >"$WORK/verify.out" 2>"$WORK/verify.err" || rc=$?
  if [ "$rc" -eq 0 ] && ! [ -s "$WORK/verify.err" ]; then
    ok "systemd-analyze verify $unit: rc 0, no warnings"
  else
    fail "systemd-analyze verify $unit: rc $rc, stderr:"
    sed 's/^/    /' "$WORK/verify.err" >&2
  fi
done

# ---------------------------------------------------------------- 4. systemd-analyze security
for unit in mcpd.service mcpd@a.service; do
  rc=0
  systemd-analyze security --offline=yes --root="$ROOT" --threshold=20 "$unit" >"$WORK/security.out" 2>&1 || rc=$?
  level="$(grep -o 'Overall exposure level for .*' "$WORK/security.out" || true)"
  if [ "$rc" -eq 0 ] && [ -n "$level" ]; then
    ok "systemd-analyze security: $level (threshold 2.0)"
    grep '✗' "$WORK/security.out" | awk '{ $1 = ""; print "    not set:" $0 }' | sed -E 's/ {2,}/  /g'
  else
    fail "systemd-analyze security --threshold=20 $unit: rc $rc, ${level:-no exposure line}"
    tail -n 30 "$WORK/security.out" >&2
  fi
done

if [ "$FAILS" -gt 0 ]; then
  say "$FAILS check(s) failed"
  exit 1
fi
say "all checks passed"
