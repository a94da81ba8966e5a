// Dice and BCE + Dice, composed from ag:: ops so their gradients come from the op formulas.
#include "nn/seg_loss.h"

#include "autograd/ops.h"
#include "nn/loss.h"
#include "tensor/dispatch.h"

namespace medtl::nn {
namespace {

void check_pair(const char* fn, const Tensor& a, const Tensor& b) {
  MEDTL_CHECK(a.defined() && b.defined(), fn, ": both the prediction and the targets must be defined");
  MEDTL_CHECK(a.shape() == b.shape(), fn, ": prediction has shape ", shape_str(a.shape()), " but targets have shape ",
              shape_str(b.shape()), "; they must be the same");
  MEDTL_CHECK(a.dtype() == b.dtype(), fn, ": prediction is ", dtype_name(a.dtype()), " but targets are ",
              dtype_name(b.dtype()), "; convert one with .to(DType)");
  dispatch_float(a.dtype(), fn, [](auto) {});
}

}  // namespace

Tensor dice_loss(const Tensor& probs, const Tensor& targets, double smooth) {
  check_pair("dice_loss", probs, targets);
  MEDTL_CHECK(smooth >= 0.0, "dice_loss: smooth must be >= 0, got ", smooth);
  const Tensor intersection = ag::sum(ag::mul(probs, targets));
  const Tensor denominator = ag::add(ag::add(ag::sum(targets), ag::sum(probs)), smooth);
  // 1 - (2 I + s) / (sum y + sum p + s)
  return ag::add(ag::neg(ag::div(ag::add(ag::mul(intersection, 2.0), smooth), denominator)), 1.0);
}

Tensor dice_loss_with_logits(const Tensor& logits, const Tensor& targets, double smooth) {
  check_pair("dice_loss_with_logits", logits, targets);
  return dice_loss(ag::sigmoid(logits), targets, smooth);
}

Tensor bce_dice_loss(const Tensor& probs, const Tensor& targets, double smooth) {
  return ag::add(binary_cross_entropy(probs, targets), dice_loss(probs, targets, smooth));
}

Tensor bce_dice_loss_with_logits(const Tensor& logits, const Tensor& targets, double smooth) {
  return ag::add(binary_cross_entropy_with_logits(logits, targets), dice_loss_with_logits(logits, targets, smooth));
}

SegLoss parse_seg_loss(const std::string& name) {
  if (name == "dice") return SegLoss::Dice;
  if (name == "bce") return SegLoss::BCE;
  if (name == "bce_dice") return SegLoss::BCEDice;
  MEDTL_CHECK(false, "unknown segmentation loss '", name, "' (expected 'dice', 'bce' or 'bce_dice')");
  return SegLoss::Dice;
}

const char* seg_loss_name(SegLoss loss) {
  switch (loss) {
    case SegLoss::Dice: return "dice";
    case SegLoss::BCE: return "bce";
    case SegLoss::BCEDice: return "bce_dice";
  }
  return "?";
}

Tensor segmentation_loss(SegLoss loss, const Tensor& logits, const Tensor& targets) {
  switch (loss) {
    case SegLoss::Dice: return dice_loss_with_logits(logits, targets);
    case SegLoss::BCE: return binary_cross_entropy_with_logits(logits, targets);
    case SegLoss::BCEDice: return bce_dice_loss_with_logits(logits, targets);
  }
  return Tensor();
}

}  // namespace medtl::nn
