// Benchmark of a whole ResNet-50 (torchvision v1.5, float32, CPU): inference throughput (eval mode,
// no autograd recording) and training-step throughput (train mode: forward, BCE-with-logits on 14
// outputs, backward, Adam step), in images per second. tools/bench/torch_resnet50_bench.py does
// exactly the same in PyTorch and prints the same table; tools/bench/compare_resnet50.sh runs both
// and prints the ratios.
//
//   bazel run //experiments/bench:resnet50_bench -- [--threads=2] [--batch=8] [--iters=10]
//       [--warmup=2] [--size=224] [--mode=both|infer|train] [--no_cache]
//   (.bazelrc already builds with -O2.)
//
// Per iteration it records wall time, and for the training step also the three phases (forward;
// loss + backward; zero_grad + optimizer step), the process's CPU time (user, system) and its minor
// page faults: system time and faults are the cost of touching freshly mapped memory. Warm-up
// iterations are excluded.
//
// Columns: median_ms / min_ms per iteration; img/s = batch / median, best_i/s = batch / min;
// cpu_ms = median CPU time (user + system, all threads) per iteration; peak_MiB = peak RSS (VmHWM
// from /proc/self/status, reset with clear_refs 5 before each mode, so each mode reports its own);
// tens_MiB = medtl::memory_stats()'s peak of bytes held by live CPU tensors in that mode; cpu/wall.
// The last line prints values (logits sum, every loss) so that runs that must agree bit for bit,
// e.g. with and without --no_cache, can be compared.
//
// The machine may be shared: "cpu/wall" (process CPU seconds per wall second while timing) near the
// thread count means the threads ran; well below it means they waited for a core. Rerun and compare
// medians when the load average is high.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "autograd/graph.h"
#include "experiments/flags.h"
#include "models/resnet.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/cpu/allocator.h"
#include "tensor/parallel.h"

namespace {

using medtl::DType;
using medtl::Tensor;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time (user, system) and minor page faults of the whole process, all threads.
struct Usage {
  double user = 0, sys = 0;
  long faults = 0;
};
Usage usage_now() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return {ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec, ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec,
          ru.ru_minflt};
}

// VmHWM (peak resident set) in MiB, and a reset of it to the current RSS.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return -1;
}
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

struct Result {
  std::vector<double> total, forward, backward, optim, user, sys, faults;
  double cpu_per_wall = 0, peak_mib = 0, tensor_peak_mib = 0;
};

constexpr double kMiB = 1024.0 * 1024.0;

// Runs warmup + iters iterations of `step` (which fills the phase times it knows), recording each.
template <typename Step>
Result run(int warmup, int iters, Step step) {
  Result r;
  reset_peak_rss();
  medtl::reset_peak_memory_stats();
  for (int i = 0; i < warmup; ++i) {
    double phases[3];
    step(phases);
  }
  const Usage u_start = usage_now();
  const double t_start = now_s();
  for (int i = 0; i < iters; ++i) {
    double phases[3] = {0, 0, 0};
    const Usage u0 = usage_now();
    const double t0 = now_s();
    step(phases);
    const double t1 = now_s();
    const Usage u1 = usage_now();
    r.total.push_back(t1 - t0);
    r.forward.push_back(phases[0]);
    r.backward.push_back(phases[1]);
    r.optim.push_back(phases[2]);
    r.user.push_back(u1.user - u0.user);
    r.sys.push_back(u1.sys - u0.sys);
    r.faults.push_back(static_cast<double>(u1.faults - u0.faults));
  }
  const Usage u_end = usage_now();
  r.cpu_per_wall = (u_end.user + u_end.sys - u_start.user - u_start.sys) / (now_s() - t_start);
  r.peak_mib = peak_rss_mib();
  r.tensor_peak_mib = static_cast<double>(medtl::memory_stats().peak_allocated_bytes) / kMiB;
  return r;
}

void print_row(const char* name, const Result& r, int64_t batch) {
  const double med = median(r.total), best = minimum(r.total);
  std::vector<double> cpu(r.user.size());
  for (size_t i = 0; i < cpu.size(); ++i) cpu[i] = r.user[i] + r.sys[i];
  std::printf("%-10s %9.1f %9.1f %9.2f %9.2f %9.0f %9.0f %9.0f %8.2f\n", name, med * 1e3, best * 1e3, batch / med,
              batch / best, median(cpu) * 1e3, r.peak_mib, r.tensor_peak_mib, r.cpu_per_wall);
}

