#!/usr/bin/env bash
# Builds the Debian package (target/debian/mediafs_VERSION-1_ARCH.deb, in
# Cargo's target dir) and prints its path: the release binary, its man pages
# and shell completions under target/assets (made by the binary itself, from
# the definitions it parses, so they never drift from it), then `cargo deb`.
#
#   scripts/package.sh              # builds the release binary first
#   scripts/package.sh --no-build   # packages the one already built (the tests do)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || {
  echo "package: cargo-deb is missing; scripts/setup.sh installs it" >&2
  exit 1
}
[ "${1:-}" = --no-build ] || cargo build --release --locked
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
bin="$target_dir/release/mediafs"
[ -x "$bin" ] || { echo "package: no $bin; build it first" >&2; exit 1; }
# cargo-deb reads the assets not under target/release from the crate's dir.
assets=target/assets
rm -rf "$assets"
"$bin" generate man "$assets/man"
"$bin" generate completions "$assets/completions"
cargo deb --no-build --locked
