# Helpers for tests/systemd/*.sh (sourced, not run): a cached Debian rootfs and throw-away
# systemd-nspawn containers that boot it with systemd as PID 1.
#
# The recipe is the one measured in /work/shared/research/systemd-nspawn-e2e.md for a host whose
# PID 1 is not systemd: `--register=no --keep-unit` (no machined, no scope from a host systemd),
# the launcher moved into its own cgroup first (nspawn creates payload/ and supervisor/ inside
# the caller's cgroup), `--volatile=overlay` (tmpfs upper layer, the cached image stays clean),
# `--private-network` (only `lo`, so everything the test needs must already be in the image).
#
# The caller sets LOG_PREFIX and WORK (a private temp dir) before using these.
# shellcheck shell=bash

DEPS="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}"
ROOTFS="$DEPS/debian-rootfs"
ROOTFS_SUITE="bookworm"
# Everything the e2e test uses inside the container (--private-network: nothing can be fetched).
ROOTFS_INCLUDE="systemd,systemd-sysv,dbus,redis-server,curl,ca-certificates,procps"
# Bump to rebuild every cached rootfs when the recipe changes.
ROOTFS_RECIPE="1 $ROOTFS_SUITE minbase $ROOTFS_INCLUDE"

die() { echo "$LOG_PREFIX: ERROR: $*" >&2; exit 1; }
say() { echo "$LOG_PREFIX: $*"; }

# Monotonic-ish seconds with milliseconds (for timings).
now() { date +%s.%3N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# The Debian mirror the host's apt uses (deb822 or one-line format); MCPT_DEBIAN_MIRROR overrides.
debian_mirror() {
  if [ -n "${MCPT_DEBIAN_MIRROR:-}" ]; then echo "$MCPT_DEBIAN_MIRROR"; return; fi
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
       | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')"
  echo "${m:-http://deb.debian.org/debian}"
}

# Builds the Debian rootfs once (debootstrap, ~45 s), reuses it afterwards. The stamp holds the
# recipe, so a changed package list rebuilds it. Built next to the final place and renamed, so
# an interrupted debootstrap never leaves a half tree that looks finished.
ensure_rootfs() {
  if [ -f "$ROOTFS/.mcpd-rootfs" ] && [ "$(cat "$ROOTFS/.mcpd-rootfs")" = "$ROOTFS_RECIPE" ] \
      && [ -e "$ROOTFS/etc/os-release" ] && [ -x "$ROOTFS/lib/systemd/systemd" ]; then
    say "rootfs cached: $ROOTFS ($(du -sh "$ROOTFS" 2>/dev/null | cut -f1))"
    return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing (tests/prereqs.sh installs it)"
  local mirror tmp="$ROOTFS.tmp" t0
  mirror="$(debian_mirror)"
  t0="$(now)"
  say "debootstrap --variant=minbase --include=$ROOTFS_INCLUDE $ROOTFS_SUITE ($mirror) -> $ROOTFS"
  rm -rf "$tmp"
  mkdir -p "$DEPS"
  if ! debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" "$ROOTFS_SUITE" "$tmp" "$mirror" \
      >"$DEPS/debootstrap.log" 2>&1; then
    tail -n 20 "$DEPS/debootstrap.log" >&2
    die "debootstrap failed (log: $DEPS/debootstrap.log)"
  fi
  # Throw-away clones: an empty machine-id is filled from --uuid at every boot.
  : >"$tmp/etc/machine-id"
  rm -f "$tmp/var/lib/dbus/machine-id"
  ln -s /etc/machine-id "$tmp/var/lib/dbus/machine-id"
  # No apt caches in the image (it is only read through the overlay).
  rm -rf "$tmp/var/cache/apt/archives/"*.deb
  echo "$ROOTFS_RECIPE" >"$tmp/.mcpd-rootfs"
  rm -rf "$ROOTFS"
  mv "$tmp" "$ROOTFS"
  say "rootfs built in $(elapsed "$t0") s ($(du -sh "$ROOTFS" | cut -f1))"
}

# The cgroup hierarchies the launcher moves into (hybrid: name=systemd v1 + cgroup2 at unified;
# pure cgroup2: /sys/fs/cgroup itself).
cgroup_roots() {
  if [ -d /sys/fs/cgroup/systemd ] && [ -f /sys/fs/cgroup/systemd/cgroup.procs ]; then
    echo /sys/fs/cgroup/systemd
    [ -f /sys/fs/cgroup/unified/cgroup.procs ] && echo /sys/fs/cgroup/unified
  elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo /sys/fs/cgroup
  fi
}

# Whether this machine can run the containers at all; dies with the reason otherwise.
ct_preflight() {
  [ "$(id -u)" -eq 0 ] || die "systemd-nspawn needs root (uid $(id -u))"
  command -v systemd-nspawn >/dev/null 2>&1 || die "systemd-nspawn missing (apt-get install systemd-container; tests/prereqs.sh does)"
  command -v nsenter >/dev/null 2>&1 || die "nsenter missing (util-linux)"
  [ -n "$(cgroup_roots)" ] || die "no writable systemd cgroup hierarchy under /sys/fs/cgroup (cannot boot systemd in a container)"
}

CT_NAME=""
CT_PID=""      # systemd-nspawn
CT_LEADER=""   # the container's PID 1, seen from the host
# ct_start NAME [nspawn args...]: boots $ROOTFS (volatile overlay, private network), waits until
# `systemctl is-system-running` says running/degraded. Sets CT_PID, CT_LEADER.
ct_start() {
  CT_NAME="$1"
  shift
  local pidfile="$WORK/nspawn.pid" roots t0
  roots="$(cgroup_roots | tr '\n' ' ')"
  t0="$(now)"
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # expanded by the inner shell
  setsid bash -c '
    name=$1; pidfile=$2; roots=$3; shift 3
    for h in $roots; do mkdir -p "$h/nspawn-$name" && echo $$ >"$h/nspawn-$name/cgroup.procs" || exit 97; done
    echo $$ >"$pidfile"
    exec systemd-nspawn --quiet --register=no --keep-unit --boot -M "$name" "$@"
  ' ct-boot "$CT_NAME" "$pidfile" "$roots" \
      -D "$ROOTFS" --console=read-only --volatile=overlay --private-network \
      --uuid="$(systemd-id128 new)" "$@" \
      >"$WORK/console.log" 2>&1 </dev/null &
  local launcher=$!
  for _ in $(seq 100); do
    [ -s "$pidfile" ] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.05
  done
  [ -s "$pidfile" ] || { tail -n 20 "$WORK/console.log" >&2; die "the nspawn launcher died before starting (moving into the cgroups $roots failed?)"; }
  CT_PID="$(cat "$pidfile")"
  for _ in $(seq 200); do
    CT_LEADER="$(pgrep -P "$CT_PID" | head -n1 || true)"
    [ -n "$CT_LEADER" ] && break
    kill -0 "$CT_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$CT_LEADER" ]; then
    tail -n 30 "$WORK/console.log" >&2
    die "systemd-nspawn exited before the container's init started (see the console log above)"
  fi
  local state=""
  for _ in $(seq 600); do
    state="$(ct_exec systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running | degraded) break ;; esac
    kill -0 "$CT_PID" 2>/dev/null || break
    sleep 0.1
  done
  case "$state" in
    running | degraded) ;;
    *)
      tail -n 30 "$WORK/console.log" >&2
      die "the container did not finish booting within 60 s (is-system-running: '${state:-no answer}')" ;;
  esac
  if [ "$state" = degraded ]; then
    say "container booted degraded; failed units:"
    ct_exec systemctl --failed --no-legend >&2 || true
  fi
  say "container $CT_NAME booted ($state) in $(elapsed "$t0") s (nspawn pid $CT_PID, init pid $CT_LEADER)"
}

