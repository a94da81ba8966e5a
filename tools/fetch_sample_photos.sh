#!/usr/bin/env bash
# Gets the sample photos the ImageNet sanity checks use (chelsea.png, coffee.png,
# motorcycle_left.png) from Debian's python3-skimage package, WITHOUT installing it (and its 100+
# dependencies): `apt-get download` fetches the .deb, `dpkg-deb -x` unpacks it into the cache.
#
#   tools/fetch_sample_photos.sh        -> $CACHE/photos/{chelsea,coffee,motorcycle_left}.png
#
# CACHE = $MEDTL_CACHE, else $HOME/.cache/medtl. Idempotent: does nothing when the photos exist.
set -euo pipefail

say() { echo "fetch_sample_photos: $*"; }
die() { echo "fetch_sample_photos: error: $*" >&2; exit 1; }

CACHE="${MEDTL_CACHE:-${HOME:?neither MEDTL_CACHE nor HOME is set}/.cache/medtl}"
PHOTOS="$CACHE/photos"
NAMES=(chelsea.png coffee.png motorcycle_left.png)

have_all() { for n in "${NAMES[@]}"; do [ -s "$PHOTOS/$n" ] || return 1; done; }
if have_all; then
  say "photos present in $PHOTOS"
  exit 0
fi

mkdir -p "$PHOTOS" || die "cannot create $PHOTOS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder; _apt cannot write to a root-only mktemp dir,
# which only produces a warning, so the download still lands.
(cd "$work" && apt-get download -q python3-skimage >/dev/null 2>"$work/apt.err") || {
  cat "$work/apt.err" >&2
  die "'apt-get download python3-skimage' failed: run 'apt-get update' first (./setup.sh does), and check the network"
}
deb=$(ls "$work"/python3-skimage_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "apt-get download produced no python3-skimage .deb"
dpkg-deb -x "$deb" "$work/unpacked" || die "cannot unpack $deb"
for n in "${NAMES[@]}"; do
  src=$(find "$work/unpacked" -path "*skimage/data/$n" | head -n 1)
  [ -n "$src" ] || die "$n is not in $(basename "$deb")"
  cp "$src" "$PHOTOS/$n"
done
say "wrote ${NAMES[*]} to $PHOTOS (from $(basename "$deb"))"
