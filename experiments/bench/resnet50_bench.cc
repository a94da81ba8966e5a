// Benchmark of a whole ResNet-50 (torchvision v1.5, float32, CPU): inference throughput (eval mode,
// no autograd recording) and training-step throughput (train mode: forward, BCE-with-logits on 14
// outputs, backward, Adam step), in images per second. tools/bench/torch_resnet50_bench.py does
// exactly the same in PyTorch and prints the same table; tools/bench/compare_resnet50.sh runs both
// and prints the ratios.
//
//   bazel run //experiments/bench:resnet50_bench -- [--threads=2] [--batch=8] [--iters=10]
//       [--warmup=2] [--size=224] [--mode=both|infer|train] [--no_cache] [--profile=steps]
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
// --profile=N then runs N more training steps with a timer around every op -- the forward spelled
// out module by module and the backward node by node, both checked to give bit-identical results --
// and prints milliseconds per step for each kind of op (conv forward, conv backward, batch norm,
// relu, ...), the conv backward split into data and weights by timing those kernels alone, and the
// allocation cost (system time, page faults).
//
// The machine may be shared: "cpu/wall" (process CPU seconds per wall second while timing) near the
// thread count means the threads ran; well below it means they waited for a core. Rerun and compare
// medians when the load average is high, and set OMP_WAIT_POLICY=passive there: otherwise libgomp's
// idle threads spin and take the core the working thread needs (about 2x slower steps at load 6-10).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "autograd/graph.h"
#include "autograd/layer_ops.h"
#include "autograd/ops.h"
#include "experiments/flags.h"
#include "models/resnet.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/cpu/allocator.h"
#include "tensor/ops/conv2d.h"
#include "tensor/ops/elementwise.h"
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
  // steady_clock is CLOCK_MONOTONIC: the window for `perf record -k CLOCK_MONOTONIC` + `perf report --time`.
  std::fprintf(stderr, "timed iterations: CLOCK_MONOTONIC %.6f to %.6f s\n", t_start, now_s());
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

// ---------------------------------------------------------------- --profile

// Milliseconds per category in one training step, from timers around each op. The forward is
// ResNet50::forward and Bottleneck::forward spelled out module by module (the same calls in the
// same order: main() checks the logits are bit-identical), the backward is ag::backward's engine
// spelled out node by node (main() checks every gradient is bit-identical). Each timer includes
// what the op does besides its kernel: allocating its output, recording its node.
struct StepProfile {
  std::map<std::string, double> ms;
  std::map<std::string, int> calls;
  void add(const std::string& category, double seconds) {
    ms[category] += seconds * 1e3;
    ++calls[category];
  }
};

template <typename F>
Tensor timed(StepProfile& p, const std::string& category, const F& f) {
  const double t0 = now_s();
  Tensor out = f();
  p.add(category, now_s() - t0);
  return out;
}

// One convolution of the forward: what its backward kernels are called with.
struct ConvCall {
  medtl::Shape x, w;
  medtl::ops::Conv2dParams params;
  bool needs_dx;  // false for conv1, whose input needs no gradient
};

Tensor profiled_forward(medtl::models::ResNet50& model, const Tensor& x, StepProfile& p, std::vector<ConvCall>* convs) {
  using Module = std::shared_ptr<medtl::nn::Module>;
  auto conv = [&](const Module& m, const Tensor& in) {
    if (convs != nullptr) {
      const auto* c = dynamic_cast<const medtl::nn::Conv2d*>(m.get());
      convs->push_back({in.shape(), c->weight().shape(), c->params(), medtl::ag::requires_grad(in)});
    }
    return timed(p, "conv forward", [&] { return m->forward(in); });
  };
  auto bn = [&](const Module& m, const Tensor& in) {
    return timed(p, "batch norm forward", [&] { return m->forward(in); });
  };
  auto relu = [&](const Tensor& in) { return timed(p, "relu forward", [&] { return medtl::ag::relu(in); }); };

  Tensor out = relu(bn(model.submodule("bn1"), conv(model.submodule("conv1"), x)));
  out = timed(p, "max-pool forward", [&] { return model.submodule("maxpool")->forward(out); });
  for (const char* layer : {"layer1", "layer2", "layer3", "layer4"}) {
    for (const auto& entry : model.submodule(layer)->children()) {
      const Module& block = entry.second;
      Tensor y = relu(bn(block->submodule("bn1"), conv(block->submodule("conv1"), out)));
      y = relu(bn(block->submodule("bn2"), conv(block->submodule("conv2"), y)));
      y = bn(block->submodule("bn3"), conv(block->submodule("conv3"), y));
      Tensor shortcut = out;
      for (const auto& child : block->children())
        if (child.first == "downsample")
          shortcut = bn(child.second->submodule("1"), conv(child.second->submodule("0"), out));
      out = relu(timed(p, "residual add forward", [&] { return medtl::ag::add(y, shortcut); }));
    }
  }
  return timed(p, "head forward (avg-pool, flatten, fc)", [&] {
    return model.submodule("fc")->forward(medtl::ag::flatten(medtl::ag::adaptive_avg_pool2d_1x1(out), 1));
  });
}

