// The autograd graph: per-tensor records (AutogradMeta), nodes that hold backward functions,
// grad mode, and the user-facing calls: requires_grad, grad, detach, backward.
//
// Define-by-run: each differentiable op (autograd/ops.h) computes its result with a raw kernel
// from tensor/, then calls record(), which attaches a Node holding the op's backward function and
// edges to the nodes of its inputs. backward() walks that graph from the loss, in reverse
// topological order, and leaves gradients in the .grad of leaf tensors.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace medtl::ag {

struct Node;

// What autograd keeps for a tensor, in the tensor's opaque autograd_meta slot. Tensor copies
// share it (like views of one torch.Tensor's TensorImpl); views made by Tensor's raw methods do not.
struct AutogradMeta : AutogradMetaBase {
  bool requires_grad = false;
  Tensor grad;                                  // leaves: accumulated by backward()
  std::shared_ptr<Node> grad_fn;                // non-leaves: the node that produced the tensor
  std::shared_ptr<Node> grad_accumulator;       // leaves: created on first use, then reused
};

// Which inputs of a node need a gradient; backward functions may skip the others.
using NeedsGrad = std::vector<bool>;
// Given dL/d(output), returns dL/d(input_i) for every input (undefined where not needed).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output, const NeedsGrad& needs)>;

struct Node {
  virtual ~Node() = default;
  // dL/d(inputs) from dL/d(output). grad_output has the output's shape.
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  // Drops saved tensors once backward has used them (the graph is freed).
  virtual void release() {}

  std::string name;                          // the op, for error messages and graph printing
  std::vector<std::shared_ptr<Node>> next;   // per input: its node, or null if it needs no grad
  std::vector<Shape> input_shapes;           // per input: what the returned gradient must match
};

// ---- Grad mode. ----
bool grad_enabled();
// While alive, ops record nothing (evaluation, optimizer updates). Nests; restores on exit.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// ---- Per-tensor queries and settings. ----
bool requires_grad(const Tensor& t);
// Marks a tensor as a leaf that collects gradients (only floating dtypes). Tensor copies made
// after this share the flag; set it before handing the tensor around.
void set_requires_grad(Tensor& t, bool requires = true);
// Convenience: returns t marked as requiring grad.
Tensor requires_grad_leaf(Tensor t);
bool is_leaf(const Tensor& t);   // no grad_fn
Tensor grad(const Tensor& t);    // undefined until a backward pass reaches t
void zero_grad(Tensor& t);       // forgets the accumulated gradient
void set_grad(Tensor& t, const Tensor& grad);  // like torch's `t.grad = grad` (same shape, dtype, device)
std::shared_ptr<Node> grad_fn(const Tensor& t);
// The same data with no history: shares storage, requires no grad.
Tensor detach(const Tensor& t);

// Attaches a node for `output` = op(inputs) if grad mode is on and any input requires grad;
// otherwise returns output untouched. The backward function receives dL/d(output).
Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn backward);

// Computes dL/d(leaf) for every leaf that requires grad and adds it to that leaf's grad.
// grad_output: dL/d(root), default 1 for a one-element root. Frees the graph's saved tensors
// unless retain_graph (a second backward over a freed graph is an error that says so).
void backward(const Tensor& root, const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace medtl::ag
