// Loss functions, as torch.nn.functional: binary cross-entropy on logits and on probabilities,
// cross-entropy over classes, mean squared error. All differentiable (autograd/).
//
// Shapes and dtypes of input and target must match exactly (no broadcasting, no promotion);
// a mismatch names both. A NaN input gives a NaN loss: that is the caller's to notice.
#pragma once

#include "tensor/tensor.h"

namespace medtl::nn {

// How per-element losses become the result: kept (same shape as the input), summed or averaged
// over every element (0-dim result).
enum class Reduction { None, Mean, Sum };

// logits, targets: (...) same shape and float dtype -> (...) or 0-dim.
// loss = max(x, 0) - x y + log(1 + exp(-|x|)): finite for any finite x (e.g. +-100 in float32).
// Targets may be soft, in [0, 1]. Gradients: d/dx = sigmoid(x) - y, d/dy = -x (a fused node,
// because the composite's kinks at x = 0 would give d/dx = -y there instead of 0.5 - y).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction = Reduction::Mean);

// probs, targets: (...) same shape and float dtype -> (...) or 0-dim. probs must lie in [0, 1]
// (NaN passes through). loss = -(y max(log p, -100) + (1 - y) max(log(1 - p), -100)), as
// torch.nn.BCELoss. Gradient d/dp = (p - y) / max(p (1 - p), 1e-12), PyTorch's, which stays
// finite when a float32 sigmoid saturates to exactly 0 or 1; d/dy = max(log(1-p), -100) - max(log p, -100).
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& targets, Reduction reduction = Reduction::Mean);

// logits: (N, C) float; targets: (N,) Int64 class ids in [0, C) -> (N,) or 0-dim.
// loss_n = -log_softmax(logits_n)[targets_n], log_softmax computed stably (the detached row max
// is subtracted first). An id outside [0, C) is an error naming it and its row.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction reduction = Reduction::Mean);

// input, target: (...) same shape and float dtype -> (...) or 0-dim. (x - y)^2.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

}  // namespace medtl::nn
