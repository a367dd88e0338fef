#!/usr/bin/env bash
# Builds the Debian package: target/debian/mcpd_<version>_amd64.deb (release build, stripped),
# with /usr/bin/mcpd, the conffile /etc/mcpd/mcpd.toml, mcpd.service and mcpd@.service, and the
# maintainer scripts from packaging/debian/ (metadata: [package.metadata.deb] in Cargo.toml).
#
#   bash packaging/build-deb.sh        # prints the .deb's path as its last line
#
# Installs the pinned cargo-deb first if it is not there yet (cargo install --locked, ~1 min),
# into $MCPT_TEST_DEPS/cargo-deb (default ~/.cache/mcpd-test-deps/cargo-deb); no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION="3.8.0"
DEPS="${MCPT_TEST_DEPS:-$HOME/.cache/mcpd-test-deps}"
CARGO_DEB_ROOT="$DEPS/cargo-deb"
CARGO_DEB="$CARGO_DEB_ROOT/bin/cargo-deb"

say() { echo "build-deb: $*" >&2; }
die() { echo "build-deb: ERROR: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"

if [ -x "$CARGO_DEB" ] && [ "$("$CARGO_DEB" --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ]; then
  say "cargo-deb $CARGO_DEB_VERSION present ($CARGO_DEB)"
else
  say "cargo install cargo-deb --version $CARGO_DEB_VERSION --locked --root $CARGO_DEB_ROOT"
  start=$SECONDS
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --force --root "$CARGO_DEB_ROOT" >&2 \
    || die "installing cargo-deb $CARGO_DEB_VERSION failed"
  got="$("$CARGO_DEB" --version)"
  [ "$got" = "cargo-deb $CARGO_DEB_VERSION" ] || die "$CARGO_DEB reports '$got', expected cargo-deb $CARGO_DEB_VERSION"
  say "cargo-deb installed in $((SECONDS - start)) s"
fi

# cargo-deb runs `cargo build --release --locked` itself, then strips and packs.
start=$SECONDS
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$CARGO_DEB" --locked --output target/debian/ >"$out" || die "cargo deb failed"
deb="$(tail -n 1 "$out")"
[ -f "$deb" ] || die "cargo deb did not print a .deb path (got '$deb')"
case "$(basename "$deb")" in
  mcpd_*_amd64.deb | mcpd_*_*.deb) ;;
  *) die "unexpected package file name: $deb" ;;
esac
say "built in $((SECONDS - start)) s: $(du -h "$deb" | cut -f1) $(dpkg-deb -f "$deb" Package Version Architecture Depends Recommends 2>/dev/null | tr '\n' ' ')"
echo "$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
