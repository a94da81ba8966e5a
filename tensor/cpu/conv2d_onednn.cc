// conv2d's public kernels: float32 through oneDNN primitives (forward, backward-data,
// backward-weights), everything else through the plain loops of conv2d_reference.cc. The bias
// gradient is ops::sum over (N, P, Q) on every path, for its fixed, thread-independent order.
//
// Deterministic mode (tensor/determinism.h, the default) runs each float32 kernel chunk by chunk
// over the batch: chunks of deterministic_conv_chunk() samples, each through a primitive built and
// run for one thread, spread over parallel_for. Forward and backward-data write disjoint slices of
// their output; backward-weights writes chunk 0's gradient into the output and adds the other
// chunks' partials to it element by element in ascending chunk order. Every float32 bit then
// depends on the shapes alone, not on the thread count. Fast mode hands the whole batch to one
// primitive that oneDNN threads itself (its backward-weights reduction over the batch is split by
// the thread count; see tests/conv2d_test.cc).
//
// Primitives are built once per (kind, layout, shapes, params, bias, thread count) and kept in a
// small mutex-guarded cache, so a training loop builds each of its convolutions once. Tensors go
// in and come out as plain NCHW / KCRS; where the layout is Blocked (see Conv2dLayout) a call
// reorders into the formats oneDNN prefers and back. Scratchpads and reorder buffers live in
// per-thread buffers that grow to the largest call and are reused, so concurrent calls from
// several threads never share one (every primitive runs with a user-provided scratchpad).
#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/backend.h"
#include "tensor/determinism.h"
#include "tensor/flops.h"
#include "tensor/ops/conv2d.h"
#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"

namespace medtl::ops {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

enum class Kind : int64_t { Forward = 0, BackwardInput = 1, BackwardWeight = 2 };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Forward: return "conv2d_forward";
    case Kind::BackwardInput: return "conv2d_backward_input";
    case Kind::BackwardWeight: return "conv2d_backward_weight";
  }
  return "conv2d";
}

// The layout setting; Auto is resolved per call by resolve_layout.
std::atomic<Conv2dLayout> g_layout{Conv2dLayout::Auto};

// What a failing call was doing, for the error message.
struct Context {
  Kind kind;
  const Shape& x;
  const Shape& w;
  const Conv2dParams& params;
  std::string str() const {
    return str_cat("x ", shape_str(x), ", w ", shape_str(w), ", stride (", params.stride_h, ", ", params.stride_w,
                   "), padding (", params.pad_h, ", ", params.pad_w, "), dilation (", params.dilation_h, ", ",
                   params.dilation_w, ")");
  }
};

// Runs f(); turns a dnnl::error into medtl::Error naming the op, the oneDNN call, its status and
// the shapes. `line` is the caller's, so the message points at the failing call.
template <typename F>
auto checked(const Context& ctx, const char* call, int line, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    detail::throw_error(__FILE__, line,
                        str_cat(kind_name(ctx.kind), ": oneDNN ", call, " failed with status ", dnnl_status2str(e.status),
                                " (", e.what(), ") for ", ctx.str(),
                                "; as a workaround run this convolution in float64 (.to(DType::Float64)), which uses "
                                "the reference loops, and report the shapes"));
  }
}
#define MEDTL_DNNL_CALL(ctx, call, ...) checked((ctx), (call), __LINE__, [&] { return __VA_ARGS__; })

const dnnl::engine& cpu_engine(const Context& ctx) {
  static const dnnl::engine engine =
      MEDTL_DNNL_CALL(ctx, "engine(cpu, 0)", dnnl::engine(dnnl::engine::kind::cpu, 0));
  return engine;
}

// One stream per calling thread, on the one engine: CPU streams execute synchronously, and a
// stream of its own keeps a thread from ever sharing stream state with another.
dnnl::stream& cpu_stream(const Context& ctx) {
  thread_local dnnl::stream stream = MEDTL_DNNL_CALL(ctx, "stream(engine)", dnnl::stream(cpu_engine(ctx)));
  return stream;
}

