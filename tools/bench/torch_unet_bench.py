#!/usr/bin/python3
"""PyTorch twin of experiments/bench/unet_bench.cc: the reference U-Net
(tools/fixtures/unet_reference.py, smp's Unet("resnet50") layout), same batch, shape, loss (the
paper's Dice on sigmoid(logits)), optimizer (Adam, lr 1e-3, zero_grad set_to_none) and thread
count, timed the same way; prints the same line.

    /usr/bin/python3 tools/bench/torch_unet_bench.py [--threads=2] [--batch=4] [--size=224]
        [--iters=6] [--warmup=2]

Needs Debian's PyTorch + torchvision (/usr/bin/python3, not the pyenv python3 first on PATH).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from unet_reference import UnetResNet50, dice_loss  # noqa: E402


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = UnetResNet50(classes=1).train()
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
    y = (torch.rand(a.batch, 1, a.size, a.size) > 0.7).float()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    load = os.getloadavg()
    print("torch %s U-Net (ResNet-50 torchvision encoder), batch %d, 3x%dx%d, float32, %d threads, %d steps after %d "
          "warm-up; load average before %.2f" % (torch.__version__, a.batch, a.size, a.size, a.threads, a.iters,
                                                 a.warmup, load[0]))
    total, forward, backward, optim = [], [], [], []
    cpu0 = wall0 = 0.0
    for i in range(a.warmup + a.iters):
        if i == a.warmup:
            cpu0, wall0 = cpu_s(), time.perf_counter()
        t0 = time.perf_counter()
        loss = dice_loss(torch.sigmoid(model(x)), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        adam.step()
        adam.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i < a.warmup:
            continue
        total.append(t3 - t0)
        forward.append(t1 - t0)
        backward.append(t2 - t1)
        optim.append(t3 - t2)
    cpu_per_wall = (cpu_s() - cpu0) / (time.perf_counter() - wall0)
    med, best = statistics.median(total), min(total)
    print("train step: median %.0f ms (%.2f img/s), best %.0f ms (%.2f img/s); forward+loss %.0f ms, backward %.0f ms, "
          "Adam %.0f ms (medians); cpu/wall %.2f; load average after %.2f"
          % (med * 1e3, a.batch / med, best * 1e3, a.batch / best, statistics.median(forward) * 1e3,
             statistics.median(backward) * 1e3, statistics.median(optim) * 1e3, cpu_per_wall, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
