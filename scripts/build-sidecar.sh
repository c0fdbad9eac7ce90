#!/usr/bin/env bash
# Builds the static bottle-sidecar that runs in the bundle and is copied into every agent
# container (profile `sidecar`: optimised, stripped). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile sidecar --target x86_64-unknown-linux-gnu --bin bottle-sidecar >&2
echo "$PWD/target/x86_64-unknown-linux-gnu/sidecar/bottle-sidecar"