// A 64-byte aligned block that grows to the largest request and is then reused.
class GrowingBuffer {
 public:
  ~GrowingBuffer() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      const size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      size_ = data_ != nullptr ? rounded : 0;
      MEDTL_CHECK(data_ != nullptr, "conv2d: could not allocate a ", rounded, "-byte oneDNN work buffer");
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Per-thread buffers: [0], [1] reordered inputs, [2] the output before its reorder, [3] the
// convolution's scratchpad, [4] a reorder's scratchpad.
GrowingBuffer& work_buffer(int slot) {
  thread_local std::array<GrowingBuffer, 5> buffers;
  return buffers[slot];
}

// One tensor argument of a primitive: the plain layout the caller holds, the layout the
// primitive wants, and the reorder between them when they differ.
struct Operand {
  int arg = 0;
  memory::desc user;
  memory::desc inner;
  bool needs_reorder = false;
  dnnl::reorder reorder;  // user -> inner for inputs, inner -> user for the output
  memory::desc reorder_scratchpad;
};

struct Plan {
  dnnl::primitive primitive;
  Operand in0, in1, out;
  bool has_bias = false;
  memory::desc bias;
  memory::desc scratchpad;
  std::string impl;  // e.g. "jit:avx512_core", plus the internal formats
};

// A blocked layout in oneDNN's letter notation: dims from outermost stride to innermost, then the
// inner blocks, e.g. "abcd16b" for nChw16c.
std::string format_str(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked) return "(not blocked)";
  const auto& blocking = d.format_desc.blocking;
  std::vector<int> order(d.ndims);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return blocking.strides[a] > blocking.strides[b]; });
  std::string out;
  for (int dim : order) out += static_cast<char>('a' + dim);
  for (int i = 0; i < blocking.inner_nblks; ++i)
    out += str_cat(blocking.inner_blks[i], static_cast<char>('a' + blocking.inner_idxs[i]));
  return out;
}

const char* arg_name(int arg) {
  switch (arg) {
    case DNNL_ARG_SRC: return "src";
    case DNNL_ARG_WEIGHTS: return "weights";
    case DNNL_ARG_DST: return "dst";
    case DNNL_ARG_DIFF_SRC: return "diff_src";
    case DNNL_ARG_DIFF_WEIGHTS: return "diff_weights";
    case DNNL_ARG_DIFF_DST: return "diff_dst";
    default: return "arg";
  }
}

Operand make_operand(const Context& ctx, const dnnl::engine& engine, int arg, const memory::desc& user,
                     const memory::desc& inner, bool is_output) {
  Operand op;
  op.arg = arg;
  op.user = user;
  op.inner = inner;
  op.needs_reorder = !(user == inner);
  if (op.needs_reorder) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto pd = MEDTL_DNNL_CALL(ctx, "reorder primitive_desc creation",
                                    is_output ? dnnl::reorder::primitive_desc(engine, inner, engine, user, attr)
                                              : dnnl::reorder::primitive_desc(engine, user, engine, inner, attr));
    op.reorder = MEDTL_DNNL_CALL(ctx, "reorder creation", dnnl::reorder(pd));
    op.reorder_scratchpad = pd.scratchpad_desc();
  }
  return op;
}

