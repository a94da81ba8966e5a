// What deterministic mode (tensor/determinism.h) costs, and what it buys.
//
// 1. Timing: every distinct ResNet-50 v1.5 convolution (forward, backward-data, backward-weights,
//    float32, default Auto layout) in fast mode and in deterministic mode with the given chunk
//    sizes, interleaved shape by shape in several rounds; best and median ms per kernel, and the
//    totals over the 53 convolutions of one pass (each shape times its count).
// 2. Optional whole training step (--step): ResNet-50 forward + BCE + backward + Adam, fast vs
//    deterministic, interleaved.
// 3. Bits: for every shape and kernel, whether 1, 2 and 3 threads give identical float32 results,
//    in fast mode and in deterministic mode.
//
//   bazel run //experiments/bench:determinism_bench -- [--batch=8] [--threads=2] [--rounds=3]
//       [--chunks=1,2] [--step] [--step_size=112] [--scan] [--scan_batch=4]
//
// Results on the 2-core development machine are in docs/reproducibility.md.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/graph.h"
#include "experiments/flags.h"
#include "models/resnet.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/determinism.h"
#include "tensor/ops/conv2d.h"
#include "tensor/parallel.h"

namespace {

using medtl::DType;
using medtl::Generator;
using medtl::Shape;
using medtl::Tensor;
using medtl::ops::Conv2dParams;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double cpu_s() {  // CPU time of the whole process, all threads
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct ConvShape {
  const char* name;
  int count;  // how many of ResNet-50's 53 convolutions have this shape
  int64_t c, hw, k, rs, stride, pad;
};

// ResNet-50 v1.5 (torchvision), as in conv_bench.cc.
const std::vector<ConvShape>& resnet50_convs() {
  static const std::vector<ConvShape> shapes = {
      {"conv1 7x7/2 3->64 @224", 1, 3, 224, 64, 7, 2, 3},      {"l1 1x1 64->64 @56", 1, 64, 56, 64, 1, 1, 0},
      {"l1 3x3 64->64 @56", 3, 64, 56, 64, 3, 1, 1},           {"l1 1x1 64->256 @56 (+ds)", 4, 64, 56, 256, 1, 1, 0},
      {"l1 1x1 256->64 @56", 2, 256, 56, 64, 1, 1, 0},         {"l2 1x1 256->128 @56", 1, 256, 56, 128, 1, 1, 0},
      {"l2 3x3/2 128->128 @56", 1, 128, 56, 128, 3, 2, 1},     {"l2 1x1/2 256->512 @56 ds", 1, 256, 56, 512, 1, 2, 0},
      {"l2 1x1 128->512 @28", 4, 128, 28, 512, 1, 1, 0},       {"l2 1x1 512->128 @28", 3, 512, 28, 128, 1, 1, 0},
      {"l2 3x3 128->128 @28", 3, 128, 28, 128, 3, 1, 1},       {"l3 1x1 512->256 @28", 1, 512, 28, 256, 1, 1, 0},
      {"l3 3x3/2 256->256 @28", 1, 256, 28, 256, 3, 2, 1},     {"l3 1x1/2 512->1024 @28 ds", 1, 512, 28, 1024, 1, 2, 0},
      {"l3 1x1 256->1024 @14", 6, 256, 14, 1024, 1, 1, 0},     {"l3 1x1 1024->256 @14", 5, 1024, 14, 256, 1, 1, 0},
      {"l3 3x3 256->256 @14", 5, 256, 14, 256, 3, 1, 1},       {"l4 1x1 1024->512 @14", 1, 1024, 14, 512, 1, 1, 0},
      {"l4 3x3/2 512->512 @14", 1, 512, 14, 512, 3, 2, 1},     {"l4 1x1/2 1024->2048 @14 ds", 1, 1024, 14, 2048, 1, 2, 0},
      {"l4 1x1 512->2048 @7", 3, 512, 7, 2048, 1, 1, 0},       {"l4 1x1 2048->512 @7", 2, 2048, 7, 512, 1, 1, 0},
      {"l4 3x3 512->512 @7", 2, 512, 7, 512, 3, 1, 1},
  };
  return shapes;
}

Conv2dParams params_of(const ConvShape& s) {
  Conv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  return p;
}

// A mode: fast (chunk 0) or deterministic with `chunk` samples per chunk.
struct Mode {
  int64_t chunk = 0;
  std::string name() const { return chunk == 0 ? "fast" : "det/" + std::to_string(chunk); }
  void apply() const {
    medtl::set_deterministic(chunk > 0);
    if (chunk > 0) medtl::set_deterministic_conv_chunk(chunk);
  }
};

Tensor run_kernel(int k, const Tensor& x, const Tensor& w, const Tensor& g, const Conv2dParams& p) {
  if (k == 0) return medtl::ops::conv2d_forward(x, w, Tensor(), p);
  if (k == 1) return medtl::ops::conv2d_backward_input(g, w, x.shape(), p);
  return medtl::ops::conv2d_backward_weight(g, x, w.shape(), p);
}

constexpr const char* kKernels[3] = {"fwd", "bwd-data", "bwd-weights"};

void time_convs(const std::vector<Mode>& modes, int64_t batch, int rounds) {
  const auto& shapes = resnet50_convs();
  // samples[shape][mode][kernel]
  std::vector<std::vector<std::array<std::vector<double>, 3>>> samples(
      shapes.size(), std::vector<std::array<std::vector<double>, 3>>(modes.size()));
  auto cpu_samples = samples;
  for (int round = 0; round < rounds; ++round) {
    for (size_t si = 0; si < shapes.size(); ++si) {
      const ConvShape& s = shapes[si];
      const Conv2dParams p = params_of(s);
      const Shape xs = {batch, s.c, s.hw, s.hw}, ws = {s.k, s.c, s.rs, s.rs};
      Generator gen(3);
      const Tensor x = medtl::uniform(xs, gen, -1, 1), w = medtl::uniform(ws, gen, -0.1, 0.1);
      const Tensor g = medtl::uniform(medtl::ops::conv2d_output_shape(xs, ws, p), gen, -1, 1);
      for (int k = 0; k < 3; ++k) {
        for (size_t mi = 0; mi < modes.size(); ++mi) {
          modes[mi].apply();
          (void)run_kernel(k, x, w, g, p);  // builds and caches the primitives
          for (int rep = 0; rep < 2; ++rep) {
            const double t0 = now_s(), c0 = cpu_s();
            (void)run_kernel(k, x, w, g, p);
            samples[si][mi][k].push_back(now_s() - t0);
            cpu_samples[si][mi][k].push_back(cpu_s() - c0);
          }
        }
      }
      std::fprintf(stderr, ".");
    }
    std::fprintf(stderr, " round %d of %d\n", round + 1, rounds);
  }
  std::printf("\n== conv2d ms per call, best of %d (median), batch %lld, Auto layout ==\n%-28s %3s", 2 * rounds,
              static_cast<long long>(batch), "shape", "cnt");
  for (const char* kn : kKernels)
    for (const Mode& m : modes) std::printf(" %15s", (std::string(kn) + " " + m.name()).c_str());
  std::printf("\n");
  std::vector<std::array<double, 3>> best_total(modes.size(), {0, 0, 0}), med_total(modes.size(), {0, 0, 0});
  for (size_t si = 0; si < shapes.size(); ++si) {
    std::printf("%-28s %3d", shapes[si].name, shapes[si].count);
    for (int k = 0; k < 3; ++k) {
      for (size_t mi = 0; mi < modes.size(); ++mi) {
        std::vector<double> v = samples[si][mi][k];
        std::sort(v.begin(), v.end());
        const double best = v.front() * 1e3, med = v[v.size() / 2] * 1e3;
        best_total[mi][k] += best * shapes[si].count;
        med_total[mi][k] += med * shapes[si].count;
        std::printf(" %6.1f (%6.1f)", best, med);
      }
    }
    std::printf("\n");
  }
  std::printf("\none ResNet-50 pass (53 convs), wall ms: best (median); process CPU ms: best (median)\n");
  std::vector<std::array<double, 2>> cpu_total(modes.size(), {0, 0});
  for (size_t si = 0; si < shapes.size(); ++si)
    for (size_t mi = 0; mi < modes.size(); ++mi)
      for (int k = 0; k < 3; ++k) {
        std::vector<double> v = cpu_samples[si][mi][k];
        std::sort(v.begin(), v.end());
        cpu_total[mi][0] += v.front() * 1e3 * shapes[si].count;
        cpu_total[mi][1] += v[v.size() / 2] * 1e3 * shapes[si].count;
      }
  const double fast_b = best_total[0][0] + best_total[0][1] + best_total[0][2];
  const double fast_m = med_total[0][0] + med_total[0][1] + med_total[0][2];
  for (size_t mi = 0; mi < modes.size(); ++mi) {
    double b = 0, m = 0;
    std::printf("  %-7s", modes[mi].name().c_str());
    for (int k = 0; k < 3; ++k) {
      std::printf("  %s %7.1f (%7.1f)", kKernels[k], best_total[mi][k], med_total[mi][k]);
      b += best_total[mi][k];
      m += med_total[mi][k];
    }
    std::printf("  total %7.1f (%7.1f)  cpu %7.1f (%7.1f)", b, m, cpu_total[mi][0], cpu_total[mi][1]);
    if (mi > 0)
      std::printf("  = wall %.2fx (%.2fx), cpu %.2fx (%.2fx) of fast", b / fast_b, m / fast_m,
                  cpu_total[mi][0] / cpu_total[0][0], cpu_total[mi][1] / cpu_total[0][1]);
    std::printf("\n");
  }
}

void time_step(const std::vector<Mode>& modes, int64_t batch, int64_t size, int rounds) {
  constexpr int64_t kClasses = 14;
  Generator gen(0);
  auto model = std::make_shared<medtl::models::ResNet50>(medtl::models::ResNetVariant::Torchvision, kClasses, gen);
  const Tensor x = medtl::uniform({batch, 3, size, size}, gen, -1.0, 1.0);
  const Tensor targets = medtl::uniform({batch, kClasses}, gen, 0.5, 1.5).to(DType::Int64).to(DType::Float32);
  medtl::nn::Adam adam(model->parameters(), 1e-4);
  model->train();
  std::vector<std::vector<double>> samples(modes.size()), cpu(modes.size());
  for (int round = 0; round < rounds + 1; ++round) {
    for (size_t mi = 0; mi < modes.size(); ++mi) {
      modes[mi].apply();
      const double t0 = now_s(), c0 = cpu_s();
      medtl::ag::backward(medtl::nn::binary_cross_entropy_with_logits(model->forward(x), targets));
      adam.step();
      adam.zero_grad();
      if (round > 0) samples[mi].push_back(now_s() - t0);  // round 0 builds the primitives
      if (round > 0) cpu[mi].push_back(cpu_s() - c0);
    }
  }
  std::printf("\n== ResNet-50 training step (fwd + BCE + bwd + Adam), batch %lld, %lldx%lld: wall ms best (median), "
              "process CPU ms best (median) ==\n",
              static_cast<long long>(batch), static_cast<long long>(size), static_cast<long long>(size));
  double fast_best = 0, fast_med = 0, fast_cpu = 0, fast_cpu_med = 0;
  for (size_t mi = 0; mi < modes.size(); ++mi) {
    std::sort(samples[mi].begin(), samples[mi].end());
    std::sort(cpu[mi].begin(), cpu[mi].end());
    const double best = samples[mi].front() * 1e3, med = samples[mi][samples[mi].size() / 2] * 1e3;
    const double cbest = cpu[mi].front() * 1e3, cmed = cpu[mi][cpu[mi].size() / 2] * 1e3;
    if (mi == 0) fast_best = best, fast_med = med, fast_cpu = cbest, fast_cpu_med = cmed;
    std::printf("  %-7s %8.1f (%8.1f)  cpu %8.1f (%8.1f)", modes[mi].name().c_str(), best, med, cbest, cmed);
    if (mi > 0)
      std::printf("  = wall %.2fx (%.2fx), cpu %.2fx (%.2fx) of fast", best / fast_best, med / fast_med,
                  cbest / fast_cpu, cmed / fast_cpu_med);
    std::printf("\n");
  }
}

bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.numel() * sizeof(float)) == 0;
}

