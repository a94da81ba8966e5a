// Segmentation losses (nn/seg_loss.h) and metrics (experiments/seg_metrics.h) on hand-computed
// cases, including empty masks; gradcheck of the losses in float64.
#include <gtest/gtest.h>

#include <functional>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "experiments/seg_metrics.h"
#include "nn/loss.h"
#include "nn/seg_loss.h"
#include "tensor/ops/elementwise.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using experiments::MaskCounts;
using experiments::SegmentationMetrics;
using Inputs = std::vector<Tensor>;

Tensor f64(const std::vector<double>& v, const Shape& shape) { return from_vector<double>(v, shape); }

// ---------------------------------------------------------------- losses

TEST(DiceLoss, HandComputedValue) {
  // I = 0.5 + 1 = 1.5, sum y = 2, sum p = 1.75: 1 - (2 * 1.5 + 1) / (2 + 1.75 + 1) = 1 - 4 / 4.75
  const Tensor p = f64({0.5, 1, 0, 0.25}, {1, 1, 2, 2}), y = f64({1, 1, 0, 0}, {1, 1, 2, 2});
  EXPECT_NEAR(nn::dice_loss(p, y).item(), 1.0 - 4.0 / 4.75, 1e-15);
  EXPECT_NEAR(nn::dice_loss(y, p).item(), 1.0 - 4.0 / 4.75, 1e-15);  // symmetric, as the paper calls it
  EXPECT_NEAR(nn::dice_loss(p, y, 0.0).item(), 1.0 - 3.0 / 3.75, 1e-15);
  EXPECT_EQ(nn::dice_loss(p.to(DType::Float32), y.to(DType::Float32)).dtype(), DType::Float32);
}

TEST(DiceLoss, IsOverTheWholeBatchNotPerImage) {
  // Image 0 perfect (I = 2, sums 2 + 2), image 1 all wrong (I = 0, sums 1 + 1):
  // batch: 1 - (2 * 2 + 1) / (3 + 3 + 1) = 2/7; the mean of per-image losses would be (0 + 2/3) / 2.
  const Tensor p = f64({1, 1, 0, 0, 0, 0, 1, 0}, {2, 1, 2, 2}), y = f64({1, 1, 0, 0, 1, 0, 0, 0}, {2, 1, 2, 2});
  EXPECT_NEAR(nn::dice_loss(p, y).item(), 2.0 / 7.0, 1e-15);
}

TEST(DiceLoss, PerfectAndEmptyPredictionsScoreZero) {
  const Tensor y = f64({1, 0, 1, 1}, {4});
  EXPECT_NEAR(nn::dice_loss(y, y).item(), 0.0, 1e-15);
  EXPECT_NEAR(nn::dice_loss(zeros({4}, DType::Float64), zeros({4}, DType::Float64)).item(), 0.0, 1e-15);
  // All wrong with smooth 1: 1 - 1 / (3 + 1 + 1).
  EXPECT_NEAR(nn::dice_loss(f64({0, 1, 0, 0}, {4}), y).item(), 0.8, 1e-15);
}

Tensor binary_targets(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return ops::gt(uniform(shape, gen, 0.0, 1.0, DType::Float64), 0.6).to(DType::Float64);
}

TEST(DiceLoss, WithLogitsAndBceDiceCompose) {
  Generator gen(1);
  const Tensor logits = uniform({2, 1, 3, 3}, gen, -3.0, 3.0, DType::Float64);
  const Tensor y = binary_targets({2, 1, 3, 3}, 2);
  const Tensor p = ops::sigmoid(logits);
  const double dice = nn::dice_loss(p, y).item();
  EXPECT_NEAR(nn::dice_loss_with_logits(logits, y).item(), dice, 1e-15);
  const double bce = nn::binary_cross_entropy(p, y).item();
  EXPECT_NEAR(nn::bce_dice_loss(p, y).item(), bce + dice, 1e-14);
  EXPECT_NEAR(nn::bce_dice_loss_with_logits(logits, y).item(), bce + dice, 1e-12);
  EXPECT_NEAR(nn::segmentation_loss(nn::SegLoss::Dice, logits, y).item(), dice, 1e-15);
  EXPECT_NEAR(nn::segmentation_loss(nn::SegLoss::BCE, logits, y).item(), bce, 1e-12);
  EXPECT_NEAR(nn::segmentation_loss(nn::SegLoss::BCEDice, logits, y).item(), bce + dice, 1e-12);
}

TEST(DiceLoss, Gradcheck) {
  Generator gen(3);
  const Tensor y = binary_targets({2, 1, 2, 3}, 4);
  for (auto fn : {nn::dice_loss, nn::bce_dice_loss}) {
    const Tensor p = ag::requires_grad_leaf(uniform({2, 1, 2, 3}, gen, 0.05, 0.95, DType::Float64));
    const ag::GradcheckResult r = ag::gradcheck([&](const Inputs& v) { return fn(v[0], y, 1.0); }, {p});
    EXPECT_TRUE(r.ok) << r.message;
  }
  for (auto fn : {nn::dice_loss_with_logits, nn::bce_dice_loss_with_logits}) {
    const Tensor x = ag::requires_grad_leaf(uniform({2, 1, 2, 3}, gen, -3.0, 3.0, DType::Float64));
    const ag::GradcheckResult r = ag::gradcheck([&](const Inputs& v) { return fn(v[0], y, 1.0); }, {x});
    EXPECT_TRUE(r.ok) << r.message;
  }
}