std::shared_ptr<const Plan> build_plan(const Context& ctx, Conv2dLayout layout, bool has_bias) {
  const dnnl::engine& engine = cpu_engine(ctx);
  const Shape y_shape = conv2d_output_shape(ctx.x, ctx.w, ctx.params);
  const memory::dims xd(ctx.x.begin(), ctx.x.end()), wd(ctx.w.begin(), ctx.w.end()), yd(y_shape.begin(), y_shape.end());
  const memory::dims strides = {ctx.params.stride_h, ctx.params.stride_w};
  const memory::dims dilates = {ctx.params.dilation_h - 1, ctx.params.dilation_w - 1};  // oneDNN: 0 = none
  const memory::dims padding = {ctx.params.pad_h, ctx.params.pad_w};
  const auto f32 = memory::data_type::f32;
  const memory::desc x_user(xd, f32, Tag::nchw), w_user(wd, f32, Tag::oihw), y_user(yd, f32, Tag::nchw);
  const bool any = layout == Conv2dLayout::Blocked;
  const memory::desc x_md = any ? memory::desc(xd, f32, Tag::any) : x_user;
  const memory::desc w_md = any ? memory::desc(wd, f32, Tag::any) : w_user;
  const memory::desc y_md = any ? memory::desc(yd, f32, Tag::any) : y_user;
  const memory::desc b_md = has_bias ? memory::desc({ctx.w[0]}, f32, Tag::a) : memory::desc();

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // our per-thread buffer: safe across threads
  // The forward descriptor: the forward primitive itself, or the hint the backward ones require.
  const auto fwd_pd = MEDTL_DNNL_CALL(
      ctx, "convolution_forward primitive_desc creation",
      dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                          x_md, w_md, ctx.kind == Kind::Forward ? b_md : memory::desc(), y_md, strides,
                                          dilates, padding, padding),
          attr, engine));

  auto plan = std::make_shared<Plan>();
  memory::desc scratchpad;
  std::string impl;
  switch (ctx.kind) {
    case Kind::Forward: {
      plan->primitive = MEDTL_DNNL_CALL(ctx, "convolution_forward creation", dnnl::convolution_forward(fwd_pd));
      plan->in0 = make_operand(ctx, engine, DNNL_ARG_SRC, x_user, fwd_pd.src_desc(), false);
      plan->in1 = make_operand(ctx, engine, DNNL_ARG_WEIGHTS, w_user, fwd_pd.weights_desc(), false);
      plan->out = make_operand(ctx, engine, DNNL_ARG_DST, y_user, fwd_pd.dst_desc(), true);
      plan->has_bias = has_bias;
      plan->bias = b_md;
      scratchpad = fwd_pd.scratchpad_desc();
      impl = fwd_pd.impl_info_str();
      break;
    }
    case Kind::BackwardInput: {
      const auto pd = MEDTL_DNNL_CALL(
          ctx, "convolution_backward_data primitive_desc creation",
          dnnl::convolution_backward_data::primitive_desc(
              dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, x_md, w_md, y_md, strides,
                                                    dilates, padding, padding),
              attr, engine, fwd_pd));
      plan->primitive = MEDTL_DNNL_CALL(ctx, "convolution_backward_data creation", dnnl::convolution_backward_data(pd));
      plan->in0 = make_operand(ctx, engine, DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), false);
      plan->in1 = make_operand(ctx, engine, DNNL_ARG_WEIGHTS, w_user, pd.weights_desc(), false);
      plan->out = make_operand(ctx, engine, DNNL_ARG_DIFF_SRC, x_user, pd.diff_src_desc(), true);
      scratchpad = pd.scratchpad_desc();
      impl = pd.impl_info_str();
      break;
    }
    case Kind::BackwardWeight: {
      const auto pd = MEDTL_DNNL_CALL(
          ctx, "convolution_backward_weights primitive_desc creation",
          dnnl::convolution_backward_weights::primitive_desc(
              dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, x_md, w_md, y_md, strides,
                                                       dilates, padding, padding),
              attr, engine, fwd_pd));
      plan->primitive =
          MEDTL_DNNL_CALL(ctx, "convolution_backward_weights creation", dnnl::convolution_backward_weights(pd));
      plan->in0 = make_operand(ctx, engine, DNNL_ARG_SRC, x_user, pd.src_desc(), false);
      plan->in1 = make_operand(ctx, engine, DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), false);
      plan->out = make_operand(ctx, engine, DNNL_ARG_DIFF_WEIGHTS, w_user, pd.diff_weights_desc(), true);
      scratchpad = pd.scratchpad_desc();
      impl = pd.impl_info_str();
      break;
    }
  }
  plan->scratchpad = scratchpad;
  plan->impl = impl;
  for (const Operand* op : {&plan->in0, &plan->in1, &plan->out})
    if (op->needs_reorder) plan->impl += str_cat(" ", arg_name(op->arg), "=", format_str(op->inner));
  return plan;
}

