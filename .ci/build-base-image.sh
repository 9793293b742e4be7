#!/usr/bin/env bash
# Builds the local stand-in for the images' base, local/base:bookworm, from Debian packages:
# no registry is reachable here, so nothing can be pulled (see TESTRIG.md, "Base image").
# Idempotent: returns at once when the image exists. FORCE=1 rebuilds it.
set -euo pipefail

image="${BASE_IMAGE_TAG:-local/base:bookworm}"
suite="${BASE_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${FORCE:-0}" != "1" ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already exists ($(docker image inspect -f '{{.Id}}' "$image"))"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
  echo "debootstrap is not installed; run .ci/install-docker.sh first" >&2
  exit 1
}

rootfs="$(mktemp -d /tmp/base-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/tmp/debootstrap.log 2>&1 || {
  echo "debootstrap failed; last lines of /tmp/debootstrap.log:" >&2
  tail -n 20 /tmp/debootstrap.log >&2
  exit 1
}
# Downloaded .debs and apt lists are not part of an image; the Dockerfile runs apt-get update itself.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$image" >/dev/null
echo "built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