TEST(DiceLoss, Errors) {
  EXPECT_ERROR_CONTAINS(nn::dice_loss(zeros({2, 2}), zeros({2, 3})), "must be the same");
  EXPECT_ERROR_CONTAINS(nn::dice_loss(zeros({2}), zeros({2}, DType::Float64)), "convert one");
  EXPECT_ERROR_CONTAINS(nn::dice_loss(zeros({2}, DType::Int64), zeros({2}, DType::Int64)), "int64");
  EXPECT_ERROR_CONTAINS(nn::dice_loss(zeros({2}), zeros({2}), -1.0), "smooth");
  EXPECT_ERROR_CONTAINS(nn::dice_loss_with_logits(Tensor(), zeros({2})), "defined");
  EXPECT_EQ(nn::parse_seg_loss("bce_dice"), nn::SegLoss::BCEDice);
  EXPECT_STREQ(nn::seg_loss_name(nn::parse_seg_loss("dice")), "dice");
  EXPECT_ERROR_CONTAINS(nn::parse_seg_loss("focal"), "'dice', 'bce' or 'bce_dice'");
}

// ---------------------------------------------------------------- metrics

TEST(SegMetrics, ScoresOfCounts) {
  EXPECT_EQ(experiments::dice_score(MaskCounts{1, 2, 2}), 0.5);
  EXPECT_EQ(experiments::iou_score(MaskCounts{1, 2, 2}), 1.0 / 3.0);
  EXPECT_EQ(experiments::dice_score(MaskCounts{0, 0, 0}), 1.0);  // empty prediction on an empty mask
  EXPECT_EQ(experiments::iou_score(MaskCounts{0, 0, 0}), 1.0);
  EXPECT_EQ(experiments::dice_score(MaskCounts{0, 0, 5}), 0.0);  // nothing predicted on a non-empty mask
  EXPECT_EQ(experiments::dice_score(MaskCounts{0, 3, 0}), 0.0);  // false positives on an empty mask
  EXPECT_EQ(experiments::iou_score(MaskCounts{4, 4, 4}), 1.0);
}

TEST(SegMetrics, HandComputedGlobalAndPerImage) {
  // Image 0: predicted {0, 1} (0.5 is not > 0.5), target {0, 2}: I 1, P 2, T 2 -> Dice 1/2, IoU 1/3.
  // Image 1: both empty -> 1, 1.     Image 2: empty prediction, target {1} -> 0, 0.
  const Tensor p = f64({0.9, 0.6, 0.2, 0.5, 0.1, 0.1, 0.1, 0.1, 0.5, 0.4, 0.0, 0.3}, {3, 1, 2, 2});
  const Tensor y = f64({1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0}, {3, 1, 2, 2});
  SegmentationMetrics m;
  m.add(p, y);
  ASSERT_EQ(m.images(), 3);
  EXPECT_EQ(m.per_image()[0].intersection, 1);
  EXPECT_EQ(m.per_image()[0].predicted, 2);
  EXPECT_EQ(m.per_image()[0].target, 2);
  // Global: I 1, P 2, T 3 -> Dice 2/5, IoU 1/4.
  EXPECT_DOUBLE_EQ(m.global_dice(), 0.4);
  EXPECT_DOUBLE_EQ(m.global_iou(), 0.25);
  EXPECT_DOUBLE_EQ(m.mean_dice(), (0.5 + 1.0 + 0.0) / 3.0);
  EXPECT_DOUBLE_EQ(m.mean_iou(), (1.0 / 3.0 + 1.0 + 0.0) / 3.0);

  // The same in two batches, in float32, with uint8 targets and a strided prediction.
  SegmentationMetrics split;
  const Tensor p32 = p.to(DType::Float32).transpose(2, 3).contiguous().transpose(2, 3);
  split.add(p32.narrow(0, 0, 1), y.narrow(0, 0, 1).to(DType::UInt8));
  split.add(p32.narrow(0, 1, 2), y.narrow(0, 1, 2).to(DType::UInt8));
  EXPECT_EQ(split.global_dice(), m.global_dice());
  EXPECT_EQ(split.mean_iou(), m.mean_iou());
}

TEST(SegMetrics, AllEmptySetScoresOne) {
  SegmentationMetrics m;
  m.add(zeros({2, 1, 4, 4}), zeros({2, 1, 4, 4}));
  EXPECT_EQ(m.global_dice(), 1.0);
  EXPECT_EQ(m.mean_dice(), 1.0);
  EXPECT_EQ(m.global_iou(), 1.0);
}

TEST(SegMetrics, ThresholdAndErrors) {
  SegmentationMetrics m(0.0);  // e.g. on logits: foreground where logit > 0
  m.add(f64({-1, 2}, {1, 2}), f64({0, 1}, {1, 2}));
  EXPECT_EQ(m.mean_dice(), 1.0);
  SegmentationMetrics none;
  EXPECT_ERROR_CONTAINS(none.mean_dice(), "no image");
  EXPECT_ERROR_CONTAINS(none.add(zeros({2, 3}), zeros({3, 2})), "same shape");
  EXPECT_ERROR_CONTAINS(none.add(scalar_tensor(1.0), scalar_tensor(1.0)), "same shape (N, ...)");
}

}  // namespace
}  // namespace medtl
