// Benchmark for float32 GEMM (oneDNN sgemm) and matmul: GFLOP/s at square and ResNet-like shapes
// with 1 and 2 threads, median over several timed repetitions; plus a float32 thread-determinism scan.
//
//   bazel run //experiments/bench:matmul_bench [-- reps]   (.bazelrc already builds with -O2)
//
// The last column, process CPU time over wall time during the 2-thread gemm runs, tells whether
// both threads really ran (about 2) or one waited on a core taken by other work (well below 2).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/ops/matmul.h"
#include "tensor/parallel.h"

namespace {

using medtl::DType;
using medtl::Generator;
using medtl::Shape;
using medtl::Tensor;

double cpu_s() {  // CPU time of the whole process, all threads
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of one call of f over `reps` samples; each sample repeats f until >= 50 ms so
// short calls are timed in bulk.
template <typename F>
double median_seconds(int reps, F&& f) {
  f();  // warm-up: page faults, oneDNN kernel generation
  int inner = 1;
  for (;;) {
    const double t0 = now_s();
    for (int i = 0; i < inner; ++i) f();
    if (now_s() - t0 >= 0.05 || inner >= 1 << 20) break;
    inner *= 2;
  }
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    for (int i = 0; i < inner; ++i) f();
    samples.push_back((now_s() - t0) / inner);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

struct GemmCase {
  std::string name;
  int64_t batch, m, n, k;
};

// One line: GFLOP/s for a batch of GEMMs through gemm() (folded into one call when batch > 1,
// as matmul does for (B, M, K) @ (K, N)), then the same through matmul() on tensors.
void bench_case(const GemmCase& c, int reps) {
  const int64_t m = c.m * c.batch;  // (B, M, K) @ (K, N) folds to one GEMM with M' = B * M
  Generator gen(7);
  const Tensor a = medtl::uniform({c.batch, c.m, c.k}, gen, -1, 1, DType::Float32);
  const Tensor b = medtl::uniform({c.k, c.n}, gen, -1, 1, DType::Float32);
  Tensor out = medtl::empty({c.batch, c.m, c.n});
  const double flops = 2.0 * m * c.n * c.k;
  std::printf("%-26s", c.name.c_str());
  double busy = 0.0;
  for (int threads : {1, 2}) {
    medtl::set_num_threads(threads);
    const double wall0 = now_s(), cpu0 = cpu_s();
    const double t_gemm = median_seconds(reps, [&] {
      medtl::ops::gemm(false, false, m, c.n, c.k, 1.f, a.data<float>(), c.k, b.data<float>(), c.n, 0.f,
                       out.data<float>(), c.n);
    });
    busy = (cpu_s() - cpu0) / (now_s() - wall0);
    const double t_mm = median_seconds(reps, [&] { out = medtl::ops::matmul(a, b); });
    std::printf("  %8.1f  %8.1f", flops / t_gemm * 1e-9, flops / t_mm * 1e-9);
  }
  std::printf("  %6.2f\n", busy);
}

// A batch of independent small GEMMs ((B, M, K) @ (B, K, N)): matmul threads over the batch.
void bench_batched(int64_t batch, int64_t s, int reps) {
  Generator gen(9);
  const Tensor a = medtl::uniform({batch, s, s}, gen, -1, 1, DType::Float32);
  const Tensor b = medtl::uniform({batch, s, s}, gen, -1, 1, DType::Float32);
  const double flops = 2.0 * batch * s * s * s;
  std::printf("%-26s", ("bmm " + std::to_string(batch) + "x" + std::to_string(s) + "^3").c_str());
  for (int threads : {1, 2}) {
    medtl::set_num_threads(threads);
    const double t = median_seconds(reps, [&] { (void)medtl::ops::matmul(a, b); });
    std::printf("  %8s  %8.1f", "-", flops / t * 1e-9);
  }
  std::printf("  %6s\n", "-");
}

// Whether float32 matmul gives the same bits with 1 and 2 threads.
void determinism_scan() {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{64, 2048}, {2048, 64}}, {{512, 512}, {512, 512}},   {{256, 256}, {256, 256}},
      {{1024, 1024}, {1024, 1024}}, {{8, 8192}, {8192, 8}}, {{1, 4096}, {4096, 1}},
      {{3136, 576}, {576, 64}}, {{784, 1152}, {1152, 128}}, {{49, 4608}, {4608, 512}},
      {{4096, 64}, {64, 4096}}, {{2048, 2048}, {2048, 2048}}};
  std::printf("\nfloat32 matmul, 1 vs 2 threads:\n");
  for (const auto& [sa, sb] : cases) {
    Generator gen(11);
    const Tensor a = medtl::uniform(sa, gen, -1, 1, DType::Float32);
    const Tensor b = medtl::uniform(sb, gen, -1, 1, DType::Float32);
    medtl::set_num_threads(1);
    const Tensor one = medtl::ops::matmul(a, b);
    medtl::set_num_threads(2);
    const Tensor two = medtl::ops::matmul(a, b);
    const auto v1 = one.to_vector<float>(), v2 = two.to_vector<float>();
    int64_t differ = 0;
    for (size_t i = 0; i < v1.size(); ++i) differ += std::memcmp(&v1[i], &v2[i], sizeof(float)) != 0;
    std::printf("  %-14s @ %-14s %s", medtl::shape_str(sa).c_str(), medtl::shape_str(sb).c_str(),
                differ == 0 ? "bit-identical\n" : "DIFFERS");
    if (differ) std::printf(" (%lld of %zu elements)\n", static_cast<long long>(differ), v1.size());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  std::printf("float32 GFLOP/s, median of %d reps (gemm = raw dnnl_sgemm call, matmul = tensor op incl. output "
              "allocation)\n",
              reps);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("load average before: %.2f %.2f %.2f (2 cores; > ~0.5 means other work competes)\n", load[0], load[1],
              load[2]);
  std::printf("%-26s  %8s  %8s  %8s  %8s  %6s\n", "shape (B x M,N,K)", "gemm 1t", "matmul 1t", "gemm 2t", "matmul 2t",
              "cpu/wall 2t");
  std::vector<GemmCase> cases;
  for (int64_t s : {256, 512, 1024, 2048}) cases.push_back({"square " + std::to_string(s), 1, s, s, s});
  cases.push_back({"conv2 3136,64,576", 1, 3136, 64, 576});
  cases.push_back({"conv3 784,128,1152", 1, 784, 128, 1152});
  cases.push_back({"conv4 196,256,2304", 1, 196, 256, 2304});
  cases.push_back({"conv5 49,512,4608", 1, 49, 512, 4608});
  cases.push_back({"conv5 8x 49,512,4608", 8, 49, 512, 4608});
  cases.push_back({"conv5 32x 49,512,4608", 32, 49, 512, 4608});
  cases.push_back({"fc 32x 1,1000,512", 32, 1, 1000, 512});
  for (const GemmCase& c : cases) bench_case(c, reps);
  bench_batched(256, 32, reps);
  bench_batched(64, 64, reps);
  determinism_scan();
  return 0;
}
