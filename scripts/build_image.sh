#!/usr/bin/env bash
# Build capsdeploy's serving image (deploy/Containerfile) with podman, or docker if podman is absent.
#
#   bash scripts/build_image.sh                     # base built here with debootstrap (no registry needed)
#   BASE=python:3.11-slim-bookworm bash scripts/build_image.sh   # a base from your registry
#   EXTRAS=openvino IMAGE=capsdeploy:ov bash scripts/build_image.sh
#
# Without BASE, a minimal Debian bookworm root filesystem (python3, python3-venv, ca-certificates)
# is made with debootstrap from Debian's package mirror and imported as capsdeploy-base:bookworm,
# once: an existing base image is reused. pip inside the build reaches PyPI through the host's
# network with the host's CA bundle (a build secret, not stored in the image). Prints the image
# name and size.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-capsdeploy:latest}
BASE=${BASE:-}
EXTRAS=${EXTRAS:-}
ENGINE=${CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if ! command -v "$ENGINE" >/dev/null; then
  echo "build_image.sh: neither podman nor docker is installed (apt-get install podman runc)" >&2
  exit 2
fi
if [ -z "$BASE" ]; then
  BASE=capsdeploy-base:bookworm
  if ! "$ENGINE" image exists "$BASE" 2>/dev/null; then
    command -v debootstrap >/dev/null || { echo "build_image.sh: no BASE given and debootstrap is missing (apt-get install debootstrap)" >&2; exit 2; }
    [ "$(id -u)" = 0 ] || { echo "build_image.sh: debootstrap needs root; or set BASE=python:3.11-slim-bookworm" >&2; exit 2; }
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    echo "building the base image $BASE with debootstrap (about a minute)" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" >/dev/null
    tar -C "$rootfs" -c . | "$ENGINE" import -q - "$BASE" >/dev/null
    rm -rf "$rootfs"
  fi
fi
secret=()
[ -s "$CA" ] && secret=(--secret "id=ca,src=$CA")
"$ENGINE" build -q --network host -f deploy/Containerfile --build-arg "BASE=$BASE" \
  --build-arg "EXTRAS=$EXTRAS" "${secret[@]}" -t "$IMAGE" . >/dev/null
size=$("$ENGINE" image inspect "$IMAGE" --format '{{.Size}}')
echo "$IMAGE $((size / 1000000)) MB (base $BASE)"