void scan_bits(const std::vector<Mode>& modes, int64_t batch) {
  std::printf("\n== float32 bits with 1, 2, 3 threads, batch %lld (fwd | bwd-data | bwd-weights): "
              "'same' or which thread counts differ from 1 ==\n",
              static_cast<long long>(batch));
  const int saved = medtl::get_num_threads();
  for (const ConvShape& s : resnet50_convs()) {
    const Conv2dParams p = params_of(s);
    const Shape xs = {batch, s.c, s.hw, s.hw}, ws = {s.k, s.c, s.rs, s.rs};
    Generator gen(5);
    const Tensor x = medtl::uniform(xs, gen, -1, 1), w = medtl::uniform(ws, gen, -0.1, 0.1);
    const Tensor g = medtl::uniform(medtl::ops::conv2d_output_shape(xs, ws, p), gen, -1, 1);
    std::printf("  %-28s", s.name);
    for (const Mode& m : modes) {
      m.apply();
      std::printf("  %s:", m.name().c_str());
      for (int k = 0; k < 3; ++k) {
        Tensor out[3];
        for (int t = 0; t < 3; ++t) {
          medtl::set_num_threads(t + 1);
          out[t] = run_kernel(k, x, w, g, p);
        }
        std::string verdict;
        for (int t = 1; t < 3; ++t)
          if (!identical(out[0], out[t])) verdict += (verdict.empty() ? "" : ",") + std::to_string(t + 1);
        std::printf(" %s%s", verdict.empty() ? "same" : ("DIFF@" + verdict).c_str(), k < 2 ? " |" : "");
      }
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  medtl::set_num_threads(saved);
}

}  // namespace

int main(int argc, char** argv) {
  const medtl::experiments::Flags flags(
      argc, argv,
      {{"batch", "batch for the conv timings (default 8)"},
       {"threads", "threads (default 2)"},
       {"rounds", "timing rounds (default 3)"},
       {"chunks", "deterministic chunk sizes to time, comma separated (default 1,2)"},
       {"convs", "time the convolutions (default true; --convs=false to skip)"},
       {"step", "also time a whole ResNet-50 training step"},
       {"step_size", "image size for --step (default 112)"},
       {"scan", "also scan 1/2/3-thread bit identity"},
       {"scan_batch", "batch for --scan (default 4)"}},
      "determinism_bench [--batch=8] [--threads=2] [--rounds=3] [--chunks=1,2] [--step] [--scan]");
  if (flags.has("help")) {
    std::printf("%s\n", flags.help().c_str());
    return 0;
  }
  const int threads = static_cast<int>(flags.get_int("threads", 2));
  const int64_t batch = flags.get_int("batch", 8);
  const int rounds = static_cast<int>(std::max<int64_t>(1, flags.get_int("rounds", 3)));
  std::vector<Mode> modes = {Mode{0}};
  std::stringstream chunks(flags.get("chunks", "1,2"));
  for (std::string item; std::getline(chunks, item, ',');)
    if (!item.empty()) modes.push_back(Mode{std::max<int64_t>(1, std::stoll(item))});
  medtl::set_num_threads(threads);
  std::printf("deterministic vs fast mode, %d threads\n", threads);
  if (flags.get("convs", "true") != "false") time_convs(modes, batch, rounds);
  if (flags.get_bool("step")) time_step(modes, batch, flags.get_int("step_size", 112), rounds);
  if (flags.get_bool("scan")) scan_bits({Mode{0}, Mode{medtl::kDefaultConvChunk}}, flags.get_int("scan_batch", 4));
  medtl::set_deterministic(true);
  medtl::set_deterministic_conv_chunk(medtl::kDefaultConvChunk);
  return 0;
}