// ---- The plan cache. ----
using PlanKey = std::array<int64_t, 17>;
constexpr size_t kMaxPlans = 256;  // ResNet-50 training needs ~70; beyond the cap the cache starts over

// Auto -> Plain or Blocked, from the shapes alone. Plain wins where the convolution is a plain
// GEMM (1x1, stride 1, no padding: no im2col) over enough pixels to keep GEMM efficient and make
// the reorders of the blocked path costly, and for backward-data into fewer than one 16-channel
// block (a network's first layer: oneDNN's blocked kernel for it ran at half the GEMM path's
// speed on conv1); elsewhere oneDNN's direct blocked kernels win.
Conv2dLayout resolve_layout(const Context& ctx) {
  const Conv2dLayout layout = g_layout.load();
  if (layout != Conv2dLayout::Auto) return layout;
  const Conv2dParams& p = ctx.params;
  const bool pointwise = ctx.w[2] == 1 && ctx.w[3] == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
                         p.pad_w == 0;
  constexpr int64_t kMinPixels = 28 * 28;
  if (pointwise && ctx.x[2] * ctx.x[3] >= kMinPixels) return Conv2dLayout::Plain;
  if (ctx.kind == Kind::BackwardInput && ctx.x[1] < 16) return Conv2dLayout::Plain;
  return Conv2dLayout::Blocked;
}

