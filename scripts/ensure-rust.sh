#!/bin/sh
# Makes sure `cargo` is at least the rust-version of the workspace's
# Cargo.toml; when it is missing or older, installs the stable toolchain
# with rustup into ~/.cargo (the Makefile puts ~/.cargo/bin first on PATH).
# RUSTUP_INSTALLER_URL replaces https://sh.rustup.rs, e.g. with a mirror.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
if [ -z "$need" ]; then
  echo "no rust-version in $root/Cargo.toml's [workspace.package]" >&2
  exit 1
fi
cargo_home=${CARGO_HOME:-$HOME/.cargo}
installer=${RUSTUP_INSTALLER_URL:-https://sh.rustup.rs}

# The version `cargo --version` reports ("cargo 1.85.0 (…)"), or nothing.
version_of() {
  "$1" --version 2>/dev/null | awk '{ print $2 }' | sed 's/-.*//'
}

new_enough() {
  [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$need" "$1" | sort -V | head -n 1)" = "$need" ]
}

by_hand() {
  echo "Install Rust $need or newer by hand (https://rustup.rs explains how), make sure" >&2
  echo "\`cargo --version\` prints it, and run make again." >&2
  exit 1
}

found=$(command -v cargo || true)
have=""
if [ -n "$found" ]; then
  have=$(version_of "$found")
fi
if new_enough "$have"; then
  exit 0
fi
if [ -z "$found" ]; then
  echo "cargo is not installed; this workspace needs Rust $need or newer."
else
  echo "$found is cargo ${have:-of an unknown version}; this workspace needs Rust $need or newer (edition 2024)."
fi

if [ -x "$cargo_home/bin/rustup" ]; then
  echo "updating the stable toolchain with $cargo_home/bin/rustup"
  "$cargo_home/bin/rustup" toolchain install stable --profile minimal || {
    echo "rustup could not install the stable toolchain (see above)." >&2
    by_hand
  }
  "$cargo_home/bin/rustup" default stable
else
  if ! command -v curl >/dev/null; then
    echo "curl is missing, so rustup cannot be downloaded." >&2
    by_hand
  fi
  script=$(mktemp)
  trap 'rm -f "$script"' EXIT
  echo "installing Rust with rustup from $installer into $cargo_home"
  if ! curl --proto '=https' --tlsv1.2 --silent --show-error --fail \
    --connect-timeout 20 --output "$script" "$installer"; then
    echo "cannot download the Rust installer from $installer (see above)." >&2
    by_hand
  fi
  sh "$script" -y --profile minimal --no-modify-path || {
    echo "the Rust installer failed (see above)." >&2
    by_hand
  }
fi

have=$(version_of "$cargo_home/bin/cargo")
if ! new_enough "$have"; then
  echo "$cargo_home/bin/cargo reports ${have:-no version} after installing; expected $need or newer." >&2
  by_hand
fi
echo "cargo $have installed in $cargo_home/bin"
