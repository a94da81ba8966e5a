#!/usr/bin/env bash
# Runs the CUDA checks of a bundle made by tools/gpu/pack.sh, on a GPU machine without Bazel, in at
# most 8 minutes, and ends with a summary table and the line `N passed, N failed, N skipped`.
#
#   run.sh [BUNDLE_DIR]     default: the folder this script is in if it holds bin/, else gpu_bundle/
#
# Checks (one table row each):
#   bundle        the bundle is complete (MANIFEST, binaries)                       CPU side
#   libraries     every binary finds every shared library it needs                  CPU side
#   <test binary> runs it (gtest XML and log to $OUT); on a machine without a GPU the binaries still
#                 start and their GPU tests skip, saying why                         CPU + GPU
#   memcheck ...  compute-sanitizer --tool memcheck over one ResNet-50 training step
#                 (model_cuda_test), the kernel tests and the generic strided kernels GPU only
#   racecheck ... compute-sanitizer --tool racecheck over the training step and the
#                 shared-memory kernels (fixed-tree sums)                            GPU only
#   speed ...     tools/speed --device=cuda (fp32 deterministic, and --fast: TF32) beside
#                 tools/bench_pytorch.py (fp32, TF32, bf16 channels_last) on ResNet-50 training
#                 (batch 128, 224x224) and U-Net training (batch 32, 224x224); a table of img/s,
#                 ratios, % of the bf16 peak and peak memory follows the summary      GPU only
# The bit-reproducibility check is model_cuda_test's TrainingIsBitReproducibleInDeterministicMode
# (two fresh 3-step trainings, losses and weights compared bit for bit).
# A test binary's row is `failed` if any of its tests failed, `skipped` if all skipped, else `passed`
# (its detail says how many skipped and why). On a machine whose nvidia-smi sees a GPU, a skipped
# test counts as a failure. The last line counts test cases (each binary's, from its XML) plus
# one for every other row, so GPU tests that skipped here show up in the skipped count.
#
# Environment: OUT (default BUNDLE_DIR/out) for logs and XML; RUN_BUDGET_S (default 470) the whole
# run's time budget in seconds: each step gets what is left, capped per step.
# Exit status: non-zero if any row failed.
set -uo pipefail

start=$SECONDS
budget=${RUN_BUDGET_S:-470}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# pack.sh ships bin/, lib/ and tools/ as payload.tar.xz: unpack it beside this script once (with
# Python's tarfile where there is no xz).
if [ "$#" -eq 0 ] && [ -f "$here/payload.tar.xz" ] && [ ! -d "$here/bin" ]; then
  echo "== unpacking $here/payload.tar.xz"
  if command -v xz >/dev/null 2>&1; then
    tar -C "$here" -xJf "$here/payload.tar.xz"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$here/payload.tar.xz" "$here"
  fi
fi
if [ "$#" -gt 0 ]; then
  bundle="$1"
elif [ -d "$here/bin" ]; then
  bundle="$here"  # the copy inside the bundle
else
  bundle="$here/../../gpu_bundle"
fi

rows=()  # "name|result|seconds|detail|passed failed skipped" (test-case counts; empty: count the row)
add_row() { rows+=("$1|$2|$3|$4|${5:-}"); echo "run: $1: $2 ($4)"; }
left() { echo $((budget - (SECONDS - start))); }
# A step's time limit: what is left of the budget, at most $1 seconds.
limit() { local l; l=$(left); [ "$l" -gt "$1" ] && l=$1; [ "$l" -lt 1 ] && l=1; echo "$l"; }

# ---------------------------------------------------------------- bundle (CPU side)
t0=$SECONDS
if [ -d "$bundle/bin" ] && [ -n "$(ls -A "$bundle/bin" 2>/dev/null)" ]; then
  bundle="$(cd "$bundle" && pwd)"
  echo "== bundle $bundle"
  cat "$bundle/MANIFEST.txt" 2>/dev/null || echo "(no MANIFEST.txt)"
  add_row bundle passed $((SECONDS - t0)) "$(ls "$bundle/bin" | wc -l) binaries"