std::shared_ptr<const Plan> get_plan(const Context& ctx, bool has_bias) {
  static std::mutex mutex;
  static std::map<PlanKey, std::shared_ptr<const Plan>> plans;
  const Conv2dLayout layout = resolve_layout(ctx);
  const Conv2dParams& p = ctx.params;
  // oneDNN sizes some kernels' work split by the thread count when the primitive is created, so a
  // primitive is only reused at the thread count it was built for. Inside a parallel region
  // oneDNN runs single-threaded, so that counts as 1 thread -- and the primitive is built with
  // this thread's OpenMP count set to 1 too: oneDNN's kernels read omp_get_max_threads() when
  // they are created, which inside a region still says the outer count.
  const int64_t threads = omp_in_parallel() ? 1 : get_num_threads();
  const PlanKey key = {static_cast<int64_t>(ctx.kind), static_cast<int64_t>(layout), has_bias ? 1 : 0,
                       ctx.x[0], ctx.x[1], ctx.x[2], ctx.x[3], ctx.w[0], ctx.w[2], ctx.w[3],
                       p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, threads};
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  std::shared_ptr<const Plan> plan;
  {
    OmpThreadsScope build_threads(static_cast<int>(threads));
    plan = build_plan(ctx, layout, has_bias);  // outside the lock: it may take ms
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (plans.size() >= kMaxPlans) plans.clear();  // callers holding a plan keep it alive
  return plans.emplace(key, std::move(plan)).first->second;  // another thread's equal plan wins a race
}

// Runs a reorder primitive (user <-> inner layout) with its scratchpad.
void run_reorder(const Context& ctx, const Operand& op, const memory& from, const memory& to) {
  const dnnl::engine& engine = cpu_engine(ctx);
  std::unordered_map<int, memory> reorder_args = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  if (op.reorder_scratchpad.get_size() > 0)
    reorder_args.emplace(DNNL_ARG_SCRATCHPAD,
                         memory(op.reorder_scratchpad, engine, work_buffer(4).get(op.reorder_scratchpad.get_size())));
  op.reorder.execute(cpu_stream(ctx), reorder_args);
}

// Runs a plan on plain float32 buffers (inputs contiguous, output allocated by the caller).
// in1_inner: in1 already holds the plan's inner layout of that operand (a weight tensor reordered
// once for several chunks); out_inner: write the output in its inner layout, without the reorder
// back (the caller sums chunks there and reorders once).
void execute(const Context& ctx, const Plan& plan, const void* in0, const void* in1, const void* bias, void* out,
             bool in1_inner = false, bool out_inner = false) {
  const dnnl::engine& engine = cpu_engine(ctx);
  dnnl::stream& stream = cpu_stream(ctx);
  MEDTL_DNNL_CALL(ctx, "primitive execution", [&] {
    std::unordered_map<int, memory> args;
    auto bind_input = [&](const Operand& op, const void* data, int slot, bool already_inner) {
      if (!op.needs_reorder || already_inner) {
        args.emplace(op.arg, memory(already_inner ? op.inner : op.user, engine, const_cast<void*>(data)));
        return;
      }
      memory user(op.user, engine, const_cast<void*>(data));
      memory inner(op.inner, engine, work_buffer(slot).get(op.inner.get_size()));
      run_reorder(ctx, op, user, inner);
      args.emplace(op.arg, inner);
    };
    bind_input(plan.in0, in0, 0, false);
    bind_input(plan.in1, in1, 1, in1_inner);
    const bool reorder_out = plan.out.needs_reorder && !out_inner;
    memory user_out(out_inner ? plan.out.inner : plan.out.user, engine, out);
    memory inner_out = reorder_out
                           ? memory(plan.out.inner, engine, work_buffer(2).get(plan.out.inner.get_size()))
                           : user_out;
    args.emplace(plan.out.arg, inner_out);
    if (plan.has_bias) args.emplace(DNNL_ARG_BIAS, memory(plan.bias, engine, const_cast<void*>(bias)));
    if (plan.scratchpad.get_size() > 0)
      args.emplace(DNNL_ARG_SCRATCHPAD, memory(plan.scratchpad, engine, work_buffer(3).get(plan.scratchpad.get_size())));
    plan.primitive.execute(stream, args);
    if (reorder_out) run_reorder(ctx, plan.out, inner_out, user_out);
    stream.wait();
  }());
}

// Reorders a plain operand into its inner layout (to_inner) or an inner output back to plain.
void reorder_operand(const Context& ctx, const Operand& op, const void* from, void* to, bool to_inner) {
  const dnnl::engine& engine = cpu_engine(ctx);
  MEDTL_DNNL_CALL(ctx, "reorder execution", [&] {
    memory src(to_inner ? op.user : op.inner, engine, const_cast<void*>(from));
    memory dst(to_inner ? op.inner : op.user, engine, to);
    run_reorder(ctx, op, src, dst);
    cpu_stream(ctx).wait();
    return 0;
  }());
}

bool any_empty(const Shape& a, const Shape& b, const Shape& c) {
  return shape_numel(a) == 0 || shape_numel(b) == 0 || shape_numel(c) == 0;
}


// ---- Deterministic mode: the batch in fixed chunks, one thread per primitive. ----

// The chunks of a batch of n samples: [i * chunk, min(n, (i + 1) * chunk)).
struct Chunks {
  int64_t n = 0, chunk = 1, count = 0;
  explicit Chunks(int64_t batch) : n(batch), chunk(deterministic_conv_chunk()), count((batch + chunk - 1) / chunk) {}
  int64_t begin(int64_t i) const { return i * chunk; }
  int64_t size(int64_t i) const { return std::min(n, (i + 1) * chunk) - i * chunk; }
};

Shape with_batch(const Shape& s, int64_t n) {
  Shape out = s;
  out[0] = n;
  return out;
}

// The single-threaded plans of a chunked call: one for full chunks, one for a ragged last chunk
// (the same plan when the batch divides evenly).
struct ChunkPlans {
  Shape x_full, x_last;
  std::shared_ptr<const Plan> full, last;
  const Plan& of(const Chunks& chunks, int64_t i) const { return i == chunks.count - 1 ? *last : *full; }
  const Shape& x_of(const Chunks& chunks, int64_t i) const { return i == chunks.count - 1 ? x_last : x_full; }
};

ChunkPlans chunk_plans(Kind kind, const Chunks& chunks, const Shape& x_shape, const Shape& w_shape,
                       const Conv2dParams& params, bool has_bias) {
  OmpThreadsScope one_thread(1);  // built (and keyed) for exactly one thread
  ChunkPlans p;
  p.x_full = with_batch(x_shape, chunks.size(0));
  p.x_last = with_batch(x_shape, chunks.size(chunks.count - 1));
  p.full = get_plan(Context{kind, p.x_full, w_shape, params}, has_bias);
  p.last = p.x_last == p.x_full ? p.full : get_plan(Context{kind, p.x_last, w_shape, params}, has_bias);
  return p;
}

// Forward or backward-data, deterministic: chunk i runs single-threaded on its slice of the batch
// operand (in0: x or grad_y) and writes its slice of `out`; the weights (in1) are reordered into
// the primitives' layout once for all chunks. No sums cross chunks, so the bits are those of one
// single-threaded primitive per chunk.
void run_sliced(Kind kind, const Shape& x_shape, const Shape& w_shape, const Shape& y_shape,
                const Conv2dParams& params, const float* in0, const float* in1, const float* bias, float* out) {
  const Chunks chunks(x_shape[0]);
  const ChunkPlans plans = chunk_plans(kind, chunks, x_shape, w_shape, params, bias != nullptr);
  const int64_t x_per = shape_numel(x_shape) / x_shape[0], y_per = shape_numel(y_shape) / y_shape[0];
  const int64_t in_per = kind == Kind::Forward ? x_per : y_per, out_per = kind == Kind::Forward ? y_per : x_per;
  const Operand& w_op = plans.full->in1;
  const bool share_w = w_op.needs_reorder && w_op.inner == plans.last->in1.inner;
  Tensor w_inner;
  if (share_w) {
    w_inner = empty({static_cast<int64_t>((w_op.inner.get_size() + 3) / 4)}, DType::Float32);
    reorder_operand(Context{kind, plans.x_full, w_shape, params}, w_op, in1, w_inner.data<float>(), true);
  }
  const float* w = share_w ? w_inner.data<float>() : in1;
  parallel_for(0, chunks.count, 1, [&](int64_t begin, int64_t end) {
    OmpThreadsScope one_thread(1);
    for (int64_t i = begin; i < end; ++i) {
      const Context ctx{kind, plans.x_of(chunks, i), w_shape, params};
      execute(ctx, plans.of(chunks, i), in0 + chunks.begin(i) * in_per, w, bias, out + chunks.begin(i) * out_per,
              share_w);
    }
  });
}

// Backward-weights, deterministic: gw = p_0 + p_1 + ... + p_{count-1}, added left to right for
// every element, p_i being chunk i's gradient computed single-threaded. Chunks are computed in
// groups (as many at once as there are threads, within a memory cap): chunk 0 straight into the
// accumulator, the others into a buffer, then added to the accumulator in ascending chunk order.
// The group size decides only how much runs at once, never the order of the additions, so the
// bits depend on neither it nor the thread count. When oneDNN's gradient layout is blocked (and
// the same for every chunk) the sums run in that layout and one reorder at the end makes it
// plain: a reorder only moves values, so this gives the same bits as summing plain copies.
void backward_weight_chunked(const Shape& x_shape, const Shape& w_shape, const Shape& y_shape,
                             const Conv2dParams& params, const float* x, const float* gy, float* gw) {
  const Chunks chunks(x_shape[0]);
  const ChunkPlans plans = chunk_plans(Kind::BackwardWeight, chunks, x_shape, w_shape, params, false);
  const int64_t x_per = shape_numel(x_shape) / x_shape[0], y_per = shape_numel(y_shape) / y_shape[0];
  const Operand& out_op = plans.full->out;
  const bool inner_sum = out_op.needs_reorder && out_op.inner == plans.last->out.inner;
  const int64_t wnum = inner_sum ? static_cast<int64_t>((out_op.inner.get_size() + 3) / 4) : shape_numel(w_shape);
  Tensor acc_inner = inner_sum ? empty({wnum}, DType::Float32) : Tensor();
  float* acc = inner_sum ? acc_inner.data<float>() : gw;

  constexpr int64_t kMaxPartialBytes = int64_t{256} << 20;
  const int64_t by_memory = std::max<int64_t>(1, kMaxPartialBytes / (wnum * static_cast<int64_t>(sizeof(float))));
  const int64_t group =
      std::max<int64_t>(1, std::min({chunks.count, by_memory, static_cast<int64_t>(get_num_threads())}));
  Tensor partials = chunks.count > 1 ? empty({group, wnum}, DType::Float32) : Tensor();
  float* p = chunks.count > 1 ? partials.data<float>() : nullptr;
  for (int64_t first = 0; first < chunks.count; first += group) {
    const int64_t take = std::min(group, chunks.count - first);
    parallel_for(0, take, 1, [&](int64_t begin, int64_t end) {
      OmpThreadsScope one_thread(1);
      for (int64_t s = begin; s < end; ++s) {
        const int64_t i = first + s;
        const Context ctx{Kind::BackwardWeight, plans.x_of(chunks, i), w_shape, params};
        execute(ctx, plans.of(chunks, i), x + chunks.begin(i) * x_per, gy + chunks.begin(i) * y_per, nullptr,
                i == 0 ? acc : p + s * wnum, false, inner_sum);
      }
    });
    const int64_t s0 = first == 0 ? 1 : 0;  // chunk 0 is already in the accumulator
    if (s0 >= take) continue;
    parallel_for(0, wnum, 32768, [&](int64_t begin, int64_t end) {
      for (int64_t s = s0; s < take; ++s) {
        const float* ps = p + s * wnum;
        for (int64_t e = begin; e < end; ++e) acc[e] += ps[e];
      }
    });
  }
  if (inner_sum) reorder_operand(Context{Kind::BackwardWeight, plans.x_full, w_shape, params}, out_op, acc, gw, false);
}

}  // namespace

