// cuDNN convolutions with a per-shape algorithm cache (tensor/cuda/conv_cudnn.h). Uses cuDNN 9's
// legacy convolution API (cudnnGet*_v7 / cudnnFind*), which cuDNN 9 still ships (deprecated in
// favour of the graph API, which a later NHWC/bf16 path can move to).
#include "tensor/cuda/conv_cudnn.h"

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "tensor/cuda/launch.h"
#include "tensor/cuda/reduce_cuda.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/determinism.h"

namespace medtl::cuda {
namespace {

enum class Kind { Forward = 0, BackwardData = 1, BackwardFilter = 2 };

const char* kind_name(Kind kind) {
  return kind == Kind::Forward ? "forward" : kind == Kind::BackwardData ? "backward_input" : "backward_weight";
}

const char* algo_name(Kind kind, int algo) {
  static const char* fwd[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                              "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* data[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* filter[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  if (algo < 0) return "?";
  if (kind == Kind::Forward) return algo < 8 ? fwd[algo] : "?";
  if (kind == Kind::BackwardData) return algo < 6 ? data[algo] : "?";
  return algo < 7 ? filter[algo] : "?";
}

// Implicit-GEMM, GEMM and direct algorithms sum each output in float32 like the CPU does; FFT and
// Winograd transform the data first and lose a few more bits (errors near 1e-4 are common).
bool accurate(Kind kind, int algo) {
  if (kind == Kind::Forward) return algo <= CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
  if (kind == Kind::BackwardData) return algo <= CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
         algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// Workspaces above this are skipped: a fast algorithm that needs gigabytes would crowd out the
// activations of a large batch.
constexpr size_t kMaxWorkspace = size_t{1} << 30;

int to_int(int64_t v, const char* what) {
  MEDTL_CHECK(v >= 0 && v <= (int64_t{1} << 31) - 1, "cuDNN convolution: ", what, " = ", v, " does not fit an int");
  return static_cast<int>(v);
}

// The descriptors of one convolution, destroyed with the object.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  // x: (N, C, H, W), w: (K, C, R, S), y: (N, K, P, Q)
  Descriptors(const Shape& xs, const Shape& ws, const Shape& ys, const ops::Conv2dParams& p) {
    MEDTL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    MEDTL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    MEDTL_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    MEDTL_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    MEDTL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(xs[0], "N"),
                                                 to_int(xs[1], "C"), to_int(xs[2], "H"), to_int(xs[3], "W")));
    MEDTL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(ys[0], "N"),
                                                 to_int(ys[1], "K"), to_int(ys[2], "P"), to_int(ys[3], "Q")));
    MEDTL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(ws[0], "K"),
                                                 to_int(ws[1], "C"), to_int(ws[2], "R"), to_int(ws[3], "S")));
    // Cross-correlation (no kernel flip), as PyTorch's conv2d and the CPU backend.
    MEDTL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, to_int(p.pad_h, "pad_h"), to_int(p.pad_w, "pad_w"), to_int(p.stride_h, "stride_h"),
        to_int(p.stride_w, "stride_w"), to_int(p.dilation_h, "dilation_h"), to_int(p.dilation_w, "dilation_w"),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // Both backends must agree on the output size; a mismatch means the parameters were mangled.
    int n = 0, k = 0, ph = 0, qw = 0;
    MEDTL_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &k, &ph, &qw));
    MEDTL_CHECK(Shape({n, k, ph, qw}) == ys, "cuDNN computes output ", shape_str(Shape({n, k, ph, qw})),
                " but conv2d_output_shape gives ", shape_str(ys), " for x ", shape_str(xs), ", w ", shape_str(ws));
  }
  ~Descriptors() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

// One cuDNN handle per (thread, GPU), set to the current stream on every call.
cudnnHandle_t handle_for(int device_index) {
  thread_local std::map<int, cudnnHandle_t> handles;  // leaked at exit: see blas_cuda.cu
  cudnnHandle_t& h = handles[device_index];
  if (h == nullptr) MEDTL_CUDNN_CHECK(cudnnCreate(&h));
  MEDTL_CUDNN_CHECK(cudnnSetStream(h, detail::stream()));
  return h;
}

struct Choice {
  int algo = -1;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace = 0;
  bool deterministic = false;
};

using Key = std::tuple<int, int, Shape, Shape, std::vector<int64_t>, bool>;
std::mutex g_cache_mutex;
std::map<Key, Choice> g_cache;