std::string backward_category(const std::string& node) {
  static const std::map<std::string, std::string> names = {
      {"conv2d", "conv backward (data + weights)"},
      {"batch_norm", "batch norm backward"},
      {"relu", "relu backward"},
      {"add", "residual add backward"},
      {"max_pool2d", "max-pool backward"},
      {"AccumulateGrad", "AccumulateGrad (.grad = clone of the gradient)"},
      {"binary_cross_entropy_with_logits", "loss backward"}};
  auto it = names.find(node);
  return it != names.end() ? it->second : "head backward (fc, flatten, avg-pool)";
}

// ag::backward(loss) as autograd/graph.cc runs it, with a timer around every node.
void profiled_backward(const Tensor& loss, StepProfile& p) {
  using medtl::ag::Node;
  const std::shared_ptr<Node> start = medtl::ag::grad_fn(loss);
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack = {start.get()};
  pending[start.get()] = 0;
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const auto& next : node->next) {
      if (!next) continue;
      if (pending.emplace(next.get(), 0).second) stack.push_back(next.get());
      ++pending[next.get()];
    }
  }
  std::unordered_map<Node*, Tensor> grads;
  grads[start.get()] = medtl::ones(loss.shape(), loss.dtype());
  std::vector<Node*> ready = {start.get()};
  std::vector<Node*> visited;
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    visited.push_back(node);
    Tensor incoming = std::move(grads[node]);
    grads.erase(node);
    const double t0 = now_s();
    std::vector<Tensor> input_grads = node->apply(incoming);
    p.add(backward_category(node->name), now_s() - t0);
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (next == nullptr) continue;
      auto found = grads.find(next);
      if (found == grads.end()) {
        grads.emplace(next, std::move(input_grads[i]));
      } else {
        const double t1 = now_s();
        found->second = medtl::ops::add(found->second, input_grads[i]);
        p.add("engine: summing gradients that meet (add)", now_s() - t1);
      }
      if (--pending[next] == 0) ready.push_back(next);
    }
  }
  const double t2 = now_s();
  for (Node* node : visited) node->release();
  p.add("engine: freeing the graph", now_s() - t2);
}

// Median seconds of the two backward kernels of every convolution, called alone on random data
// (the in-step timers see one conv2d node; this splits it).
void isolated_conv_backward(const std::vector<ConvCall>& convs, int reps, double* data_s, double* weight_s) {
  medtl::Generator gen(11);
  *data_s = *weight_s = 0;
  for (const ConvCall& c : convs) {
    const Tensor x = medtl::uniform(c.x, gen, -1, 1, DType::Float32);
    const Tensor w = medtl::uniform(c.w, gen, -0.1, 0.1, DType::Float32);
    const Tensor g =
        medtl::uniform(medtl::ops::conv2d_output_shape(c.x, c.w, c.params), gen, -1, 1, DType::Float32);
    std::vector<double> td, tw;
    for (int r = 0; r <= reps; ++r) {  // the first call of each is untimed
      double t0 = now_s();
      if (c.needs_dx) (void)medtl::ops::conv2d_backward_input(g, w, c.x, c.params);
      double t1 = now_s();
      (void)medtl::ops::conv2d_backward_weight(g, x, c.w, c.params);
      double t2 = now_s();
      if (r > 0) td.push_back(t1 - t0), tw.push_back(t2 - t1);
    }
    *data_s += median(td);
    *weight_s += median(tw);
  }
}