void set_conv2d_onednn_layout(Conv2dLayout layout) { g_layout.store(layout); }
Conv2dLayout get_conv2d_onednn_layout() { return g_layout.load(); }

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& params) {
  const Shape y_shape = conv2d_check_forward("conv2d_forward", x, w, bias, params);
  add_counted_flops(conv2d_flops(y_shape, w.shape()));
  if (DeviceBackend* gpu = backend_for("conv2d_forward", {&x, &w, &bias})) return gpu->conv2d_forward(x, w, bias, params);
  if (x.dtype() != DType::Float32 || any_empty(x.shape(), w.shape(), y_shape))
    return conv2d_forward_reference(x, w, bias, params);
  const Tensor xc = x.contiguous(), wc = w.contiguous(), bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor y = empty(y_shape, DType::Float32);
  if (deterministic()) {
    run_sliced(Kind::Forward, x.shape(), w.shape(), y_shape, params, xc.data<float>(), wc.data<float>(),
               bc.defined() ? bc.data<float>() : nullptr, y.data<float>());
    return y;
  }
  const Context ctx{Kind::Forward, x.shape(), w.shape(), params};
  const auto plan = get_plan(ctx, bias.defined());
  execute(ctx, *plan, xc.data<float>(), wc.data<float>(), bc.defined() ? bc.data<float>() : nullptr, y.data<float>());
  return y;
}

Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape, const Conv2dParams& params) {
  const Shape y_shape = conv2d_check_backward_input("conv2d_backward_input", grad_y, w, x_shape, params);
  add_counted_flops(conv2d_flops(y_shape, w.shape()));
  if (DeviceBackend* gpu = backend_for("conv2d_backward_input", {&grad_y, &w}))
    return gpu->conv2d_backward_input(grad_y, w, x_shape, params);
  if (grad_y.dtype() != DType::Float32 || any_empty(x_shape, w.shape(), y_shape))
    return conv2d_backward_input_reference(grad_y, w, x_shape, params);
  const Tensor gyc = grad_y.contiguous(), wc = w.contiguous();
  Tensor gx = empty(x_shape, DType::Float32);
  if (deterministic()) {
    run_sliced(Kind::BackwardInput, x_shape, w.shape(), y_shape, params, gyc.data<float>(), wc.data<float>(), nullptr,
               gx.data<float>());
    return gx;
  }
  const Context ctx{Kind::BackwardInput, x_shape, w.shape(), params};
  const auto plan = get_plan(ctx, false);
  execute(ctx, *plan, gyc.data<float>(), wc.data<float>(), nullptr, gx.data<float>());
  return gx;
}

Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape, const Conv2dParams& params) {
  const Shape y_shape = conv2d_check_backward_weight("conv2d_backward_weight", grad_y, x, w_shape, params);
  add_counted_flops(conv2d_flops(y_shape, w_shape));
  if (DeviceBackend* gpu = backend_for("conv2d_backward_weight", {&grad_y, &x}))
    return gpu->conv2d_backward_weight(grad_y, x, w_shape, params);
  if (grad_y.dtype() != DType::Float32 || any_empty(x.shape(), w_shape, y_shape))
    return conv2d_backward_weight_reference(grad_y, x, w_shape, params);
  const Tensor gyc = grad_y.contiguous(), xc = x.contiguous();
  Tensor gw = empty(w_shape, DType::Float32);
  if (deterministic()) {
    backward_weight_chunked(x.shape(), w_shape, y_shape, params, xc.data<float>(), gyc.data<float>(), gw.data<float>());
    return gw;
  }
  const Context ctx{Kind::BackwardWeight, x.shape(), w_shape, params};
  const auto plan = get_plan(ctx, false);
  execute(ctx, *plan, xc.data<float>(), gyc.data<float>(), nullptr, gw.data<float>());
  return gw;
}

