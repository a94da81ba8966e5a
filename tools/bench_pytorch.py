#!/usr/bin/env python3
"""PyTorch twin of experiments/speed.cc: the same model, step, shapes and threads, measured the same
way, with Debian's PyTorch (python3-torch; run it with /usr/bin/python3, not a pyenv python3).

    /usr/bin/python3 tools/bench_pytorch.py --model=resnet50|unet --mode=train|infer --batch=N
        --size=S --threads=T [--iters=5] [--warmup=2] [--json]
        [--device=cuda --precision=fp32|tf32|bf16 [--channels_last]]

A step (as experiments/speed.cc):
  resnet50 train  torchvision ResNet-50 (v1.5), 14 outputs, train mode, BCE-with-logits on 0/1
                  targets, backward, Adam (lr 1e-3), zero_grad(set_to_none=True)
  resnet50 infer  eval mode under torch.no_grad()
  unet train      tools/fixtures/unet_reference.py's U-Net (smp Unet("resnet50") layout), the
                  paper's soft Dice loss, backward, Adam (lr 1e-3)
  unet infer      eval mode under torch.no_grad()
GFLOP/s counts what medtl's tensor/flops.h counts: 2 FLOPs per multiply-add of every convolution
and linear layer, once forward, and in training once more for the weight gradient and once more for
the input gradient where the layer's input needs one (not the first convolution's). The sgemm peak
is the best of six 2048^3 float32 matmuls with the same threads. Peak memory is VmHWM.

On a GPU (--device=cuda; the lent GPU machines run it from tools/gpu/run.sh): every step ends with
torch.cuda.synchronize(); fp32 turns TF32 off in cuBLAS and cuDNN (PyTorch lets cuDNN use it by
default), tf32 turns it on, bf16 runs forward and loss under autocast(bfloat16) with float32 master
weights; --channels_last converts model and input to NHWC. cudnn.benchmark is on (timed algorithm
choice, PyTorch's fast setting). Peak memory is torch.cuda.max_memory_allocated (tensor bytes),
and % of peak is against the GPU's dense bf16 peak (H100/H200: 989.4 TFLOP/s) or --peak_gflops.
Without torchvision (a bare PyTorch install) ResNet-50 comes from fixtures/resnet50_torch.py, the
same network.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from resnet50_torch import resnet50  # noqa: E402  (torchvision's when it is installed)


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def sgemm_peak_gflops(n=2048):
    a, b = torch.full((n, n), 0.5), torch.full((n, n), 0.25)
    best = 1e30
    for _ in range(6):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


class FlopCounter:
    """Forward hooks on Conv2d / Linear that add up the step's GEMM work like tensor/flops.h."""

    def __init__(self, model, train):
        self.total, self.train = 0, train
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.register_forward_hook(self.hook)

    def hook(self, module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            w = module.weight
            per_pass = 2 * output.numel() * (w.shape[1] * w.shape[2] * w.shape[3])
        else:
            per_pass = 2 * output.numel() * module.in_features
        passes = 1
        if self.train:
            passes += 1 + (1 if inputs[0].requires_grad else 0)
        self.total += per_pass * passes


def build(args):
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    if args.model == "resnet50":
        model = resnet50(num_classes=14)
        targets = (torch.rand(args.batch, 14) + 0.5).floor()
        loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    else:
        from unet_reference import UnetResNet50, dice_loss
        model = UnetResNet50(classes=1)
        targets = (torch.rand(args.batch, 1, args.size, args.size) > 0.7).float()

        def loss_fn(logits, masks):
            return dice_loss(torch.sigmoid(logits), masks)
    return model, x, targets, loss_fn


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["resnet50", "unet"], default="resnet50")
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak_gflops", type=float, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32", help="GPU only")
    p.add_argument("--channels_last", action="store_true", help="GPU only: NHWC model and input")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gpu = args.device != "cpu"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(torch.device(args.device))
        peak = args.peak_gflops or (989.4e3 if ("H100" in name or "H200" in name) else 0.0)
    else:
        name = "cpu"
        peak = args.peak_gflops or sgemm_peak_gflops()
    load_before = os.getloadavg()[0]

    model, x, targets, loss_fn = build(args)
    model, x, targets = model.to(args.device), x.to(args.device), targets.to(args.device)
    if args.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    train = args.mode == "train"
    model.train(train)
    counter = FlopCounter(model, train)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3) if train else None
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if gpu and args.precision == "bf16"
                else torch.autocast("cpu", enabled=False))

    def step():
        if not train:
            with torch.no_grad(), autocast:
                model(x)
        else:
            with autocast:
                loss = loss_fn(model(x), targets)
            loss.backward()
            adam.step()
            adam.zero_grad(set_to_none=True)
        if gpu:
            torch.cuda.synchronize()

    if gpu:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    times, flops = [], 0
    cpu0, wall0 = cpu_s(), time.perf_counter()
    for _ in range(args.iters):
        counter.total = 0
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        flops = counter.total
    cpu_per_wall = (cpu_s() - cpu0) / (time.perf_counter() - wall0)
    med, best = statistics.median(times), min(times)
    gflops = flops / med / 1e9
    peak_mib = torch.cuda.max_memory_allocated() / 1048576.0 if gpu else peak_rss_mib()
    precision = (args.precision + (" channels_last" if args.channels_last else "")) if gpu else "fp32"
    r = {"framework": "pytorch", "version": torch.__version__, "model": args.model, "mode": args.mode,
         "batch": args.batch, "size": args.size, "threads": args.threads, "device": args.device,
         "device_name": name, "precision": precision,
         "img_per_s": args.batch / med, "best_img_per_s": args.batch / best, "ms_per_step": med * 1e3,
         "gflop_per_step": flops / 1e9, "gflops": gflops, "peak_gflops": peak,
         "pct_of_peak": 100.0 * gflops / peak if peak else 0.0, "peak_memory_mib": peak_mib,
         "cpu_per_wall": cpu_per_wall, "load_before": load_before, "load_after": os.getloadavg()[0]}
    print("torch %s %s %s on %s, batch %d, 3x%dx%d %s, %d threads, OMP_WAIT_POLICY=%s"
          % (torch.__version__, args.model, args.mode, name, args.batch, args.size, args.size, precision,
             args.threads, os.environ.get("OMP_WAIT_POLICY", "(unset)")))
    print("  %d steps after %d warm-up: median %.1f ms/step (%.2f img/s), best %.1f ms (%.2f img/s)"
          % (args.iters, args.warmup, med * 1e3, r["img_per_s"], best * 1e3, r["best_img_per_s"]))
    print("  work %.1f GFLOP/step (%.2f GFLOP/image): %.1f GFLOP/s, %.1f%% of the %s peak %.1f GFLOP/s"
          % (flops / 1e9, flops / 1e9 / args.batch, gflops, r["pct_of_peak"], "dense bf16" if gpu else "sgemm",
             peak))
    print("  peak %s memory %.0f MiB; cpu/wall %.2f; load average %.2f before, %.2f after"
          % ("GPU tensor" if gpu else "resident", peak_mib, cpu_per_wall, load_before, r["load_after"]))
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
