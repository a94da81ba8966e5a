#!/usr/bin/env python3
"""PyTorch twin of experiments/bench/resnet50_bench.cc: the same ResNet-50 (torchvision v1.5,
14 outputs), batch, shape, loss (BCE with logits), optimizer (Adam, lr 1e-3, zero_grad set_to_none)
and thread count, timed the same way; prints the same table.

    /usr/bin/python3 tools/bench/torch_resnet50_bench.py [--threads=2] [--batch=8] [--iters=10]
        [--warmup=2] [--size=224] [--mode=both|infer|train] [--profile=steps]

Needs Debian's PyTorch + torchvision (/usr/bin/python3, not the pyenv python3 first on PATH).
Peak RSS is VmHWM, reset (clear_refs 5) before each mode; "tens_MiB" (medtl's peak of bytes held by
tensors) has no PyTorch counterpart on the CPU and prints n/a.
"""
import argparse
import os
import resource
import statistics
import time

import torch
import torchvision


def usage_now():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime, ru.ru_minflt


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def run(warmup, iters, step):
    reset_peak_rss()
    for _ in range(warmup):
        step([0.0, 0.0, 0.0])
    r = {k: [] for k in ("total", "forward", "backward", "optim", "user", "sys", "faults")}
    u_start, t_start = usage_now(), time.perf_counter()
    for _ in range(iters):
        phases = [0.0, 0.0, 0.0]
        u0 = usage_now()
        t0 = time.perf_counter()
        step(phases)
        t1 = time.perf_counter()
        u1 = usage_now()
        r["total"].append(t1 - t0)
        r["forward"].append(phases[0])
        r["backward"].append(phases[1])
        r["optim"].append(phases[2])
        r["user"].append(u1[0] - u0[0])
        r["sys"].append(u1[1] - u0[1])
        r["faults"].append(u1[2] - u0[2])
    u_end = usage_now()
    r["cpu_per_wall"] = (u_end[0] + u_end[1] - u_start[0] - u_start[1]) / (time.perf_counter() - t_start)
    r["peak_mib"] = peak_rss_mib()
    return r


def print_row(name, r, batch):
    med, best = statistics.median(r["total"]), min(r["total"])
    cpu = statistics.median(u + s for u, s in zip(r["user"], r["sys"]))
    print("%-10s %9.1f %9.1f %9.2f %9.2f %9.0f %9.0f %9s %8.2f"
          % (name, med * 1e3, best * 1e3, batch / med, batch / best, cpu * 1e3, r["peak_mib"], "n/a",
             r["cpu_per_wall"]))


def print_details(name, r, phases):
    line = "  %s per iteration (median): user %.0f ms, sys %.0f ms, minor faults %.0f" % (
        name, statistics.median(r["user"]) * 1e3, statistics.median(r["sys"]) * 1e3, statistics.median(r["faults"]))
    if phases:
        line += "; forward %.0f ms, loss+backward %.0f ms, zero_grad+Adam %.0f ms" % (
            statistics.median(r["forward"]) * 1e3, statistics.median(r["backward"]) * 1e3,
            statistics.median(r["optim"]) * 1e3)
    print(line)


# torch.profiler op names (self CPU time) -> the categories resnet50_bench --profile prints.
CATEGORIES = [
    ("conv forward", ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::thnn_conv2d",
                      "aten::_convolution", "aten::convolution", "aten::conv2d", "aten::_nnpack_spatial_convolution")),
    ("conv backward (data + weights)", ("aten::convolution_backward", "aten::mkldnn_convolution_backward",
                                        "aten::_slow_conv2d_backward", "ConvolutionBackward0")),
    ("batch norm forward", ("aten::batch_norm", "aten::_batch_norm_impl_index", "aten::native_batch_norm")),
    ("batch norm backward", ("aten::native_batch_norm_backward", "NativeBatchNormBackward0")),
    ("relu forward", ("aten::relu_", "aten::relu", "aten::clamp_min_", "aten::clamp_min")),
    ("relu backward", ("aten::threshold_backward", "ReluBackward0")),
    ("max-pool forward", ("aten::max_pool2d", "aten::max_pool2d_with_indices")),
    ("max-pool backward", ("aten::max_pool2d_with_indices_backward", "MaxPool2DWithIndicesBackward0")),
    ("adds (residual forward, gradient sums, .grad)", ("aten::add_", "aten::add", "AddBackward0")),
    ("allocation (empty, zeros, copies)", ("aten::empty", "aten::empty_like", "aten::zeros", "aten::zero_",
                                           "aten::fill_", "aten::copy_", "aten::clone", "aten::resize_",
                                           "aten::empty_strided")),
]