// The first acceptable entry of cuDNN's ranked list: a usable status, a workspace under the cap,
// and in deterministic mode CUDNN_DETERMINISTIC and FMA math; accurate algorithms first.
template <typename Perf>
Choice pick(Kind kind, const Perf* perf, int count, bool det, const std::string& what) {
  for (int pass = det ? 0 : 1; pass < 2; ++pass) {
    for (int i = 0; i < count; ++i) {
      const Perf& p = perf[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspace) continue;
      if (det && (p.determinism != CUDNN_DETERMINISTIC || p.mathType != CUDNN_FMA_MATH)) continue;
      if (pass == 0 && !accurate(kind, static_cast<int>(p.algo))) continue;
      return Choice{static_cast<int>(p.algo), p.mathType, p.memory, p.determinism == CUDNN_DETERMINISTIC};
    }
  }
  std::string seen;
  for (int i = 0; i < count; ++i)
    seen += str_cat(i ? "; " : "", algo_name(kind, static_cast<int>(perf[i].algo)), " status ",
                    cudnnGetErrorString(perf[i].status), perf[i].determinism == CUDNN_DETERMINISTIC ? "" : " non-det",
                    " math ", static_cast<int>(perf[i].mathType), " workspace ", perf[i].memory);
  ::medtl::detail::throw_error(__FILE__, __LINE__,
                      str_cat("cuDNN offers no ", det ? "deterministic float32 (FMA math) " : "", kind_name(kind),
                              " algorithm for ", what, " (", seen, "). ",
                              det ? "Try fast mode (--fast, non-deterministic), or another shape." : "",
                              " Rerun with CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr for cuDNN's reasons."));
}

Choice choose(Kind kind, int dev, const Shape& xs, const Shape& ws, const Shape& ys, const ops::Conv2dParams& p,
              Descriptors& d) {
  const bool det = deterministic();
  const Key key{static_cast<int>(kind), dev, xs, ws,
                std::vector<int64_t>{p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w}, det};
  {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) return it->second;
  }
  // Searched outside the lock (a timed search takes a while); two threads racing on a new shape
  // may both search, and the first to store wins, so every later call sees one choice.
  MEDTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, det ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
  cudnnHandle_t h = handle_for(dev);
  const std::string what = str_cat("x ", shape_str(xs), ", w ", shape_str(ws));
  int returned = 0;
  Choice choice;
  if (kind == Kind::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    if (det) MEDTL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
    else MEDTL_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
    choice = pick(kind, perf, returned, det, what);
  } else if (kind == Kind::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    if (det) MEDTL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf));
    else MEDTL_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf));
    choice = pick(kind, perf, returned, det, what);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    if (det) MEDTL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf));
    else MEDTL_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf));
    choice = pick(kind, perf, returned, det, what);
  }
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  return g_cache.emplace(key, choice).first->second;
}

