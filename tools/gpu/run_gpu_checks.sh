#!/usr/bin/env bash
# Runs the CUDA test binaries of gpu_bundle/ on a lent GPU machine, which has no Bazel, and
# summarises. Make the bundle first, on a machine with Bazel and CUDA: tools/gpu/make_bundle.sh.
#
#   tools/gpu/run_gpu_checks.sh [BUNDLE_DIR]      default: gpu_bundle/ at the repository root
#
# With the device tool: command "tools/gpu/run_gpu_checks.sh", carry ["gpu_bundle"]. Each binary
# writes $OUT/<name>.xml (gtest XML) and $OUT/<name>.log ($OUT defaults to BUNDLE_DIR/out).
# The last line is `N passed, N failed, N skipped`; the exit status is non-zero if a test failed,
# a binary could not start, or none ran.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -gt 0 ]; then
  bundle="$1"
elif [ -d "$here/bin" ]; then
  bundle="$here"  # the copy inside the bundle
else
  bundle="$here/../../gpu_bundle"
fi
if [ ! -d "$bundle/bin" ]; then
  echo "run_gpu_checks: no $bundle/bin: make the bundle with tools/gpu/make_bundle.sh (on a machine with Bazel and CUDA)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
bundle="$(cd "$bundle" && pwd)"
out="${OUT:-$bundle/out}"
mkdir -p "$out"

echo "== bundle"
cat "$bundle/MANIFEST.txt" 2>/dev/null || echo "(no MANIFEST.txt)"

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi || echo "nvidia-smi failed (exit $?)"
else
  echo "nvidia-smi not found: no NVIDIA driver on this machine; the GPU tests will skip"
fi

# The bundle's own libraries first, then wherever this machine keeps the CUDA libraries that the
# bundle leaves out (toolkit folders, distribution folders, pip's nvidia-* wheels).
find_lib_dir() {
  local lib="$1" d
  for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13*/lib64 \
           /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64; do
    [ -e "$d/$lib" ] && { echo "$d"; return 0; }
  done
  # pip wheels (nvidia-cudnn-cu13, nvidia-cublas, ...), e.g. under /opt/*/.venv or /usr/local/lib/python3*
  find /opt /usr/local/lib /usr/lib/python3* /root -xdev -name "$lib" -path '*nvidia*' 2>/dev/null | head -n 1 | xargs -r dirname
}
lib_path="$bundle/lib"
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  d=$(find_lib_dir "$lib" || true)
  if [ -z "$d" ]; then
    echo "run_gpu_checks: warning: $lib not found on this machine"
  elif [[ ":$lib_path:" != *":$d:"* ]]; then
    lib_path="$lib_path:$d"
  fi
done
export LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

status=0
ran=0
start_failures=0
for bin in "$bundle"/bin/*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  echo "== $name"
  missing=$(ldd "$bin" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
  if [ -n "$missing" ]; then
    echo "run_gpu_checks: $name cannot start: missing ${missing}(not in the bundle nor on this machine)"
    status=1
    start_failures=$((start_failures + 1))
    continue
  fi
  "$bin" --gtest_output="xml:$out/$name.xml" >"$out/$name.log" 2>&1
  rc=$?
  cat "$out/$name.log"
  ran=$((ran + 1))
  if [ "$rc" -ne 0 ]; then
    echo "run_gpu_checks: $name exited with $rc"
    status=1
  fi
done

echo "== summary"
counts=$(python3 - "$out" <<'PY' 2>/dev/null
import glob, os, sys
import xml.etree.ElementTree as ET
p = f = s = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.xml"))):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"unreadable {path}: {e}", file=sys.stderr)
        f += 1
        continue
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            f += 1
            print(f"FAILED {os.path.basename(path)[:-4]} {name}", file=sys.stderr)
        elif case.find("skipped") is not None or case.get("result") == "skipped" or case.get("status") == "notrun":
            s += 1
        else:
            p += 1
print(p, f, s)
PY
)
if [ -z "$counts" ]; then
  # No python3: count with grep (gtest writes one <testcase per line).
  p=0 f=0 s=0
  for x in "$out"/*.xml; do
    [ -e "$x" ] || continue
    f=$((f + $(grep -c '<failure' "$x" || true)))
    s=$((s + $(grep -c 'result="skipped"' "$x" || true)))
    p=$((p + $(grep -c 'result="completed"' "$x" || true)))
  done
  p=$((p - f)); counts="$p $f $s"
fi
read -r n_passed n_failed n_skipped <<<"$counts"
n_failed=$((n_failed + start_failures))
[ "$n_failed" -ne 0 ] && status=1
if [ "$ran" -eq 0 ]; then
  echo "run_gpu_checks: no test binary ran"
  status=1
fi
if [ "$n_skipped" -ne 0 ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    # On a machine with a working GPU nothing should skip: count it as a failure.
    echo "run_gpu_checks: FAILED: nvidia-smi sees a GPU but $n_skipped test(s) skipped: see the Skipped lines above"
    status=1
  else
    echo "run_gpu_checks: $n_skipped skipped: no usable GPU here (see the Skipped lines above)"
  fi
fi
echo "$n_passed passed, $n_failed failed, $n_skipped skipped"
exit "$status"
