// `bazel run //experiments:speed`: how fast this framework trains or runs ResNet-50 or the U-Net,
// in images per second, with the work done (GFLOP/s), the machine's measured sgemm peak and peak
// memory beside it. tools/bench_pytorch.py measures the same with PyTorch; tools/compare_speed.sh
// runs both interleaved and prints the ratios.
//
//   bazel run //experiments:speed -- --model=resnet50|unet --mode=train|infer --batch=N --size=S
//       --threads=T [--device=cpu|cuda] [--iters=5] [--warmup=2] [--fast] [--json]
//
// What a step is (tools/bench_pytorch.py does exactly the same):
//   resnet50 train  torchvision v1.5 ResNet-50 with 14 outputs in train mode, BCE-with-logits on
//                   multi-label 0/1 targets, backward, Adam (lr 1e-3), zero_grad(set_to_none)
//   resnet50 infer  the same network in eval mode without autograd recording
//   unet train      the U-Net (ResNet-50 torchvision encoder, 1 output) in train mode, the paper's
//                   soft Dice loss on sigmoid(logits), backward, Adam (lr 1e-3)
//   unet infer      the U-Net in eval mode without recording
// Inputs are uniform in [-1, 1) from Philox seed 0; the values do not change the speed.
//
// Figures: img/s = batch / median step time (best = batch / fastest step); GFLOP/s counts the
// multiply-adds of every convolution pass and matmul the step actually ran (tensor/flops.h); % of
// peak divides that by the best of oneDNN sgemm 2048^3 runs with the same threads, measured here
// first (--peak_gflops=X skips it); peak memory is the process's VmHWM (resident set high-water
// mark), which includes the model, the optimizer state and the allocator's cache.
// Deterministic mode (tensor/determinism.h) is the framework's default and what the benchmark
// trains with; --fast measures the thread-dependent oneDNN paths instead (on a GPU: TF32 and
// timed, possibly non-deterministic cuDNN algorithms).
// --device=cuda runs the same step on the GPU (a --config=cuda build): each step ends with a
// synchronize, peak memory is the caching allocator's peak of live tensor bytes (as PyTorch's
// max_memory_allocated), and % of peak is against the GPU's dense bf16 tensor-core peak where the
// GPU is known (H100, H200), or --peak_gflops.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "autograd/graph.h"
#include "experiments/flags.h"
#include "models/resnet.h"
#include "models/unet.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/seg_loss.h"
#include "tensor/backend.h"
#include "tensor/determinism.h"
#include "tensor/error.h"
#include "tensor/flops.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/parallel.h"

namespace {

using medtl::DType;
using medtl::Tensor;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double cpu_s() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
}

double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The best GFLOP/s of a few float32 2048^3 GEMMs through oneDNN with the current threads: the
// ceiling a convolution-bound network can approach on this machine. Thread-count-dependent oneDNN
// sgemm, not the deterministic tiles, since this is the hardware figure. Its buffers are freed
// before the model is built, so they do not count in the peak memory.
double measure_sgemm_peak_gflops() {
  constexpr int64_t n = 2048;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n, 0.0f);
  const medtl::DeterministicScope fast(false);
  double best = 1e30;
  for (int i = 0; i < 6; ++i) {
    const double t0 = now_s();
    medtl::ops::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, now_s() - t0);
  }
  return 2.0 * n * n * n / best / 1e9;
}

// One timed unit of work over fixed inputs: a training step (train-mode forward, loss, backward,
// Adam, zero_grad(set_to_none)) or an eval-mode forward without autograd recording.
class Workload {
 public:
  using Loss = Tensor (*)(const Tensor& logits, const Tensor& targets);
  // x: (N, 3, S, S); targets: what `loss` compares the logits with.
  Workload(std::shared_ptr<medtl::nn::Module> model, bool train, Tensor x, Tensor targets, Loss loss,
           medtl::Device device)
      : model_(std::move(model)), train_(train), x_(x.to(device)), targets_(targets.to(device)), loss_(loss),
        device_(device) {
    model_->to(device);
    if (train_) {
      model_->train();
      adam_ = std::make_unique<medtl::nn::Adam>(model_->parameters(), 1e-3);
    } else {
      model_->eval();
    }
  }
  void step() {
    if (!train_) {
      const medtl::ag::NoGradGuard no_grad;
      model_->forward(x_);
    } else {
      medtl::ag::backward(loss_(model_->forward(x_), targets_));
      adam_->step();
      adam_->zero_grad(/*set_to_none=*/true);
    }
    // A GPU queues the work and returns: the step is over when the queue has drained.
    if (!device_.is_cpu()) medtl::find_device_backend(device_.type)->synchronize(device_.index);
  }

