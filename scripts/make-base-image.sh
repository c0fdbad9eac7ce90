#!/usr/bin/env bash
# Makes `debian:bookworm-slim` without a registry: debootstrap a minimal bookworm from this
# machine's own apt mirror and `docker import` it. For CI and offline machines; a no-op when the
# image is already present. Needs root, debootstrap and a running Docker engine.
set -euo pipefail

IMAGE="${IMAGE:-debian:bookworm-slim}"
SUITE="${SUITE:-bookworm}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "make-base-image: $IMAGE is already present"
  exit 0
fi

# The mirror: $MIRROR, else the first Debian URI in the machine's apt sources.
mirror="${MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | grep -v -- '-security' | head -n 1 || true)
fi
if [ -z "$mirror" ]; then
  echo "make-base-image: no apt mirror found in /etc/apt/sources*; set MIRROR=http://..." >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "make-base-image: installing debootstrap"
  apt-get install -y debootstrap >/dev/null
fi

root=$(mktemp -d /tmp/bottle-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "make-base-image: debootstrap $SUITE from $mirror (about 30 s)"
debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >/tmp/bottle-debootstrap.log 2>&1 || {
  echo "make-base-image: debootstrap failed; last lines of /tmp/bottle-debootstrap.log:" >&2
  tail -n 20 /tmp/bottle-debootstrap.log >&2
  exit 1
}
# Keep images small and apt usable inside builds, as the official slim image does.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "make-base-image: imported $IMAGE"