// Runs `steps` profiled training steps (after the benchmark's own) and prints the breakdown.
void run_profile(medtl::models::ResNet50& model, medtl::nn::Adam& adam, const Tensor& x, const Tensor& targets,
                 int steps) {
  model.train();
  // The spelled-out forward and backward must do exactly what the real ones do.
  bool same_logits = false, same_grads = true;
  {
    StepProfile scratch;
    const Tensor reference = model.forward(x);
    const Tensor logits = profiled_forward(model, x, scratch, nullptr);
    same_logits = reference.to_vector<float>() == logits.to_vector<float>();
    medtl::ag::backward(medtl::nn::binary_cross_entropy_with_logits(reference, targets));
    std::vector<std::vector<float>> expected;
    for (const Tensor& p : model.parameters()) expected.push_back(medtl::ag::grad(p).to_vector<float>());
    adam.zero_grad(true);
    profiled_backward(medtl::nn::binary_cross_entropy_with_logits(logits, targets), scratch);
    size_t i = 0;
    for (const Tensor& p : model.parameters()) same_grads = same_grads && medtl::ag::grad(p).to_vector<float>() == expected[i++];
    adam.zero_grad(true);
  }

  std::map<std::string, std::vector<double>> per_step;
  std::map<std::string, int> calls;
  std::vector<double> totals, sys, faults;
  std::vector<ConvCall> convs;
  for (int s = 0; s < steps; ++s) {
    StepProfile p;
    const Usage u0 = usage_now();
    const double t0 = now_s();
    const Tensor logits = profiled_forward(model, x, p, s == 0 ? &convs : nullptr);
    const Tensor loss = timed(p, "loss forward",
                              [&] { return medtl::nn::binary_cross_entropy_with_logits(logits, targets); });
    profiled_backward(loss, p);
    const double t1 = now_s();
    adam.step();
    adam.zero_grad(true);
    p.add("zero_grad + Adam step", now_s() - t1);
    totals.push_back(now_s() - t0);
    const Usage u1 = usage_now();
    sys.push_back(u1.sys - u0.sys);
    faults.push_back(static_cast<double>(u1.faults - u0.faults));
    double accounted = 0;
    for (const auto& [category, ms] : p.ms) {
      per_step[category].push_back(ms);
      calls[category] = p.calls[category];
      accounted += ms;
    }
    per_step["untimed rest (between the timers)"].push_back(totals.back() * 1e3 - accounted);
  }
  double iso_data = 0, iso_weight = 0;
  isolated_conv_backward(convs, 3, &iso_data, &iso_weight);

  const double total_ms = median(totals) * 1e3;
  std::printf("\nprofile of a training step: %d steps, median ms per step of each category "
              "(forward bit-identical: %s, gradients bit-identical: %s)\n",
              steps, same_logits ? "yes" : "NO", same_grads ? "yes" : "NO");
  std::printf("%-50s %9s %7s %6s\n", "category", "ms/step", "share", "calls");
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [category, v] : per_step) rows.push_back({median(v), category});
  std::sort(rows.rbegin(), rows.rend());
  for (const auto& [ms, category] : rows)
    std::printf("%-50s %9.1f %6.1f%% %6d\n", category.c_str(), ms, 100 * ms / total_ms, calls[category]);
  std::printf("%-50s %9.1f %6.1f%%\n", "whole step (median)", total_ms, 100.0);
  const double conv_bwd = median(per_step["conv backward (data + weights)"]);
  const double data_share = iso_data / std::max(1e-12, iso_data + iso_weight);
  std::printf("conv backward split by the same kernels called alone (%d convs: backward-data %.0f ms, "
              "backward-weights %.0f ms): in the step about %.0f ms data + %.0f ms weights\n",
              static_cast<int>(convs.size()), iso_data * 1e3, iso_weight * 1e3, conv_bwd * data_share,
              conv_bwd * (1 - data_share));
  std::printf("allocation: %.0f ms system time and %.0f minor page faults per step (medians)\n", median(sys) * 1e3,
              median(faults));
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
       {"no_cache", "turn the CPU allocator's cache of freed blocks off (as before it existed)"},
       {"profile", "after the benchmark, time every op of this many more training steps (default 0: none)"}},
      "resnet50_bench [--threads=2] [--batch=8] [--iters=10] [--warmup=2] [--size=224] [--mode=both] [--no_cache] [--profile=3]");
  if (flags.has("help")) {
    std::printf("%s\n", flags.help().c_str());
    return 0;
  }
  const int threads = static_cast<int>(flags.get_int("threads", 2));
  const int64_t batch = flags.get_int("batch", 8), size = flags.get_int("size", 224);
  const int iters = static_cast<int>(std::max<int64_t>(1, flags.get_int("iters", 10)));
  const int warmup = static_cast<int>(std::max<int64_t>(0, flags.get_int("warmup", 2)));
  const std::string mode = flags.get("mode", "both");
  const int profile_steps = static_cast<int>(std::max<int64_t>(0, flags.get_int("profile", 0)));
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
  if (profile_steps > 0) run_profile(*model, adam, x, targets, profile_steps);
  return 0;
}