 private:
  std::shared_ptr<medtl::nn::Module> model_;
  bool train_;
  Tensor x_, targets_;
  Loss loss_;
  medtl::Device device_;
  std::unique_ptr<medtl::nn::Adam> adam_;
};

// Dense bf16 tensor-core peak in GFLOP/s of the GPUs whose figure is published (NVIDIA's
// datasheets, SXM parts); 0 for any other.
double gpu_bf16_peak_gflops(const std::string& description) {
  if (description.find("H100") != std::string::npos || description.find("H200") != std::string::npos)
    return 989.4e3;
  if (description.find("A100") != std::string::npos) return 312e3;
  return 0;
}

Tensor bce_loss(const Tensor& logits, const Tensor& targets) {
  return medtl::nn::binary_cross_entropy_with_logits(logits, targets);
}
Tensor dice_loss(const Tensor& logits, const Tensor& masks) { return medtl::nn::dice_loss_with_logits(logits, masks); }

std::unique_ptr<Workload> make_workload(const std::string& model, bool train, int64_t batch, int64_t size,
                                        medtl::Device device) {
  medtl::Generator gen(0);
  const auto variant = medtl::models::ResNetVariant::Torchvision;
  if (model == "resnet50") {
    constexpr int64_t kClasses = 14;  // as the paper's ChestX-ray14 head
    auto net = std::make_shared<medtl::models::ResNet50>(variant, kClasses, gen);
    Tensor x = medtl::uniform({batch, 3, size, size}, gen, -1.0, 1.0, DType::Float32);  // (N, 3, S, S)
    // Multi-label 0/1 targets: u in [0.5, 1.5) truncated.                               // (N, 14)
    Tensor y = medtl::uniform({batch, kClasses}, gen, 0.5, 1.5, DType::Float32).to(DType::Int64).to(DType::Float32);
    return std::make_unique<Workload>(net, train, x, y, bce_loss, device);
  }
  auto net = std::make_shared<medtl::models::UNetResNet50>(variant, 1, gen);
  Tensor x = medtl::uniform({batch, 3, size, size}, gen, -1.0, 1.0, DType::Float32);                // (N, 3, S, S)
  Tensor y = medtl::ops::gt(medtl::uniform({batch, 1, size, size}, gen, 0.0, 1.0), 0.7).to(DType::Float32);  // (N, 1, S, S)
  return std::make_unique<Workload>(net, train, x, y, dice_loss, device);
}