else
  add_row bundle failed $((SECONDS - t0)) "no binaries in $bundle/bin: make the bundle with tools/gpu/pack.sh where Bazel and CUDA are"
fi
if [ -n "${OUT:-}" ]; then out=$OUT; elif [ -d "$bundle/bin" ]; then out="$bundle/out"; else out=""; fi
if [ -z "$out" ] || ! mkdir -p "$out" 2>/dev/null; then out=$(mktemp -d); fi

# ---------------------------------------------------------------- GPU present?
gpu_reason=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
  gpu_reason="no nvidia-smi: no NVIDIA driver on this machine"
elif ! gpus=$(nvidia-smi -L 2>&1) || [ -z "$gpus" ]; then
  gpu_reason="nvidia-smi sees no GPU: ${gpus:-no output}"
else
  echo "== GPUs"
  echo "$gpus"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null || true
fi

# ---------------------------------------------------------------- libraries (CPU side)
# The bundle's own libraries first, then the CUDA libraries it leaves out: from PyTorch's install
# (torch/lib and the nvidia-* wheels beside it), then the usual toolkit and distribution folders.
lib_path="$bundle/lib"
add_dir() { [ -d "$1" ] && [[ ":$lib_path:" != *":$1:"* ]] && lib_path="$lib_path:$1"; return 0; }
torch_lib=$(timeout 60 python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))' 2>/dev/null)/lib
if [ "$torch_lib" != "/lib" ] && [ -d "$torch_lib" ]; then
  add_dir "$torch_lib"
  for d in "$(dirname "$(dirname "$torch_lib")")"/nvidia/*/lib "$(dirname "$(dirname "$torch_lib")")"/nvidia/*/*/lib; do
    [ -d "$d" ] && add_dir "$d"
  done
fi
for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64; do
  add_dir "$d"
done
export LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

t0=$SECONDS
missing_all=""
for bin in "$bundle"/bin/* "$bundle"/tools/speed; do
  [ -x "$bin" ] || continue
  missing=$(ldd "$bin" 2>&1 | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
  [ -n "$missing" ] && missing_all="$missing_all$(basename "$bin"): $missing; "
done
if [ -d "$bundle/bin" ] && [ -z "$missing_all" ]; then
  add_row libraries passed $((SECONDS - t0)) "every binary finds its libraries"
elif [ -d "$bundle/bin" ]; then
  add_row libraries failed $((SECONDS - t0)) "missing: $missing_all"
fi

# ---------------------------------------------------------------- the test binaries
# Counts of one gtest XML file: "passed failed skipped", test cases.
count_xml() {
  python3 - "$1" <<'PY' 2>/dev/null || echo "0 1 0"
import sys
import xml.etree.ElementTree as ET
p = f = s = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        f += 1
    elif case.find("skipped") is not None or case.get("result") == "skipped" or case.get("status") == "notrun":
        s += 1
    else:
        p += 1
print(p, f, s)
PY
}

for bin in "$bundle"/bin/*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  t0=$SECONDS
  echo "== $name"
  timeout "$(limit 240)" "$bin" --gtest_output="xml:$out/$name.xml" >"$out/$name.log" 2>&1
  rc=$?
  tail -n 60 "$out/$name.log"
  if [ ! -s "$out/$name.xml" ]; then
    why="exit $rc, no XML"
    [ "$rc" -eq 124 ] && why="timed out"
    add_row "$name" failed $((SECONDS - t0)) "$why; see $out/$name.log"
    continue
  fi
  read -r p f s <<<"$(count_xml "$out/$name.xml")"
  detail="$p passed, $f failed, $s skipped test cases"
  if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
    [ "$f" -eq 0 ] && f=1  # crashed after writing the XML: count the binary as one failure
    add_row "$name" failed $((SECONDS - t0)) "$detail, exit $rc" "$p $f $s"
  elif [ "$s" -gt 0 ] && [ -z "$gpu_reason" ]; then
    add_row "$name" failed $((SECONDS - t0)) "$detail: a GPU is present, nothing may skip" "$p $((f + s)) 0"
  elif [ "$p" -eq 0 ]; then
    add_row "$name" skipped $((SECONDS - t0)) "$detail${gpu_reason:+: $gpu_reason}" "$p $f $s"
  elif [ "$s" -gt 0 ]; then
    add_row "$name" passed $((SECONDS - t0)) "$detail; the skipped need a GPU: $gpu_reason" "$p $f $s"
  else
    add_row "$name" passed $((SECONDS - t0)) "$detail" "$p $f $s"
  fi
done

# ---------------------------------------------------------------- compute-sanitizer (GPU only)
sanitizer=""
for c in compute-sanitizer ${CUDA_HOME:+"$CUDA_HOME/bin/compute-sanitizer"} /usr/local/cuda/bin/compute-sanitizer \
         /usr/local/cuda-13*/bin/compute-sanitizer; do
  if command -v "$c" >/dev/null 2>&1; then sanitizer=$(command -v "$c"); break; fi
