#!/usr/bin/env bash
# Runs experiments/speed.cc (ours) and tools/bench_pytorch.py (Debian's PyTorch) side by side on the
# same configurations, interleaved (ours, PyTorch, ours, PyTorch, ...) for several rounds so that a
# change in the machine's load hits both alike, and prints per configuration the median img/s of
# each, the ratio ours / PyTorch (above 1: we are faster), GFLOP/s, % of the sgemm peak and peak
# memory.
#
#   tools/compare_speed.sh [--rounds=3] [--threads=2] [--iters=5] [--warmup=2] [--fast]
#                          [--configs="resnet50:train:16:224 resnet50:infer:16:224 ..."]
#
# A configuration is model:mode:batch:size[:conv_chunk]; conv_chunk, when given, goes to medtl as
# --conv_chunk (samples per deterministic convolution chunk). The default set is the issue's
# targets: ResNet-50 training at 224 (batch 16) and as the default benchmark trains it (40 px
# crops, batch 32, its config's conv_chunk = 8), ResNet-50 inference at 224 (batch 16), U-Net
# training at 224 (batch 4).
# OMP_WAIT_POLICY defaults to passive for both (idle libgomp threads sleep instead of spinning; on a
# shared machine spinning threads take the core the working one needs); set it to override.
# Every run's output stays in $LOG_DIR (default: a fresh mktemp -d).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 threads=2 iters=5 warmup=2 fast=()
configs="resnet50:train:16:224 resnet50:train:32:40:8 resnet50:infer:16:224 unet:train:4:224"
for a in "$@"; do
  case "$a" in
    --rounds=*) rounds="${a#*=}" ;;
    --threads=*) threads="${a#*=}" ;;
    --iters=*) iters="${a#*=}" ;;
    --warmup=*) warmup="${a#*=}" ;;
    --configs=*) configs="${a#*=}" ;;
    --fast) fast=(--fast) ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "compare_speed.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
PY=${TORCH_PYTHON:-/usr/bin/python3}  # Debian's PyTorch lives there, not in a pyenv python3
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/compare_speed.XXXXXX)}
mkdir -p "$LOG_DIR"

bazel build //experiments:speed >"$LOG_DIR/build.log" 2>&1 || { cat "$LOG_DIR/build.log"; exit 1; }
ours="$(bazel info bazel-bin 2>/dev/null)/experiments/speed"

# The sgemm peak is a property of the machine: measure it once per framework, pass it on.
peak_ours=$("$ours" --model=resnet50 --mode=infer --batch=1 --size=32 --iters=1 --warmup=0 --threads="$threads" --json |
  tail -1 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["peak_gflops"])')
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY, $threads threads, $rounds rounds; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sgemm peak (oneDNN, 2048^3, $threads threads): $peak_ours GFLOP/s; logs in $LOG_DIR"
for r in $(seq 1 "$rounds"); do
  for c in $configs; do
    IFS=: read -r model mode batch size chunk <<<"$c"
    ours_only=()
    [ -n "$chunk" ] && ours_only=(--conv_chunk="$chunk")
    common=(--model="$model" --mode="$mode" --batch="$batch" --size="$size" --threads="$threads" --iters="$iters"
            --warmup="$warmup" --peak_gflops="$peak_ours" --json)
    echo "round $r/$rounds $c: medtl ..."
    "$ours" "${common[@]}" "${fast[@]}" "${ours_only[@]}" >"$LOG_DIR/medtl.$c.$r.txt" 2>&1 || { cat "$LOG_DIR/medtl.$c.$r.txt"; exit 1; }
    echo "round $r/$rounds $c: PyTorch ..."
    "$PY" tools/bench_pytorch.py "${common[@]}" >"$LOG_DIR/torch.$c.$r.txt" 2>&1 || { cat "$LOG_DIR/torch.$c.$r.txt"; exit 1; }
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

"$PY" - "$LOG_DIR" "$rounds" $configs <<'PYEOF'
import json, statistics, sys
log_dir, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def runs(fw, c):
    out = []
    for r in range(1, rounds + 1):
        with open("%s/%s.%s.%d.txt" % (log_dir, fw, c, r)) as f:
            out.append(json.loads(f.read().strip().splitlines()[-1]))
    return out
print("| configuration | medtl img/s | PyTorch img/s | ratio (median of rounds) | medtl GFLOP/s (% peak) "
      "| PyTorch GFLOP/s (% peak) | peak MiB medtl / PyTorch |")
print("|---|---|---|---|---|---|---|")
for c in configs:
    ours, torch = runs("medtl", c), runs("torch", c)
    ratios = [o["img_per_s"] / t["img_per_s"] for o, t in zip(ours, torch)]
    med = lambda rs, k: statistics.median(x[k] for x in rs)
    model, mode, batch, size = c.split(":")[:4]
    chunk = ", conv chunk " + c.split(":")[4] if len(c.split(":")) > 4 else ""
    print("| %s %s, batch %s, %sx%s%s | %.2f | %.2f | **%.2f** (%s) | %.1f (%.0f%%) | %.1f (%.0f%%) | %.0f / %.0f |" % (
        model, mode, batch, size, size, chunk, med(ours, "img_per_s"), med(torch, "img_per_s"), statistics.median(ratios),
        " ".join("%.2f" % x for x in ratios), med(ours, "gflops"), med(ours, "pct_of_peak"), med(torch, "gflops"),
        med(torch, "pct_of_peak"), med(ours, "peak_memory_mib"), med(torch, "peak_memory_mib")))
PYEOF