# ct_exec CMD...: runs CMD inside the container (all its namespaces, a clean environment).
ct_exec() {
  nsenter -t "$CT_LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb "$@"
}

# ct_stop: poweroff, wait for nspawn (SIGTERM then SIGKILL if it hangs), remove our cgroups.
# Safe to call twice and when nothing was started.
ct_stop() {
  [ -n "$CT_PID" ] || return 0
  if kill -0 "$CT_PID" 2>/dev/null; then
    local t0
    t0="$(now)"
    [ -z "$CT_LEADER" ] || timeout 10 nsenter -t "$CT_LEADER" -a systemctl poweroff --no-block >/dev/null 2>&1 || true
    for _ in $(seq 300); do kill -0 "$CT_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$CT_PID" 2>/dev/null; then
      say "container did not power off within 30 s: SIGTERM to nspawn $CT_PID"
      kill -TERM "$CT_PID" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$CT_PID" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$CT_PID" 2>/dev/null || true
    fi
    say "container $CT_NAME powered off in $(elapsed "$t0") s"
  fi
  wait "$CT_PID" 2>/dev/null || true
  local h
  for h in $(cgroup_roots); do
    [ -d "$h/nspawn-$CT_NAME" ] || continue
    find "$h/nspawn-$CT_NAME" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ ! -d "$h/nspawn-$CT_NAME" ] || say "WARNING: could not remove cgroup $h/nspawn-$CT_NAME"
  done
  rm -rf "/run/systemd/nspawn/propagate/$CT_NAME" "/run/systemd/nspawn/unix-export/$CT_NAME" 2>/dev/null || true
  CT_PID=""
  CT_LEADER=""
}
