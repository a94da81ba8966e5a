#!/usr/bin/env bash
# Builds the CUDA test binaries here, where Bazel and the CUDA toolkit are, and packs them into
# gpu_bundle/ for a GPU machine that has no Bazel: tools/gpu/run_gpu_checks.sh runs them there.
#
#   tools/gpu/make_bundle.sh [TARGET...]     default: every cc_test under //tests/cuda/...
#
# gpu_bundle/bin/  the test binaries
# gpu_bundle/lib/  every shared library they load that the GPU machine may lack (the project's
#                  own _solib .so files, libgomp, oneDNN, HDF5, ...), found with ldd
# gpu_bundle/MANIFEST.txt  commit, date, targets, libraries
#
# Not copied: glibc, libstdc++ and libgcc_s (the GPU machine's own are as new or newer), and the
# CUDA and driver libraries (libcuda, cudart, cuBLAS, cuDNN: hundreds of MB; run_gpu_checks.sh
# finds them on that machine). gpu_bundle/ is git-ignored; give it to the device tool with
# carry=["gpu_bundle"].
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bundle=gpu_bundle

if [ ! -x /usr/local/cuda/bin/nvcc ] && [ ! -x "${CUDA_HOME:-/nonexistent}/bin/nvcc" ]; then
  echo "make_bundle: no nvcc at /usr/local/cuda/bin/nvcc (or \$CUDA_HOME/bin/nvcc): install CUDA 13 + cuDNN 9 to build --config=cuda" >&2
  exit 1
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(bazel query --noshow_progress 'kind(cc_test, //tests/cuda/...)' 2>/dev/null)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "make_bundle: no test targets found under //tests/cuda/..." >&2
  exit 1
fi

echo "make_bundle: building ${targets[*]} with --config=cuda"
bazel build --config=cuda "${targets[@]}"
bin_dir=$(bazel info --config=cuda bazel-bin 2>/dev/null)

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"

# Libraries left to the GPU machine: the C/C++ runtime and everything CUDA or driver.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libresolv\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libcudnn|libnvidia|libnvrtc|libnvJitLink|libnccl)'

declare -A copied=()
for target in "${targets[@]}"; do
  # //tests/cuda:cuda_smoke_test -> tests/cuda/cuda_smoke_test
  rel=${target#//}
  rel=${rel/://}
  bin="$bin_dir/$rel"
  if [ ! -x "$bin" ]; then
    echo "make_bundle: $target built no executable at $bin" >&2
    exit 1
  fi
  cp "$bin" "$bundle/bin/"
  chmod u+w "$bundle/bin/$(basename "$bin")"
  # ldd from the binary's own place, so that its $ORIGIN runpath finds the _solib libraries.
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then
      echo "make_bundle: $target needs $name, which ldd cannot find here" >&2
      exit 1
    fi
    [[ "$name" =~ $skip ]] && continue
    if [ -z "${copied[$name]:-}" ]; then
      cp -L "$path" "$bundle/lib/$name"
      chmod u+w "$bundle/lib/$name"
      copied[$name]=$path
    fi
  done < <(ldd "$bin")
done

{
  echo "bundle made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "nvcc $(/usr/local/cuda/bin/nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "targets: ${targets[*]}"
  echo "libraries bundled:"
  for name in "${!copied[@]}"; do echo "  $name <- ${copied[$name]}"; done | sort
} >"$bundle/MANIFEST.txt"
cp tools/gpu/run_gpu_checks.sh "$bundle/"

echo "make_bundle: $(ls "$bundle/bin" | wc -l) binaries, ${#copied[@]} libraries, $(du -sh "$bundle" | cut -f1) in $bundle/"
echo "make_bundle: on the GPU machine: tools/gpu/run_gpu_checks.sh (device tool: carry [\"gpu_bundle\"])"