Tensor conv2d_backward_bias(const Tensor& grad_y) {
  MEDTL_CHECK(grad_y.defined(), "conv2d_backward_bias: grad_y is undefined (default-constructed)");
  MEDTL_CHECK(grad_y.dim() == 4, "conv2d_backward_bias: grad_y must be 4-D (N, K, P, Q), got shape ",
              shape_str(grad_y.shape()));
  if (DeviceBackend* gpu = backend_for("conv2d_backward_bias", {&grad_y})) return gpu->conv2d_backward_bias(grad_y);
  return sum(grad_y, {0, 2, 3});
}

std::string conv2d_onednn_impl(const char* kind, const Shape& x_shape, const Shape& w_shape,
                               const Conv2dParams& params) {
  const std::string k = kind;
  MEDTL_CHECK(k == "forward" || k == "backward_input" || k == "backward_weight", "conv2d_onednn_impl: kind \"", k,
              "\" is none of forward, backward_input, backward_weight");
  conv2d_output_shape(x_shape, w_shape, params);
  const Kind kind_ = k == "forward" ? Kind::Forward : k == "backward_input" ? Kind::BackwardInput : Kind::BackwardWeight;
  if (deterministic()) {  // what each chunk runs
    const int64_t chunk = std::min(x_shape[0], deterministic_conv_chunk());
    const Shape xs = with_batch(x_shape, chunk);
    OmpThreadsScope one_thread(1);
    return str_cat(get_plan(Context{kind_, xs, w_shape, params}, false)->impl, " (deterministic: chunks of ", chunk,
                   " samples, 1 thread each)");
  }
  return get_plan(Context{kind_, x_shape, w_shape, params}, false)->impl;
}

}  // namespace medtl::ops
