#!/usr/bin/env bash
# Gets the DICOM sample files that Debian's python3-pydicom ships (pydicom/data/test_files: CT,
# MR, CR, RT dose, secondary captures; uncompressed, RLE, JPEG, JPEG-LS, deflated, big endian),
# WITHOUT installing the package: `apt-get download` fetches the .deb, `dpkg-deb -x` unpacks it,
# and the test_files folder is copied into the cache. The DICOM tests (tests/dicom_test.cc) and
# the SIIM-ACR layout test read them from there.
#
#   tools/fetch_dicom_samples.sh        -> $CACHE/dicom/pydicom/{CT_small.dcm, MR_small.dcm, ...,
#                                          dicomdirtests/77654033/CR3/6278 (MONOCHROME1), ...}
#
# CACHE = $MEDTL_CACHE, else $HOME/.cache/medtl. Idempotent: does nothing when the files exist.
set -euo pipefail

say() { echo "fetch_dicom_samples: $*"; }
die() { echo "fetch_dicom_samples: error: $*" >&2; exit 1; }

CACHE="${MEDTL_CACHE:-${HOME:?neither MEDTL_CACHE nor HOME is set}/.cache/medtl}"
DEST="$CACHE/dicom/pydicom"
STAMP="$DEST/.complete"
# The files the tests open; all must be there after a run.
NAMES=(CT_small.dcm MR_small.dcm MR_small_bigendian.dcm MR_small_implicit.dcm MR_small_RLE.dcm
       MR_small_jpeg_ls_lossless.dcm JPEG-lossy.dcm SC_rgb_small_odd.dcm SC_rgb_jpeg_dcmtk.dcm image_dfl.dcm
       JPEG2000.dcm rtdose.dcm dicomdirtests/77654033/CR3/6278 MR_small_expb.dcm MR_small_padded.dcm
       liver_1frame.dcm SC_rgb_rle.dcm SC_rgb_rle_16bit.dcm ExplVR_BigEnd.dcm SC_ybr_full_422_uncompressed.dcm
       rtplan.dcm)

have_all() {
  [ -f "$STAMP" ] || return 1
  for n in "${NAMES[@]}"; do [ -s "$DEST/$n" ] || return 1; done
}
if have_all; then
  say "DICOM samples present in $DEST"
  exit 0
fi

mkdir -p "$DEST" || die "cannot create $DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder; _apt cannot write to a root-only mktemp dir,
# which only produces a warning, so the download still lands.
(cd "$work" && apt-get download -q python3-pydicom >/dev/null 2>"$work/apt.err") || {
  cat "$work/apt.err" >&2
  die "'apt-get download python3-pydicom' failed: run 'apt-get update' first (./setup.sh does), and check the network"
}
deb=$(ls "$work"/python3-pydicom_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "apt-get download produced no python3-pydicom .deb"
dpkg-deb -x "$deb" "$work/unpacked" || die "cannot unpack $deb"
src=$(find "$work/unpacked" -type d -path "*pydicom/data/test_files" | head -n 1)
[ -n "$src" ] || die "pydicom/data/test_files is not in $(basename "$deb")"
cp -R "$src/." "$DEST/" || die "cannot copy the samples to $DEST"
for n in "${NAMES[@]}"; do [ -s "$DEST/$n" ] || die "$n is not in $(basename "$deb")"; done
basename "$deb" >"$STAMP"
say "wrote $(find "$DEST" -type f | wc -l) files to $DEST (from $(basename "$deb"))"
