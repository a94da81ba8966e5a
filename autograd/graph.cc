// Graph bookkeeping and the backward engine (reverse topological order, gradient summation).
#include "autograd/graph.h"

#include <unordered_map>

#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"

namespace medtl::ag {
namespace {

thread_local bool g_grad_enabled = true;

AutogradMeta* meta_of(const Tensor& t) { return static_cast<AutogradMeta*>(t.autograd_meta().get()); }

// A node whose backward is a function recorded by an op.
struct FunctionNode : Node {
  BackwardFn backward;
  NeedsGrad needs;
  std::vector<Tensor> apply(const Tensor& grad_output) override {
    MEDTL_CHECK(backward != nullptr, "backward through '", name, "' a second time: the graph was freed by the first ",
                "backward(); pass retain_graph = true to the first call to keep it");
    return backward(grad_output, needs);
  }
  void release() override { backward = nullptr; }
};

// The node at the end of every path: adds the incoming gradient to a leaf's .grad.
struct AccumulateGrad : Node {
  std::weak_ptr<AutogradMetaBase> leaf;
  std::vector<Tensor> apply(const Tensor& grad_output) override {
    auto base = leaf.lock();
    if (!base) return {};  // the leaf tensor is gone; nobody can read its gradient
    auto* meta = static_cast<AutogradMeta*>(base.get());
    if (!meta->grad.defined()) meta->grad = grad_output.clone();  // own copy: never alias a graph buffer
    else ops::add_(meta->grad, grad_output);
    return {};
  }
};

std::shared_ptr<Node> node_for_input(const Tensor& t) {
  AutogradMeta* meta = meta_of(t);
  if (meta == nullptr || !meta->requires_grad) return nullptr;
  if (meta->grad_fn) return meta->grad_fn;
  if (!meta->grad_accumulator) {
    auto accumulate = std::make_shared<AccumulateGrad>();
    accumulate->name = "AccumulateGrad";
    accumulate->leaf = t.autograd_meta();
    meta->grad_accumulator = accumulate;
  }
  return meta->grad_accumulator;
}

}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool requires_grad(const Tensor& t) {
  const AutogradMeta* meta = meta_of(t);
  return meta != nullptr && meta->requires_grad;
}

void set_requires_grad(Tensor& t, bool requires) {
  MEDTL_CHECK(t.defined(), "set_requires_grad: undefined tensor");
  MEDTL_CHECK(!requires || t.dtype() == DType::Float32 || t.dtype() == DType::Float64,
              "set_requires_grad: only float32/float64 tensors can require gradients, got ", dtype_name(t.dtype()));
  AutogradMeta* meta = meta_of(t);
  if (meta == nullptr) {
    if (!requires) return;
    t.set_autograd_meta(std::make_shared<AutogradMeta>());
    meta = meta_of(t);
  }
  MEDTL_CHECK(meta->grad_fn == nullptr, "set_requires_grad: ", t.str(), " is the result of '", meta->grad_fn->name,
              "', not a leaf; use detach() to start a new leaf from it");
  meta->requires_grad = requires;
}

Tensor requires_grad_leaf(Tensor t) {
  set_requires_grad(t, true);
  return t;
}

bool is_leaf(const Tensor& t) {
  const AutogradMeta* meta = meta_of(t);
  return meta == nullptr || meta->grad_fn == nullptr;
}

Tensor grad(const Tensor& t) {
  const AutogradMeta* meta = meta_of(t);
  return meta ? meta->grad : Tensor();
}

void zero_grad(Tensor& t) {
  if (AutogradMeta* meta = meta_of(t)) meta->grad = Tensor();
}

void set_grad(Tensor& t, const Tensor& grad) {
  AutogradMeta* meta = meta_of(t);
  MEDTL_CHECK(meta != nullptr && requires_grad(t), "set_grad: ", t.str(), " does not require grad");
  MEDTL_CHECK(grad.shape() == t.shape() && grad.dtype() == t.dtype() && grad.device() == t.device(),
              "set_grad: the gradient ", grad.str(), " does not match the tensor ", t.str());
  meta->grad = grad;
}

std::shared_ptr<Node> grad_fn(const Tensor& t) {
  const AutogradMeta* meta = meta_of(t);
  return meta ? meta->grad_fn : nullptr;
}

Tensor detach(const Tensor& t) {
  Tensor out = t;
  out.set_autograd_meta(nullptr);
  return out;
}

Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!g_grad_enabled) return output;
  auto node = std::make_shared<FunctionNode>();
  bool any = false;
  for (const Tensor& input : inputs) {
    node->next.push_back(input.defined() ? node_for_input(input) : nullptr);
    node->needs.push_back(node->next.back() != nullptr);
    node->input_shapes.push_back(input.defined() ? input.shape() : Shape{});
    any = any || node->needs.back();
  }
  if (!any) return output;
  node->name = name;
  node->backward = std::move(backward);
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  output.set_autograd_meta(std::move(meta));
  return output;
}

void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  MEDTL_CHECK(requires_grad(root), "backward: ", root.str(), " does not require grad: nothing it depends on was ",
              "marked with set_requires_grad, or it was computed under NoGradGuard");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    MEDTL_CHECK(root.numel() == 1, "backward: the root has shape ", shape_str(root.shape()),
                "; pass grad_output for a root with more than one element");
    seed = ones(root.shape(), root.dtype(), root.device());
  }
  MEDTL_CHECK(seed.shape() == root.shape(), "backward: grad_output has shape ", shape_str(seed.shape()),
              " but the root has shape ", shape_str(root.shape()));
  std::shared_ptr<Node> start = node_for_input(root);

  // Count, for each reachable node, how many edges point at it: a node runs once all of its
  // consumers have handed it their gradient contributions.
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

  // Kahn's algorithm from the root. The order is fixed by the graph alone, so gradients that
  // meet at a node are summed in the same order in every run.
  std::unordered_map<Node*, Tensor> grads;
  grads[start.get()] = seed;
  std::vector<Node*> ready = {start.get()};
  std::vector<Node*> visited;
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    visited.push_back(node);
    Tensor incoming = std::move(grads[node]);
    grads.erase(node);
    std::vector<Tensor> input_grads = node->apply(incoming);
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (next == nullptr) continue;
      MEDTL_CHECK(i < input_grads.size() && input_grads[i].defined(), "backward of '", node->name,
                  "' returned no gradient for input ", i, ", which requires one (internal error in that op)");
      MEDTL_CHECK(input_grads[i].shape() == node->input_shapes[i], "backward of '", node->name, "' returned a gradient of shape ",
                  shape_str(input_grads[i].shape()), " for input ", i, " of shape ", shape_str(node->input_shapes[i]),
                  " (internal error in that op)");
      auto found = grads.find(next);
      if (found == grads.end()) grads.emplace(next, std::move(input_grads[i]));
      else found->second = ops::add(found->second, input_grads[i]);
      if (--pending[next] == 0) ready.push_back(next);
    }
  }
  if (!retain_graph)
    for (Node* node : visited) node->release();
}

}  // namespace medtl::ag
