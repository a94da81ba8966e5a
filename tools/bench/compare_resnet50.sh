#!/usr/bin/env bash
# Runs the medtl ResNet-50 benchmark (//experiments/bench:resnet50_bench) and its PyTorch twin
# (tools/bench/torch_resnet50_bench.py) with the same flags, alternating, for several rounds, and
# prints a Markdown table: img/s (median over rounds of each run's median iteration), best
# iteration, CPU time per iteration, peak RSS, and the ratio ours / PyTorch of img/s (above 1: we
# are faster).
#
#   tools/bench/compare_resnet50.sh [--rounds=3] [--threads=2] [--batch=8] [--iters=10] [--warmup=2]
#                                   [--size=224] [--mode=both|infer|train] [--no_cache]
#
# (--no_cache goes to medtl only: its CPU allocator then keeps no freed blocks, as before it had a cache.)
# LOG_DIR=dir tools/bench/compare_resnet50.sh --summarize_only re-prints the table of the runs in dir
# (medtl.<round>.txt and torch.<round>.txt).
# The environment passes through to both: on a shared machine run with OMP_WAIT_POLICY=passive (both
# use libgomp, whose idle threads otherwise spin, taking the core the other thread needs: measured
# here at ~55% of all CPU time and ~2x the wall time of a step when the load average was 6-10).
# Every run's full output is kept in $LOG_DIR (default: a fresh mktemp -d), which the summary
# names. The machine may be shared: the summary prints the load average, and each run's cpu/wall.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3
summarize_only=0
args=()
medtl_args=()
for a in "$@"; do
  case "$a" in
    --rounds=*) rounds="${a#--rounds=}" ;;
    --no_cache) medtl_args+=("$a") ;;
    --summarize_only) summarize_only=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
PY=${TORCH_PYTHON:-/usr/bin/python3}  # Debian's PyTorch lives there, not in the pyenv python3
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/compare_resnet50.XXXXXX)}
mkdir -p "$LOG_DIR"

if [[ $summarize_only == 1 ]]; then  # re-print the table of earlier runs kept in $LOG_DIR
  rounds=$(ls "$LOG_DIR"/medtl.*.txt | wc -l)
else
bazel build //experiments/bench:resnet50_bench >"$LOG_DIR/build.log" 2>&1 || { cat "$LOG_DIR/build.log"; exit 1; }
# Not the bazel-bin symlink: another build with other options (-c opt) may have repointed it.
ours="$(bazel info bazel-bin 2>/dev/null)/experiments/bench/resnet50_bench"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  echo "round $r of $rounds: medtl ..."
  "$ours" "${args[@]}" "${medtl_args[@]}" >"$LOG_DIR/medtl.$r.txt" 2>&1 || { cat "$LOG_DIR/medtl.$r.txt"; exit 1; }
  echo "round $r of $rounds: PyTorch ..."
  "$PY" tools/bench/torch_resnet50_bench.py "${args[@]}" >"$LOG_DIR/torch.$r.txt" 2>&1 ||
    { cat "$LOG_DIR/torch.$r.txt"; exit 1; }
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
fi

"$PY" - "$LOG_DIR" "$rounds" <<'PYEOF'
import statistics, sys
log_dir, rounds = sys.argv[1], int(sys.argv[2])

def parse(path):
    rows, header, details = {}, "", []
    for line in open(path):
        f = line.split()
        if line.startswith(("medtl ", "PyTorch ")):
            header = line.strip()
        elif f and f[0] in ("inference", "train") and len(f) == 9:
            keys = ("median_ms", "min_ms", "img_s", "best_img_s", "cpu_ms", "peak_mib", "tensor_mib", "cpu_wall")
            rows[f[0]] = {k: float(v) if v != "n/a" else float("nan") for k, v in zip(keys, f[1:])}
        elif line.startswith("  "):
            details.append(line.rstrip())
    return header, rows, details

runs = {side: [parse("%s/%s.%d.txt" % (log_dir, side, r)) for r in range(1, rounds + 1)] for side in ("medtl", "torch")}
print(runs["medtl"][0][0])
print(runs["torch"][0][0])
print()
print("| mode | medtl img/s | PyTorch img/s | medtl/PyTorch | best img/s medtl, PyTorch | "
      "CPU s/iter medtl, PyTorch | peak RSS MiB medtl, PyTorch | medtl tensors peak MiB | cpu/wall medtl, PyTorch |")
print("|---|---|---|---|---|---|---|---|---|")
for mode in ("inference", "train"):
    if mode not in runs["medtl"][0][1]:
        continue
    def col(side, key, agg=statistics.median):
        return agg(run[1][mode][key] for run in runs[side])
    print("| %s | %.2f | %.2f | **%.2f** | %.2f, %.2f | %.2f, %.2f | %.0f, %.0f | %.0f | %.2f, %.2f |" % (
        mode, col("medtl", "img_s"), col("torch", "img_s"), col("medtl", "img_s") / col("torch", "img_s"),
        col("medtl", "best_img_s", max), col("torch", "best_img_s", max),
        col("medtl", "cpu_ms") / 1e3, col("torch", "cpu_ms") / 1e3,
        col("medtl", "peak_mib"), col("torch", "peak_mib"), col("medtl", "tensor_mib"),
        col("medtl", "cpu_wall"), col("torch", "cpu_wall")))
print()
print("img/s, CPU s/iter (user + system, all threads), peak RSS: median over %d rounds of each run's median;"
      " best: the fastest iteration of all rounds. cpu/wall well below the thread count means the machine was"
      " busy with other work." % rounds)
print("Per-run img/s (median iteration), medtl | PyTorch:")
for mode in ("inference", "train"):
    if mode in runs["medtl"][0][1]:
        print("  %-9s %s | %s" % (mode, " ".join("%.2f" % r[1][mode]["img_s"] for r in runs["medtl"]),
                                  " ".join("%.2f" % r[1][mode]["img_s"] for r in runs["torch"])))
print("Details of round 1:")
for side in ("medtl", "torch"):
    print("  %s:" % ("medtl" if side == "medtl" else "PyTorch"))
    for d in runs[side][0][2]:
        print("  " + d)
print("logs: %s" % log_dir)
PYEOF
