// Benchmark for float32 conv2d (oneDNN): forward, backward-data and backward-weights on every
// distinct ResNet-50 v1.5 convolution at batch 8, 224x224, with 2 threads, in each internal
// layout (ops::Conv2dLayout -- Plain: NCHW/OIHW straight into oneDNN; Blocked: format_tag::any plus
// reorders in and out, which the timings include since our tensors stay NCHW; Auto: the default,
// Plain or Blocked by shape). Prints ms and GFLOP/s per shape, then the totals over all 53
// convolutions of one ResNet-50 pass, each shape times its count. Layouts are timed shape by
// shape, interleaved, in several passes; best and median over all samples are both reported.
// Ends with a scan of which kernels give different float32 bits with 1 thread and with N.
//
// Measured on the 2-core AMD EPYC (AVX-512) dev machine, 2 threads, oneDNN 2.6.3, best of 8 samples
// per kernel (the machine was shared; medians ran 1.3-1.8x higher), one full ResNet-50 pass at batch
// 8 (65.4 GFLOP per direction), fwd / bwd-data / bwd-weights ms:
//   plain 224 / 245 / 279 (749 total), blocked 208 / 236 / 227 (671), auto 192 / 198 / 227 (618).
//
//   bazel run //experiments/bench:conv_bench [-- rounds reps [plain|blocked|auto|all] [threads] [batch]]
//   (.bazelrc already builds with -O2; defaults: 4 rounds x 2 reps, all layouts, 2 threads, batch 8)
//
// It runs in fast mode (tensor/determinism.h): one oneDNN primitive per call, threaded by oneDNN,
// which is what the layouts and the bit scan are about. The default, deterministic mode, runs
// each call in single-threaded batch chunks; experiments/bench/determinism_bench.cc compares the
// two modes.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "tensor/determinism.h"
#include "tensor/ops/conv2d.h"
#include "tensor/parallel.h"

