#!/usr/bin/env bash
# Makes a Debian base image from Debian's own packages (debootstrap --variant=minbase, the
# content of debian:SUITE-slim, then `podman import`), for a host that reaches a Debian mirror
# but no container registry: the compose bundle's Dockerfile takes it as RUNTIME_IMAGE (and,
# with OVRUN_BINARY, as BUILD_IMAGE). Prints the image's name on standard output.
#   usage: scripts/debian-base-image.sh [SUITE]        (SUITE: trixie unless given)
#   DEBIAN_MIRROR   the mirror (http://deb.debian.org/debian unless set)
#   OVBACKUP_CACHE  where the root file system's tarball is kept (~/.cache/ovbackup)
# Safe to run again, and at once from several tests: an image podman already holds is kept,
# and a cached tarball is imported without bootstrapping again. RECIPE names this recipe:
# change it when the recipe changes, so that neither cache serves the old one.
set -euo pipefail

suite=${1:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipe=minbase-1
image=localhost/ovbackup-debian:$suite-$recipe
cache=${OVBACKUP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ovbackup}
tarball=$cache/debian-$suite-$recipe.tar

mkdir -p "$cache"
exec 9>"$cache/debian-base-image.lock"
flock 9

if ! podman image exists "$image"; then
  if [ ! -f "$tarball" ]; then
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >&2
    # As the -slim images: no downloaded packages, no package lists (a build runs
    # apt-get update first).
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
  fi
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
fi
echo "$image"