done
# row|tool|binary|gtest filter|seconds at most
run_sanitizer() {
  local row tool binary filter cap target t0 rc
  IFS='|' read -r row tool binary filter cap <<<"$1"
  target="$bundle/bin/$binary"
  t0=$SECONDS
  if [ -n "$gpu_reason" ]; then
    add_row "$row" skipped 0 "needs a GPU: $gpu_reason"
  elif [ -z "$sanitizer" ]; then
    add_row "$row" failed 0 "compute-sanitizer not found (CUDA toolkit's bin/)"
  elif [ ! -x "$target" ]; then
    add_row "$row" failed 0 "no $target in the bundle"
  elif [ "$(left)" -lt 20 ]; then
    add_row "$row" failed 0 "no time left of the ${budget}s budget"
  else
    echo "== compute-sanitizer --tool $tool $binary --gtest_filter=$filter"
    timeout "$(limit "$cap")" "$sanitizer" --tool "$tool" --error-exitcode 99 "$target" --gtest_filter="$filter" \
      >"$out/$row.log" 2>&1
    rc=$?
    tail -n 25 "$out/$row.log"
    case $rc in
      0) add_row "$row" passed $((SECONDS - t0)) "no errors reported ($binary $filter)" ;;
      124) add_row "$row" failed $((SECONDS - t0)) "timed out after ${cap}s; see $out/$row.log" ;;
      99) add_row "$row" failed $((SECONDS - t0)) "errors reported; see $out/$row.log" ;;
      *) add_row "$row" failed $((SECONDS - t0)) "the tests failed under the tool (exit $rc); see $out/$row.log" ;;
    esac
  fi
}
step_filter="ModelCuda.OneTrainingStepForTheSanitizers"
run_sanitizer "memcheck-train-step|memcheck|model_cuda_test|$step_filter|150"

# ---------------------------------------------------------------- speed beside PyTorch (GPU only)
speed_bin="$bundle/tools/speed"
torch_bench="$bundle/tools/bench_pytorch.py"
speed_rows=()  # "config|mode|framework|json line or empty"
# config: model:batch:size
for config in resnet50:128:224 unet:32:224; do
  IFS=: read -r model batch size <<<"$config"
  row="speed-$model-b$batch"
  t0=$SECONDS
  if [ -n "$gpu_reason" ]; then
    add_row "$row" skipped 0 "needs a GPU: $gpu_reason"
    continue
  fi
  if [ ! -x "$speed_bin" ]; then
    add_row "$row" failed 0 "no $speed_bin in the bundle"
    continue
  fi
  common="--model=$model --mode=train --batch=$batch --size=$size --iters=5 --warmup=2 --json"
  failed=""
  for mode in "medtl fp32|$speed_bin $common --device=cuda" \
              "medtl tf32 (--fast)|$speed_bin $common --device=cuda --fast" \
              "torch fp32|python3 $torch_bench $common --device=cuda --precision=fp32" \
              "torch tf32|python3 $torch_bench $common --device=cuda --precision=tf32" \
              "torch bf16 channels_last|python3 $torch_bench $common --device=cuda --precision=bf16 --channels_last"; do
    name=${mode%%|*}
    cmd=${mode#*|}
    if [ "$(left)" -lt 30 ]; then
      speed_rows+=("$config|$name|")
      failed="$failed $name: no time left;"
      continue
    fi
    log="$out/$row-${name// /_}.log"
    echo "== $row $name: $cmd"
    timeout "$(limit 90)" $cmd >"$log" 2>&1
    rc=$?
    tail -n 6 "$log"
    json=$(grep '^{' "$log" | tail -n 1)
    speed_rows+=("$config|$name|$json")
    if [ "$rc" -ne 0 ] || [ -z "$json" ]; then
      case $name in medtl*) failed="$failed $name: exit $rc (see $log);" ;; esac
    fi
  done
  if [ -n "$failed" ]; then
    add_row "$row" failed $((SECONDS - t0)) "$failed"
  else
    add_row "$row" passed $((SECONDS - t0)) "figures in the speed table below"
  fi