def run_profile(model, adam, x, targets, loss_fn, steps):
    """Breakdown of `steps` training steps by op category: forward + backward under torch.profiler
    (self CPU time of each op), the optimizer step timed alone, outside the profiler."""
    import torch.profiler
    model.train()
    totals, optim, ms, calls = [], [], {}, {}
    for _ in range(steps):
        t0 = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            loss_fn(model(x), targets).backward()
        t1 = time.perf_counter()
        adam.step()
        adam.zero_grad(set_to_none=True)
        optim.append(time.perf_counter() - t1)
        totals.append(time.perf_counter() - t0)
        for e in prof.key_averages():
            cat = next((c for c, names in CATEGORIES if e.key in names), "other ops (fc, avg-pool, loss, ...)")
            ms[cat] = ms.get(cat, 0.0) + e.self_cpu_time_total / 1e3 / steps
            calls[cat] = calls.get(cat, 0) + e.count
    total_ms = statistics.median(totals) * 1e3
    ms["zero_grad + Adam step"] = statistics.median(optim) * 1e3
    calls["zero_grad + Adam step"] = steps
    print()
    print("profile of a training step (torch.profiler: self CPU time of each op, mean over %d steps; "
          "the optimizer timed alone)" % steps)
    print("%-50s %9s %7s %6s" % ("category", "ms/step", "share", "calls"))
    for cat, v in sorted(ms.items(), key=lambda kv: -kv[1]):
        print("%-50s %9.1f %6.1f%% %6d" % (cat, v, 100 * v / total_ms, calls[cat] // steps))
    print("%-50s %9.1f %6.1f%%" % ("whole step (median, forward + backward under the profiler)", total_ms, 100.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--mode", choices=["both", "infer", "train"], default="both")
    ap.add_argument("--profile", type=int, default=0,
                    help="after the benchmark, profile this many more training steps by op category")
    a = ap.parse_args()
    iters, warmup = max(1, a.iters), max(0, a.warmup)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    classes = 14
    model = torchvision.models.resnet50(num_classes=classes)
    x = torch.empty(a.batch, 3, a.size, a.size).uniform_(-1.0, 1.0)
    targets = (torch.rand(a.batch, classes) + 0.5).floor()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits

    print("PyTorch %s ResNet-50 (torchvision %s), batch %d, 3x%dx%d, float32, %d threads, %d iters after %d warm-up"
          % (torch.__version__, torchvision.__version__, a.batch, a.size, a.size, torch.get_num_threads(), iters,
             warmup))
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())

    def infer_step(phases):
        with torch.no_grad():
            model(x)

    def train_step(phases):
        t0 = time.perf_counter()
        logits = model(x)
        t1 = time.perf_counter()
        loss_fn(logits, targets).backward()
        t2 = time.perf_counter()
        adam.step()
        adam.zero_grad(set_to_none=True)
        phases[0], phases[1], phases[2] = t1 - t0, t2 - t1, time.perf_counter() - t2

    infer = train = None
    if a.mode != "train":
        model.eval()
        infer = run(warmup, iters, infer_step)
    if a.mode != "infer":
        model.train()
        train = run(warmup, iters, train_step)
    print("load average after:  %.2f %.2f %.2f" % os.getloadavg())
    print("%-10s %9s %9s %9s %9s %9s %9s %9s %8s"
          % ("mode", "median_ms", "min_ms", "img/s", "best_i/s", "cpu_ms", "peak_MiB", "tens_MiB", "cpu/wall"))
    if infer:
        print_row("inference", infer, a.batch)
    if train:
        print_row("train", train, a.batch)
    if infer:
        print_details("inference", infer, False)
    if train:
        print_details("train", train, True)
    if a.profile > 0:
        run_profile(model, adam, x, targets, loss_fn, a.profile)


if __name__ == "__main__":
    main()
