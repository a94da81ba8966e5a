// Segmentation losses of the paper's code (protocol §4.2): soft Dice over the whole batch, and
// BCE + Dice. Plain BCE is nn::binary_cross_entropy (on probabilities, torch.nn.BCELoss, what
// the paper uses for DRIVE) or nn::binary_cross_entropy_with_logits, both in nn/loss.h.
// All differentiable, composed from ag:: ops (the sums use the deterministic reductions).
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace medtl::nn {

// The paper's torch_dice_coef_loss: probs and targets flattened over the WHOLE batch (not per
// image), loss = 1 - (2 sum(y p) + smooth) / (sum(y) + sum(p) + smooth).
// probs, targets: (...) same shape and float dtype -> 0-dim. It is symmetric in its arguments.
Tensor dice_loss(const Tensor& probs, const Tensor& targets, double smooth = 1.0);
// dice_loss(sigmoid(logits), targets).
Tensor dice_loss_with_logits(const Tensor& logits, const Tensor& targets, double smooth = 1.0);

// binary_cross_entropy (mean) + dice_loss, on probabilities.
Tensor bce_dice_loss(const Tensor& probs, const Tensor& targets, double smooth = 1.0);
// binary_cross_entropy_with_logits (mean, numerically stable) + dice_loss(sigmoid(logits)).
Tensor bce_dice_loss_with_logits(const Tensor& logits, const Tensor& targets, double smooth = 1.0);

// A loss chosen by name for the training programs, computed from logits.
enum class SegLoss { Dice, BCE, BCEDice };
SegLoss parse_seg_loss(const std::string& name);  // "dice" | "bce" | "bce_dice"; errors list them
const char* seg_loss_name(SegLoss loss);
Tensor segmentation_loss(SegLoss loss, const Tensor& logits, const Tensor& targets);

}  // namespace medtl::nn