namespace {

using medtl::DType;
using medtl::Generator;
using medtl::Shape;
using medtl::Tensor;
using medtl::ops::Conv2dLayout;
using medtl::ops::Conv2dParams;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {  // CPU time of the whole process, all threads
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Best and median seconds of one call over all its timed samples. On a shared machine the best is
// the better estimate of what the kernel can do: a descheduled thread stalls the other at a barrier.
struct Timing {
  double best = 0, median = 0;
};

Timing summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return {samples.front(), samples[samples.size() / 2]};
}

struct ConvShape {
  std::string name;
  int count;  // how many of ResNet-50's 53 convolutions have this shape
  int64_t c, hw, k, rs, stride, pad;
};

// ResNet-50 v1.5 (torchvision): the stride-2 of each downsampling block sits on its 3x3 conv.
std::vector<ConvShape> resnet50_convs() {
  return {
      {"conv1 7x7/2 3->64 @224", 1, 3, 224, 64, 7, 2, 3},
      {"l1 1x1 64->64 @56", 1, 64, 56, 64, 1, 1, 0},
      {"l1 3x3 64->64 @56", 3, 64, 56, 64, 3, 1, 1},
      {"l1 1x1 64->256 @56 (+ds)", 4, 64, 56, 256, 1, 1, 0},
      {"l1 1x1 256->64 @56", 2, 256, 56, 64, 1, 1, 0},
      {"l2 1x1 256->128 @56", 1, 256, 56, 128, 1, 1, 0},
      {"l2 3x3/2 128->128 @56", 1, 128, 56, 128, 3, 2, 1},
      {"l2 1x1/2 256->512 @56 ds", 1, 256, 56, 512, 1, 2, 0},
      {"l2 1x1 128->512 @28", 4, 128, 28, 512, 1, 1, 0},
      {"l2 1x1 512->128 @28", 3, 512, 28, 128, 1, 1, 0},
      {"l2 3x3 128->128 @28", 3, 128, 28, 128, 3, 1, 1},
      {"l3 1x1 512->256 @28", 1, 512, 28, 256, 1, 1, 0},
      {"l3 3x3/2 256->256 @28", 1, 256, 28, 256, 3, 2, 1},
      {"l3 1x1/2 512->1024 @28 ds", 1, 512, 28, 1024, 1, 2, 0},
      {"l3 1x1 256->1024 @14", 6, 256, 14, 1024, 1, 1, 0},
      {"l3 1x1 1024->256 @14", 5, 1024, 14, 256, 1, 1, 0},
      {"l3 3x3 256->256 @14", 5, 256, 14, 256, 3, 1, 1},
      {"l4 1x1 1024->512 @14", 1, 1024, 14, 512, 1, 1, 0},
      {"l4 3x3/2 512->512 @14", 1, 512, 14, 512, 3, 2, 1},
      {"l4 1x1/2 1024->2048 @14 ds", 1, 1024, 14, 2048, 1, 2, 0},
      {"l4 1x1 512->2048 @7", 3, 512, 7, 2048, 1, 1, 0},
      {"l4 1x1 2048->512 @7", 2, 2048, 7, 512, 1, 1, 0},
      {"l4 3x3 512->512 @7", 2, 512, 7, 512, 3, 1, 1},
  };
}

// Which oneDNN implementation each of the three kernels runs for this shape (cached plans).
std::string impls_of(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return medtl::ops::conv2d_onednn_impl("forward", x, w, p) + " | " +
         medtl::ops::conv2d_onednn_impl("backward_input", x, w, p) + " | " +
         medtl::ops::conv2d_onednn_impl("backward_weight", x, w, p);
}

const char* layout_name(Conv2dLayout layout) {
  return layout == Conv2dLayout::Plain ? "plain" : layout == Conv2dLayout::Blocked ? "blocked" : "auto";
}

constexpr const char* kKernels[3] = {"fwd", "bwd-data", "bwd-weights"};

// timings[shape][layout][kernel]. Measured in `rounds` passes over all shapes, `reps` timed calls
// per kernel and layout in each pass (after one untimed call per pass, which in the first pass
// builds and caches the primitive), with the layouts interleaved: a stretch of heavy load on a
// shared machine then hits every layout alike, and rarely every pass.
using Timings = std::vector<std::vector<std::array<Timing, 3>>>;

Timings measure(const std::vector<ConvShape>& shapes, const std::vector<Conv2dLayout>& layouts, int64_t batch,
                int reps, int rounds) {
  std::vector<std::vector<std::array<std::vector<double>, 3>>> samples(
      shapes.size(), std::vector<std::array<std::vector<double>, 3>>(layouts.size()));
  for (int round = 0; round < rounds; ++round) {
    for (size_t si = 0; si < shapes.size(); ++si) {
      const ConvShape& s = shapes[si];
      Conv2dParams p;
      p.stride_h = p.stride_w = s.stride;
      p.pad_h = p.pad_w = s.pad;
      const Shape x_shape = {batch, s.c, s.hw, s.hw}, w_shape = {s.k, s.c, s.rs, s.rs};
      const Shape y_shape = medtl::ops::conv2d_output_shape(x_shape, w_shape, p);
      Generator gen(3);
      const Tensor x = medtl::uniform(x_shape, gen, -1, 1, DType::Float32);
      const Tensor w = medtl::uniform(w_shape, gen, -0.1, 0.1, DType::Float32);
      const Tensor g = medtl::uniform(y_shape, gen, -1, 1, DType::Float32);
      for (size_t li = 0; li < layouts.size(); ++li) {
        medtl::ops::set_conv2d_onednn_layout(layouts[li]);
        for (int k = 0; k < 3; ++k) {
          auto call = [&] {
            if (k == 0) (void)medtl::ops::conv2d_forward(x, w, Tensor(), p);
            if (k == 1) (void)medtl::ops::conv2d_backward_input(g, w, x_shape, p);
            if (k == 2) (void)medtl::ops::conv2d_backward_weight(g, x, w_shape, p);
          };
          call();
          for (int r = 0; r < reps; ++r) {
            const double t0 = now_s();
            call();
            samples[si][li][k].push_back(now_s() - t0);
          }
        }
      }
      std::fprintf(stderr, ".");
    }
    std::fprintf(stderr, " round %d of %d\n", round + 1, rounds);
  }
  Timings timings(shapes.size(), std::vector<std::array<Timing, 3>>(layouts.size()));
  for (size_t si = 0; si < shapes.size(); ++si)
    for (size_t li = 0; li < layouts.size(); ++li)
      for (int k = 0; k < 3; ++k) timings[si][li][k] = summarize(samples[si][li][k]);
  return timings;
}

double gflop_of(const ConvShape& s, int64_t batch) {
  const int64_t out_hw = (s.hw + 2 * s.pad - s.rs) / s.stride + 1;
  return 2.0 * batch * s.k * out_hw * out_hw * s.c * s.rs * s.rs * 1e-9;
}

void report_layout(const std::vector<ConvShape>& shapes, const Timings& timings, size_t li, Conv2dLayout layout,
                   int64_t batch) {
  std::printf("\n== layout %s: best-of-reps ms and GFLOP/s (median ms in brackets) ==\n", layout_name(layout));
  std::printf("%-28s %3s %6s", "shape", "cnt", "GFLOP");
  for (const char* k : kKernels) std::printf("  %8s %6s %9s", (std::string(k) + " ms").c_str(), "GF/s", "(median)");
  std::printf("\n");
  double total_gflop = 0, best_ms[3] = {0, 0, 0}, median_ms[3] = {0, 0, 0};
  for (size_t si = 0; si < shapes.size(); ++si) {
    const ConvShape& s = shapes[si];
    const double gflop = gflop_of(s, batch);
    total_gflop += gflop * s.count;
    std::printf("%-28s %3d %6.2f", s.name.c_str(), s.count, gflop);
    for (int k = 0; k < 3; ++k) {
      const Timing& t = timings[si][li][k];
      std::printf("  %8.2f %6.1f (%7.2f)", t.best * 1e3, gflop / t.best, t.median * 1e3);
      best_ms[k] += t.best * 1e3 * s.count;
      median_ms[k] += t.median * 1e3 * s.count;
    }
    std::printf("\n");
  }
  std::printf("%-28s %3d %6.1f", "ResNet-50 total (53 convs)", 53, total_gflop);
  for (int k = 0; k < 3; ++k)
    std::printf("  %8.1f %6.1f (%7.1f)", best_ms[k], total_gflop / (best_ms[k] * 1e-3), median_ms[k]);
  std::printf("\n  one pass, best: fwd %.0f ms, fwd+bwd %.0f ms; median: fwd %.0f ms, fwd+bwd %.0f ms\n", best_ms[0],
              best_ms[0] + best_ms[1] + best_ms[2], median_ms[0], median_ms[0] + median_ms[1] + median_ms[2]);
  std::printf("oneDNN implementations (fwd | bwd-data | bwd-weights):\n");
  medtl::ops::set_conv2d_onednn_layout(layout);
  for (const ConvShape& s : shapes) {
    Conv2dParams p;
    p.stride_h = p.stride_w = s.stride;
    p.pad_h = p.pad_w = s.pad;
    std::printf("  %-28s %s\n", s.name.c_str(), impls_of({batch, s.c, s.hw, s.hw}, {s.k, s.c, s.rs, s.rs}, p).c_str());
  }
}

// Whether each kernel gives the same bits with 1 thread and with `threads`, per layout: prints
// "same" or how many elements differ and the largest difference relative to the tensor's max.
void determinism_scan(const std::vector<ConvShape>& shapes, const std::vector<Conv2dLayout>& layouts, int64_t batch,
                      int threads) {
  std::printf("\nfloat32 bits, 1 vs %d threads, batch %lld (per layout: fwd | bwd-data | bwd-weights)\n", threads,
              static_cast<long long>(batch));
  for (const ConvShape& s : shapes) {
    Conv2dParams p;
    p.stride_h = p.stride_w = s.stride;
    p.pad_h = p.pad_w = s.pad;
    const Shape x_shape = {batch, s.c, s.hw, s.hw}, w_shape = {s.k, s.c, s.rs, s.rs};
    Generator gen(5);
    const Tensor x = medtl::uniform(x_shape, gen, -1, 1, DType::Float32);
    const Tensor w = medtl::uniform(w_shape, gen, -0.1, 0.1, DType::Float32);
    const Tensor g = medtl::uniform(medtl::ops::conv2d_output_shape(x_shape, w_shape, p), gen, -1, 1, DType::Float32);
    std::printf("  %-28s", s.name.c_str());
    for (Conv2dLayout layout : layouts) {
      medtl::ops::set_conv2d_onednn_layout(layout);
      std::printf("  %s:", layout_name(layout));
      for (int k = 0; k < 3; ++k) {
        Tensor out[2];
        for (int i = 0; i < 2; ++i) {
          medtl::set_num_threads(i == 0 ? 1 : threads);
          out[i] = k == 0   ? medtl::ops::conv2d_forward(x, w, Tensor(), p)
                   : k == 1 ? medtl::ops::conv2d_backward_input(g, w, x_shape, p)
                            : medtl::ops::conv2d_backward_weight(g, x, w_shape, p);
        }
        const float* a = out[0].data<float>();
        const float* b = out[1].data<float>();
        int64_t differ = 0;
        double max_abs = 0, max_diff = 0;
        for (int64_t e = 0; e < out[0].numel(); ++e) {
          differ += std::memcmp(&a[e], &b[e], sizeof(float)) != 0;
          max_abs = std::max(max_abs, static_cast<double>(std::fabs(a[e])));
          max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[e] - b[e])));
        }
        if (differ == 0) std::printf(" same");
        else std::printf(" %.0f%%,%.0e", 100.0 * differ / out[0].numel(), max_diff / std::max(max_abs, 1e-30));
        std::printf(k < 2 ? " |" : "");
      }
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  medtl::set_num_threads(threads);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 4;
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 2;
  const std::string which = argc > 3 ? argv[3] : "all";
  const int threads = argc > 4 ? std::max(1, std::atoi(argv[4])) : 2;
  const int64_t batch = argc > 5 ? std::max(1, std::atoi(argv[5])) : 8;
  medtl::set_num_threads(threads);
  medtl::set_deterministic(false);  // fast mode: oneDNN's own threading (see the file comment)
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("float32 conv2d through oneDNN, ResNet-50 v1.5 shapes, batch %lld, %d threads, %d rounds x %d reps\n",
              static_cast<long long>(batch), threads, rounds, reps);
  std::printf("load average before: %.2f %.2f %.2f (other work on the cores slows every figure)\n", load[0], load[1],
              load[2]);
  std::vector<Conv2dLayout> layouts;
  if (which == "plain" || which == "all") layouts.push_back(Conv2dLayout::Plain);
  if (which == "blocked" || which == "all") layouts.push_back(Conv2dLayout::Blocked);
  if (which == "auto" || which == "all") layouts.push_back(Conv2dLayout::Auto);
  if (layouts.empty()) {
    std::fprintf(stderr, "layout must be plain, blocked, auto or all, got %s\n", which.c_str());
    return 2;
  }
  const std::vector<ConvShape> shapes = resnet50_convs();
  const double wall0 = now_s(), cpu0 = cpu_s();
  const Timings timings = measure(shapes, layouts, batch, reps, rounds);
  const double busy = (cpu_s() - cpu0) / (now_s() - wall0);
  getloadavg(load, 3);
  std::printf("process cpu/wall while timing: %.2f (about %d when nothing else competes); load average after: %.2f\n",
              busy, threads, load[0]);
  for (size_t li = 0; li < layouts.size(); ++li) report_layout(shapes, timings, li, layouts[li], batch);
  if (threads > 1) determinism_scan(shapes, layouts, batch, threads);
  return 0;
}