// A workspace block from the caching allocator for one call. Released right after the call is
// queued: the block returns to the current stream's free list, and the next user on that stream
// runs after the convolution.
class Workspace {
 public:
  Workspace(size_t bytes, int dev) : dev_(dev), ptr_(bytes ? device_allocate(static_cast<int64_t>(bytes), dev) : nullptr) {}
  ~Workspace() { device_release(ptr_, dev_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return ptr_; }

 private:
  int dev_;
  void* ptr_;
};

void check_operands(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> operands) {
  const Tensor* first = operands.begin()->second;
  for (const auto& [name, t] : operands) {
    detail::check_float_gpu(op, name, *t);
    detail::check_same_device(op, *first, *t);
  }
}

std::string choice_str(Kind kind, const Choice& c) {
  return str_cat(algo_name(kind, c.algo), ", ", c.math == CUDNN_FMA_MATH ? "FMA math" : "tensor-op math allowed",
                 ", ", c.deterministic ? "deterministic" : "non-deterministic", ", workspace ",
                 format_bytes(static_cast<int64_t>(c.workspace)));
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dParams& params) {
  const char* op = "cuda::conv2d_forward";
  check_operands(op, {{"x", &x}, {"w", &w}});
  const Shape ys = ops::conv2d_output_shape(x.shape(), w.shape(), params);
  if (bias.defined()) {
    check_operands(op, {{"x", &x}, {"bias", &bias}});
    MEDTL_CHECK(bias.shape() == Shape({w.size(0)}), op, ": bias must be (K,) = (", w.size(0), ",), got ",
                shape_str(bias.shape()));
  }
  init();
  const int dev = x.device().index;
  Tensor y = empty(ys, DType::Float32, x.device());
  if (y.numel() == 0) return y;
  detail::DeviceGuard guard(dev);
  cudnnHandle_t h = handle_for(dev);
  const float one = 1.0f, zero = 0.0f;
  if (x.numel() == 0) {  // N == 0 was handled above; C == 0 is an empty sum
    MEDTL_CUDA_CHECK(cudaMemsetAsync(y.device_raw_data(), 0, static_cast<size_t>(y.numel()) * sizeof(float), detail::stream()));
  } else {
    Descriptors d(x.shape(), w.shape(), ys, params);
    const Choice c = choose(Kind::Forward, dev, x.shape(), w.shape(), ys, params, d);
    MEDTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
    Workspace ws(c.workspace, dev);
    MEDTL_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x, x.device_data<float>(), d.w, w.device_data<float>(), d.conv,
                                              static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws.get(), c.workspace,
                                              &zero, d.y, y.device_data<float>()));
  }
  if (bias.defined()) {
    // y += bias, broadcast over N, P, Q: one add per element, no reduction.
    cudnnTensorDescriptor_t bd = nullptr, yd = nullptr;
    MEDTL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bd));
    cudnnStatus_t status = cudnnCreateTensorDescriptor(&yd);
    if (status == CUDNN_STATUS_SUCCESS)
      status = cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, to_int(ys[1], "K"), 1, 1);
    if (status == CUDNN_STATUS_SUCCESS)
      status = cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(ys[0], "N"),
                                          to_int(ys[1], "K"), to_int(ys[2], "P"), to_int(ys[3], "Q"));
    if (status == CUDNN_STATUS_SUCCESS) status = cudnnAddTensor(h, &one, bd, bias.device_data<float>(), &one, yd, y.device_data<float>());
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyTensorDescriptor(bd);
    MEDTL_CUDNN_CHECK(status);
  }
  return y;
}

Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                             const ops::Conv2dParams& params) {
  const char* op = "cuda::conv2d_backward_input";
  check_operands(op, {{"grad_y", &grad_y}, {"w", &w}});
  const Shape ys = ops::conv2d_output_shape(x_shape, w.shape(), params);
  MEDTL_CHECK(grad_y.shape() == ys, op, ": grad_y is ", shape_str(grad_y.shape()), " but x ", shape_str(x_shape),
              " and w ", shape_str(w.shape()), " give outputs ", shape_str(ys));
  init();
  const int dev = grad_y.device().index;
  Tensor gx = empty(x_shape, DType::Float32, grad_y.device());
  if (gx.numel() == 0) return gx;
  detail::DeviceGuard guard(dev);
  if (grad_y.numel() == 0) {  // K == 0: nothing flows back
    MEDTL_CUDA_CHECK(cudaMemsetAsync(gx.device_raw_data(), 0, static_cast<size_t>(gx.numel()) * sizeof(float), detail::stream()));
    return gx;
  }
  Descriptors d(x_shape, w.shape(), ys, params);
  const Choice c = choose(Kind::BackwardData, dev, x_shape, w.shape(), ys, params, d);
  MEDTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
  Workspace ws(c.workspace, dev);
  const float one = 1.0f, zero = 0.0f;
  MEDTL_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_for(dev), &one, d.w, w.device_data<float>(), d.y,
                                                 grad_y.device_data<float>(), d.conv,
                                                 static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws.get(),
                                                 c.workspace, &zero, d.x, gx.device_data<float>()));
  return gx;
}

Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                              const ops::Conv2dParams& params) {
  const char* op = "cuda::conv2d_backward_weight";
  check_operands(op, {{"grad_y", &grad_y}, {"x", &x}});
  const Shape ys = ops::conv2d_output_shape(x.shape(), w_shape, params);
  MEDTL_CHECK(grad_y.shape() == ys, op, ": grad_y is ", shape_str(grad_y.shape()), " but x ", shape_str(x.shape()),
              " and w ", shape_str(w_shape), " give outputs ", shape_str(ys));
  init();
  const int dev = x.device().index;
  Tensor gw = empty(w_shape, DType::Float32, x.device());
  if (gw.numel() == 0) return gw;
  detail::DeviceGuard guard(dev);
  if (grad_y.numel() == 0 || x.numel() == 0) {  // N == 0 (or empty output): an empty sum
    MEDTL_CUDA_CHECK(cudaMemsetAsync(gw.device_raw_data(), 0, static_cast<size_t>(gw.numel()) * sizeof(float), detail::stream()));
    return gw;
  }
  Descriptors d(x.shape(), w_shape, ys, params);
  const Choice c = choose(Kind::BackwardFilter, dev, x.shape(), w_shape, ys, params, d);
  MEDTL_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math));
  Workspace ws(c.workspace, dev);
  const float one = 1.0f, zero = 0.0f;
  MEDTL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_for(dev), &one, d.x, x.device_data<float>(), d.y,
                                                   grad_y.device_data<float>(), d.conv,
                                                   static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws.get(),
                                                   c.workspace, &zero, d.w, gw.device_data<float>()));
  return gw;
}

Tensor conv2d_backward_bias(const Tensor& grad_y) {
  // Our fixed-tree channel sum, not cudnnConvolutionBackwardBias: its summation order is cuDNN's
  // business, and it is deprecated in cuDNN 9.
  return sum_channels(grad_y);
}

std::string conv2d_algorithm(const char* kind_str, const Shape& x_shape, const Shape& w_shape,
                             const ops::Conv2dParams& params, int device_index) {
  const std::string k = kind_str;
  MEDTL_CHECK(k == "forward" || k == "backward_input" || k == "backward_weight",
              "cuda::conv2d_algorithm: kind must be forward, backward_input or backward_weight, got '", k, "'");
  const Kind kind = k == "forward" ? Kind::Forward : k == "backward_input" ? Kind::BackwardData : Kind::BackwardFilter;
  const Shape ys = ops::conv2d_output_shape(x_shape, w_shape, params);
  init();
  (void)device_allocator(device_index);  // says clearly when there is no GPU
  detail::DeviceGuard guard(device_index);
  Descriptors d(x_shape, w_shape, ys, params);
  return choice_str(kind, choose(kind, device_index, x_shape, w_shape, ys, params, d));
}

int64_t conv2d_algorithm_cache_size() {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  return static_cast<int64_t>(g_cache.size());
}

}  // namespace medtl::cuda
