// Training-step throughput of the U-Net (smp layout, ResNet-50 encoder, float32, CPU): per step a
// train-mode forward, the paper's Dice loss on sigmoid(logits), backward and an Adam step (lr 1e-3),
// in images per second. tools/bench/torch_unet_bench.py does exactly the same in PyTorch with the
// reference U-Net (tools/fixtures/unet_reference.py) and prints the same line.
//
//   bazel run //experiments/bench:unet_bench -- [--threads=2] [--batch=4] [--size=224] [--iters=6]
//       [--warmup=2] [--variant=torchvision|keras]
//
// The machine may be shared: "cpu/wall" (process CPU seconds per wall second while timing) near the
// thread count means the threads ran; well below it means they waited for a core.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "autograd/graph.h"
#include "experiments/flags.h"
#include "models/unet.h"
#include "nn/optim.h"
#include "nn/seg_loss.h"
#include "tensor/ops/elementwise.h"
#include "tensor/parallel.h"

namespace {

using medtl::Tensor;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double cpu_s() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const medtl::experiments::Flags flags(
        argc, argv,
        {{"threads", "threads for our kernels and oneDNN (default 2)"},
         {"batch", "images per step (default 4)"},
         {"size", "image height and width, a multiple of 32 (default 224)"},
         {"iters", "timed steps (default 6)"},
         {"warmup", "untimed steps before them (default 2)"},
         {"variant", "encoder variant: torchvision (default) or keras"}},
        "unet_bench [--threads=2] [--batch=4] [--size=224] [--iters=6] [--warmup=2] [--variant=torchvision]");
    if (flags.has("help")) {
      std::printf("%s\n", flags.help().c_str());
      return 0;
    }
    const int threads = static_cast<int>(flags.get_int("threads", 2));
    const int64_t batch = flags.get_int("batch", 4), size = flags.get_int("size", 224);
    const int iters = static_cast<int>(std::max<int64_t>(1, flags.get_int("iters", 6)));
    const int warmup = static_cast<int>(std::max<int64_t>(0, flags.get_int("warmup", 2)));
    const auto variant = medtl::models::parse_variant(flags.get("variant", "torchvision"));
    medtl::set_num_threads(threads);

    medtl::Generator gen(0);
    medtl::models::UNetResNet50 model(variant, 1, gen);
    model.train();
    const Tensor x = medtl::uniform({batch, 3, size, size}, gen, -1.0, 1.0);
    const Tensor y = medtl::ops::gt(medtl::uniform({batch, 1, size, size}, gen, 0.0, 1.0), 0.7).to(medtl::DType::Float32);
    medtl::nn::Adam adam(model.parameters(), 1e-3);

    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    std::printf("medtl U-Net (ResNet-50 %s encoder), batch %lld, 3x%lldx%lld, float32, %d threads, %d steps after %d "
                "warm-up; load average before %.2f\n",
                medtl::models::variant_name(variant), static_cast<long long>(batch), static_cast<long long>(size),
                static_cast<long long>(size), threads, iters, warmup, load[0]);
    std::vector<double> total, forward, backward, optim;
    double cpu0 = 0, wall0 = 0;
    for (int i = 0; i < warmup + iters; ++i) {
      if (i == warmup) cpu0 = cpu_s(), wall0 = now_s();
      const double t0 = now_s();
      const Tensor loss = medtl::nn::dice_loss_with_logits(model.forward(x), y);
      const double t1 = now_s();
      medtl::ag::backward(loss);
      const double t2 = now_s();
      adam.step();
      adam.zero_grad();
      const double t3 = now_s();
      if (i < warmup) continue;
      total.push_back(t3 - t0);
      forward.push_back(t1 - t0);
      backward.push_back(t2 - t1);
      optim.push_back(t3 - t2);
    }
    const double cpu_per_wall = (cpu_s() - cpu0) / (now_s() - wall0);
    getloadavg(load, 3);
    const double med = median(total), best = *std::min_element(total.begin(), total.end());
    std::printf("train step: median %.0f ms (%.2f img/s), best %.0f ms (%.2f img/s); forward+loss %.0f ms, backward "
                "%.0f ms, Adam %.0f ms (medians); cpu/wall %.2f; load average after %.2f\n",
                med * 1e3, batch / med, best * 1e3, batch / best, median(forward) * 1e3, median(backward) * 1e3,
                median(optim) * 1e3, cpu_per_wall, load[0]);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unet_bench: error: %s\n", e.what());
    return 1;
  }
}