done

run_sanitizer "racecheck-train-step|racecheck|model_cuda_test|$step_filter|120"
run_sanitizer "memcheck-kernels|memcheck|kernels_cuda_test|*|90"
run_sanitizer "memcheck-strided|memcheck|strided_cuda_test|-StridedCuda.SumStrategies*|90"
run_sanitizer "racecheck-sums|racecheck|kernels_cuda_test|KernelsCuda.Sum*|90"
run_sanitizer "racecheck-reductions|racecheck|strided_cuda_test|StridedCuda.Sum*:StridedCuda.Max*-StridedCuda.SumStrategies*|90"

# ---------------------------------------------------------------- summary
n_p=0 n_f=0 n_s=0
echo
echo "== summary (${bundle:-?}, $((SECONDS - start)) s)"
printf '%-24s %-8s %5s  %s\n' check result secs detail
any_failed=0
for row in "${rows[@]}"; do
  IFS='|' read -r name result secs detail counts <<<"$row"
  printf '%-24s %-8s %5s  %s\n' "$name" "$result" "$secs" "$detail"
  [ "$result" = failed ] && any_failed=1
  if [ -n "$counts" ]; then
    read -r p f s <<<"$counts"
    n_p=$((n_p + p)) n_f=$((n_f + f)) n_s=$((n_s + s))
  else
    case $result in passed) n_p=$((n_p + 1)) ;; failed) n_f=$((n_f + 1)) ;; *) n_s=$((n_s + 1)) ;; esac
  fi
done
echo "(counts: test cases of the binaries, plus one per other check)"
if [ "${#speed_rows[@]}" -gt 0 ]; then
  echo
  echo "== speed (training img/s, median of 5 steps after 2 warm-up; ratio = medtl / PyTorch in the same precision)"
  printf '%s\n' "${speed_rows[@]}" | python3 -c '
import json, sys
rows = {}
for line in sys.stdin.read().splitlines():
    config, name, js = line.split("|", 2)
    rows.setdefault(config, {})[name] = json.loads(js) if js.strip() else None
print("| config | run | img/s | ratio to PyTorch | GFLOP/s | % of bf16 peak | peak GPU MiB |")
print("|---|---|---|---|---|---|---|")
twin = {"medtl fp32": "torch fp32", "medtl tf32 (--fast)": "torch tf32"}
for config, runs in rows.items():
    for name, r in runs.items():
        if r is None:
            print("| %s | %s | failed | | | | |" % (config, name))
            continue
        t = runs.get(twin.get(name, ""))
        ratio = "%.2f" % (r["img_per_s"] / t["img_per_s"]) if t else ""
        print("| %s | %s | %.1f | %s | %.0f | %.1f | %.0f |" % (config, name, r["img_per_s"], ratio, r["gflops"],
              r["pct_of_peak"], r["peak_memory_mib"]))
' || echo "(speed table: could not parse the runs; see $out/speed-*.log)"
fi
echo "$n_p passed, $n_f failed, $n_s skipped"
[ "$any_failed" -eq 0 ]
