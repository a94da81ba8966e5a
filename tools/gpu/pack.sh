#!/usr/bin/env bash
# Builds the CUDA test binaries here (Bazel, nvcc) and packs them into one folder for a GPU machine
# that has no Bazel and no Debian development libraries: tools/gpu/run.sh runs them there.
#
#   tools/gpu/pack.sh [TARGET...]       default: every cc_test under //tests/cuda/...
#
# Environment:
#   PACK_DIR=gpu_bundle           where the bundle goes (repository-relative; git-ignored)
#   PACK_OUTPUT_BASE=/tmp/ob_cuda a Bazel output base of its own (then the bazel-* symlinks of the
#                                 checkout are left alone and the main output base is not blocked)
#   PACK_JOBS=2                   bazel --jobs
#   PACK_LIMIT_BYTES=60000000     the bundle must stay under this (the device tool carries 64 MiB)
#
# PACK_DIR/bin/     the test binaries, debug sections stripped
# PACK_DIR/tools/   //experiments:speed (the speed benchmark, run with --device=cuda) and its
#                   PyTorch twin tools/bench_pytorch.py with the fixtures it imports
# PACK_DIR/lib/     every shared library they load that the GPU machine may lack (libgomp, oneDNN,
#                   ...), found with ldd
# PACK_DIR/run.sh   tools/gpu/run.sh; PACK_DIR/MANIFEST.txt: commit, date, targets, libraries
# bin/, tools/ and lib/ are packed into PACK_DIR/payload.tar.xz, which run.sh unpacks: every binary
# holds the whole CUDA backend (its kernels for sm_90 plus PTX, linked whole so that the backend
# registers itself), about 9 MB each, and xz shares those bytes across binaries (140 MB -> ~21 MB).
#
# Not copied: glibc, libstdc++, libgcc_s (the GPU machine's own are as new or newer) and the CUDA
# and driver libraries (libcuda, cudart, cuBLAS, cuDNN: hundreds of MB); run.sh finds those on the
# GPU machine, in its CUDA install or PyTorch's. Device tool: command "gpu_bundle/run.sh",
# carry ["gpu_bundle"].
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bundle=${PACK_DIR:-gpu_bundle}
limit=${PACK_LIMIT_BYTES:-60000000}

bazel_cmd=(bazel)
build_opts=(--config=cuda "--jobs=${PACK_JOBS:-2}")
if [ -n "${PACK_OUTPUT_BASE:-}" ]; then
  bazel_cmd+=(--output_base="$PACK_OUTPUT_BASE")
  build_opts+=(--symlink_prefix=/)
fi

nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
if [ ! -x "$nvcc" ]; then
  echo "pack: no nvcc at $nvcc: install CUDA 13 + cuDNN 9 (or set CUDA_HOME) to build --config=cuda" >&2
  exit 1
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("${bazel_cmd[@]}" query --noshow_progress 'kind(cc_test, //tests/cuda/...)' 2>/dev/null)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "pack: no test targets found under //tests/cuda/..." >&2
  exit 1
fi

tool_targets=(//experiments:speed)
echo "pack: building ${targets[*]} ${tool_targets[*]} with ${build_opts[*]}"
"${bazel_cmd[@]}" build "${build_opts[@]}" "${targets[@]}" "${tool_targets[@]}"
bin_dir=$("${bazel_cmd[@]}" info --config=cuda bazel-bin 2>/dev/null)

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/tools/fixtures"

# Left to the GPU machine: the C/C++ runtime, and everything CUDA or driver.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libresolv\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libcudnn|libnvidia|libnvrtc|libnvJitLink|libnccl)'

declare -A copied=()
for target in "${targets[@]}" "${tool_targets[@]}"; do
  rel=${target#//}
  rel=${rel/://}  # //tests/cuda:conv_cudnn_test -> tests/cuda/conv_cudnn_test
  bin="$bin_dir/$rel"
  if [ ! -x "$bin" ]; then
    echo "pack: $target built no executable at $bin" >&2
    exit 1
  fi
  name=$(basename "$bin")
  dest=bin
  [[ " ${tool_targets[*]} " == *" $target "* ]] && dest=tools
  cp "$bin" "$bundle/$dest/$name"
  chmod u+w "$bundle/$dest/$name"
  strip --strip-debug "$bundle/$dest/$name" 2>/dev/null || true
  # ldd from the binary's own place, so that its $ORIGIN runpath finds Bazel's _solib libraries.
  while read -r lib arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then
      echo "pack: $target needs $lib, which ldd cannot find here" >&2
      exit 1
    fi
    [[ "$lib" =~ $skip ]] && continue
    if [ -z "${copied[$lib]:-}" ]; then
      cp -L "$path" "$bundle/lib/$lib"
      chmod u+w "$bundle/lib/$lib"
      strip --strip-debug "$bundle/lib/$lib" 2>/dev/null || true
      copied[$lib]=$path
    fi
  done < <(ldd "$bin")
done

{
  echo "bundle made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "nvcc $("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "targets: ${targets[*]} ${tool_targets[*]}"
  echo "libraries bundled:"
  for lib in "${!copied[@]}"; do echo "  $lib <- ${copied[$lib]}"; done | sort
} >"$bundle/MANIFEST.txt"
cp tools/gpu/run.sh "$bundle/run.sh"
cp tools/bench_pytorch.py "$bundle/tools/"
cp tools/fixtures/unet_reference.py tools/fixtures/resnet50_torch.py "$bundle/tools/fixtures/"

raw_bytes=$(du -sb "$bundle" | cut -f1)
n_bins=$(ls "$bundle/bin" | wc -l)
tar -C "$bundle" -cf - bin lib tools | xz -T2 -6 >"$bundle/payload.tar.xz"
rm -rf "$bundle/bin" "$bundle/lib" "$bundle/tools"
bytes=$(du -sb "$bundle" | cut -f1)
echo "pack: $n_bins test binaries + tools/speed, ${#copied[@]} libraries: $raw_bytes bytes, $bytes packed in $bundle/"
if [ "$bytes" -ge "$limit" ]; then
  echo "pack: FAILED: the bundle is $bytes bytes, over the limit of $limit (PACK_LIMIT_BYTES)" >&2
  exit 1
fi
echo "pack: on the GPU machine: $bundle/run.sh (device tool: carry [\"$bundle\"])"