void print_details(const char* name, const Result& r, bool phases) {
  std::printf("  %s per iteration (median): user %.0f ms, sys %.0f ms, minor faults %.0f", name,
              median(r.user) * 1e3, median(r.sys) * 1e3, median(r.faults));
  if (phases)
    std::printf("; forward %.0f ms, loss+backward %.0f ms, zero_grad+Adam %.0f ms", median(r.forward) * 1e3,
                median(r.backward) * 1e3, median(r.optim) * 1e3);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const medtl::experiments::Flags flags(
      argc, argv,
      {{"threads", "threads for our kernels and oneDNN (default 2)"},
       {"batch", "images per iteration (default 8)"},
       {"iters", "timed iterations per mode (default 10)"},
       {"warmup", "untimed iterations before them (default 2)"},
       {"size", "image height and width (default 224)"},
       {"mode", "both | infer | train (default both)"},
       {"no_cache", "turn the CPU allocator's cache of freed blocks off (as before it existed)"}},
      "resnet50_bench [--threads=2] [--batch=8] [--iters=10] [--warmup=2] [--size=224] [--mode=both] [--no_cache]");
  if (flags.has("help")) {
    std::printf("%s\n", flags.help().c_str());
    return 0;
  }
  const int threads = static_cast<int>(flags.get_int("threads", 2));
  const int64_t batch = flags.get_int("batch", 8), size = flags.get_int("size", 224);
  const int iters = static_cast<int>(std::max<int64_t>(1, flags.get_int("iters", 10)));
  const int warmup = static_cast<int>(std::max<int64_t>(0, flags.get_int("warmup", 2)));
  const std::string mode = flags.get("mode", "both");
  if (mode != "both" && mode != "infer" && mode != "train") {
    std::fprintf(stderr, "--mode must be both, infer or train, got %s\n", mode.c_str());
    return 2;
  }
  constexpr int64_t kClasses = 14;
  medtl::set_num_threads(threads);
  if (flags.get_bool("no_cache")) medtl::set_cpu_cache_limit(0);

  medtl::Generator gen(0);
  auto model = std::make_shared<medtl::models::ResNet50>(medtl::models::ResNetVariant::Torchvision, kClasses, gen);
  const Tensor x = medtl::uniform({batch, 3, size, size}, gen, -1.0, 1.0, DType::Float32);
  // Multi-label 0/1 targets, as in the paper's ChestX-ray14 task: u in [0.5, 1.5) truncated.
  const Tensor targets =
      medtl::uniform({batch, kClasses}, gen, 0.5, 1.5, DType::Float32).to(DType::Int64).to(DType::Float32);
  medtl::nn::Adam adam(model->parameters(), 1e-3);

  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("medtl ResNet-50 (torchvision v1.5), batch %lld, 3x%lldx%lld, float32, %d threads, %d iters after %d "
              "warm-up\n",
              static_cast<long long>(batch), static_cast<long long>(size), static_cast<long long>(size), threads, iters,
              warmup);
  std::printf("CPU allocator cache: %s\n",
              medtl::cpu_cache_limit() > 0
                  ? medtl::str_cat("on, limit ", medtl::cpu_cache_limit() >> 20, " MiB").c_str()
                  : "off");
  std::printf("load average before: %.2f %.2f %.2f\n", load[0], load[1], load[2]);

  // Results, printed at the end: equal bits with and without the allocator cache (or any other
  // change that must not change values) give equal lines.
  double logits_sum = 0;
  std::vector<float> losses;
  Result infer, train;
  if (mode != "train") {
    model->eval();
    infer = run(warmup, iters, [&](double*) {
      medtl::ag::NoGradGuard no_grad;
      const Tensor logits = model->forward(x);
      logits_sum = 0;
      for (float v : logits.to_vector<float>()) logits_sum += v;
    });
  }
  if (mode != "infer") {
    model->train();
    train = run(warmup, iters, [&](double* phases) {
      const double t0 = now_s();
      const Tensor logits = model->forward(x);
      const double t1 = now_s();
      const Tensor loss = medtl::nn::binary_cross_entropy_with_logits(logits, targets);
      medtl::ag::backward(loss);
      const double t2 = now_s();
      losses.push_back(static_cast<float>(loss.item()));
      adam.step();
      adam.zero_grad(/*set_to_none=*/true);
      phases[0] = t1 - t0;
      phases[1] = t2 - t1;
      phases[2] = now_s() - t2;
    });
  }
  getloadavg(load, 3);
  std::printf("load average after:  %.2f %.2f %.2f\n", load[0], load[1], load[2]);
  std::printf("%-10s %9s %9s %9s %9s %9s %9s %9s %8s\n", "mode", "median_ms", "min_ms", "img/s", "best_i/s", "cpu_ms",
              "peak_MiB", "tens_MiB", "cpu/wall");
  if (mode != "train") print_row("inference", infer, batch);
  if (mode != "infer") print_row("train", train, batch);
  if (mode != "train") print_details("inference", infer, false);
  if (mode != "infer") print_details("train", train, true);
  const medtl::MemoryStats stats = medtl::memory_stats();
  std::printf("  allocator: %lld allocations (%lld large from the cache, %lld large fresh); now %.0f MiB in tensors, "
              "%.0f MiB cached; peak reserved %.0f MiB\n",
              static_cast<long long>(stats.allocations), static_cast<long long>(stats.cache_hits),
              static_cast<long long>(stats.cache_misses), static_cast<double>(stats.allocated_bytes) / kMiB,
              static_cast<double>(stats.cached_bytes) / kMiB, static_cast<double>(stats.peak_reserved_bytes) / kMiB);
  std::printf("  values: inference logits sum %.9g; train losses", logits_sum);
  for (float l : losses) std::printf(" %.9g", l);
  std::printf("\n");
  return 0;
}