int run(int argc, char** argv) {
  using medtl::str_cat;
  const medtl::experiments::Flags flags(
      argc, argv,
      {{"model", "resnet50 (default) or unet"},
       {"mode", "train (default: forward, loss, backward, Adam) or infer (eval-mode forward)"},
       {"batch", "images per step (default 16)"},
       {"size", "image height and width (default 224; a multiple of 32 for the U-Net)"},
       {"threads", "CPU threads (default: all cores)"},
       {"device", "cpu (default), cuda or cuda:N (a --config=cuda build on a machine with a GPU)"},
       {"iters", "timed steps (default 5)"},
       {"warmup", "untimed steps first (default 2)"},
       {"fast", "thread-count-dependent oneDNN paths instead of the deterministic default"},
       {"conv_chunk", "samples per deterministic convolution chunk (default: the framework's; the default "
                      "benchmark config uses 8)"},
       {"peak_gflops", "skip the sgemm peak measurement and use this figure"},
       {"json", "also print the figures as one JSON object on the last line"}},
      "speed --model=resnet50|unet --mode=train|infer --batch=N --size=S --threads=T [--device=cpu] [--json]");
  if (flags.has("help")) {
    std::printf("%s\n", flags.help().c_str());
    return 0;
  }
  const std::string model = flags.get("model", "resnet50"), mode = flags.get("mode", "train");
  const medtl::Device device = medtl::parse_device(flags.get("device", "cpu"));
  MEDTL_CHECK(model == "resnet50" || model == "unet", "--model=", model, ": use resnet50 or unet");
  MEDTL_CHECK(mode == "train" || mode == "infer", "--mode=", mode, ": use train or infer");
  std::string why_not;
  MEDTL_CHECK(medtl::device_available(device, &why_not), "--device=", device.str(), ": ", why_not);
  medtl::DeviceBackend* gpu = device.is_cpu() ? nullptr : medtl::find_device_backend(device.type);
  const std::string gpu_description = gpu ? gpu->describe(device.index) : "";
  const int64_t batch = flags.get_int("batch", 16), size = flags.get_int("size", 224);
  MEDTL_CHECK(batch >= 1 && size >= 32, "--batch must be >= 1 and --size >= 32, got ", batch, " and ", size);
  MEDTL_CHECK(model != "unet" || size % 32 == 0, "--size=", size, ": the U-Net needs a multiple of 32");
  const int threads = static_cast<int>(
      flags.get_int("threads", std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()))));
  const int iters = static_cast<int>(std::max<int64_t>(1, flags.get_int("iters", 5)));
  const int warmup = static_cast<int>(std::max<int64_t>(0, flags.get_int("warmup", 2)));
  const bool fast = flags.get_bool("fast");
  medtl::set_num_threads(threads);
  medtl::set_deterministic(!fast);
  if (flags.has("conv_chunk")) medtl::set_deterministic_conv_chunk(flags.get_int("conv_chunk", 0));

  const double peak_gflops = flags.has("peak_gflops") ? flags.get_double("peak_gflops", 0)
                             : gpu                     ? gpu_bf16_peak_gflops(gpu_description)
                                                       : measure_sgemm_peak_gflops();
  const char* peak_name = flags.has("peak_gflops") ? "--peak_gflops" : gpu ? "the dense bf16 peak" : "the sgemm peak";
  double load_before[3] = {0, 0, 0};
  getloadavg(load_before, 3);
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");

  const std::unique_ptr<Workload> work = make_workload(model, mode == "train", batch, size, device);
  if (gpu) gpu->reset_peak_memory(device.index);

  for (int i = 0; i < warmup; ++i) work->step();
  std::vector<double> steps;
  int64_t flops = 0;
  const double cpu0 = cpu_s(), wall0 = now_s();
  for (int i = 0; i < iters; ++i) {
    const int64_t f0 = medtl::counted_flops();
    const double t0 = now_s();
    work->step();
    steps.push_back(now_s() - t0);
    flops = medtl::counted_flops() - f0;  // the same every step
  }
  const double cpu_per_wall = (cpu_s() - cpu0) / (now_s() - wall0);
  double load_after[3] = {0, 0, 0};
  getloadavg(load_after, 3);

  const double med = median(steps), best = *std::min_element(steps.begin(), steps.end());
  const double img_per_s = batch / med, gflops = flops / med / 1e9;
  // On a GPU: live tensor bytes at their peak (the model, its state, activations), not the cache.
  const double peak_mib = gpu ? gpu->memory_use(device.index).peak_bytes / 1048576.0 : peak_rss_mib();
  const double pct_of_peak = peak_gflops > 0 ? 100.0 * gflops / peak_gflops : 0.0;
  std::printf("medtl %s %s on %s, batch %lld, 3x%lldx%lld float32, %d threads, %s, OMP_WAIT_POLICY=%s\n",
              model.c_str(), mode.c_str(), gpu ? (device.str() + " " + gpu_description).c_str() : "cpu",
              static_cast<long long>(batch), static_cast<long long>(size), static_cast<long long>(size), threads,
              fast ? "fast mode"
                   : str_cat("deterministic mode (conv chunk ", medtl::deterministic_conv_chunk(), ")").c_str(),
              wait_policy ? wait_policy : "(unset)");
  std::printf("  %d steps after %d warm-up: median %.1f ms/step (%.2f img/s), best %.1f ms (%.2f img/s)\n", iters,
              warmup, med * 1e3, img_per_s, best * 1e3, batch / best);
  std::printf("  work %.1f GFLOP/step (%.2f GFLOP/image): %.1f GFLOP/s, %.1f%% of %s %.1f GFLOP/s\n",
              flops / 1e9, flops / 1e9 / batch, gflops, pct_of_peak, peak_name, peak_gflops);
  std::printf("  peak %s memory %.0f MiB; cpu/wall %.2f; load average %.2f before, %.2f after\n",
              gpu ? "GPU tensor" : "resident", peak_mib, cpu_per_wall, load_before[0], load_after[0]);
  if (flags.get_bool("json")) {
    std::printf(
        "{\"framework\":\"medtl\",\"model\":\"%s\",\"mode\":\"%s\",\"batch\":%lld,\"size\":%lld,\"threads\":%d,"
        "\"device\":\"%s\",\"deterministic\":%s,\"conv_chunk\":%lld,\"img_per_s\":%.4f,\"best_img_per_s\":%.4f,\"ms_per_step\":%.2f,"
        "\"gflop_per_step\":%.3f,\"gflops\":%.2f,\"peak_gflops\":%.2f,\"pct_of_peak\":%.1f,"
        "\"peak_memory_mib\":%.1f,\"cpu_per_wall\":%.2f,\"load_before\":%.2f,\"load_after\":%.2f}\n",
        model.c_str(), mode.c_str(), static_cast<long long>(batch), static_cast<long long>(size), threads,
        device.str().c_str(), fast ? "false" : "true", static_cast<long long>(medtl::deterministic_conv_chunk()), img_per_s, batch / best, med * 1e3, flops / 1e9, gflops, peak_gflops,
        pct_of_peak, peak_mib, cpu_per_wall, load_before[0], load_after[0]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "speed: error: %s\n", e.what());
    return 1;
  }
}
