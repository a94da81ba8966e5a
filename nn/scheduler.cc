// ReduceLROnPlateau, CosineEpoch and StepLR: the lr bookkeeping and their state export/import.
#include "nn/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace medtl::nn {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The value stored under `key`; missing keys are an error naming the scheduler and the key.
double lookup(const ScalarState& state, const std::string& key, const char* who) {
  for (const auto& [name, value] : state)
    if (name == key) return value;
  MEDTL_CHECK(false, who, ": load_state: no '", key, "' entry");
  return 0.0;
}

void check_known(const ScalarState& state, const std::vector<std::string>& keys, const char* who) {
  for (const auto& [name, value] : state) {
    bool known = false;
    for (const auto& key : keys) known = known || key == name;
    MEDTL_CHECK(known, who, ": load_state: unexpected entry '", name, "'");
  }
}

int64_t as_count(double value, const char* key, const char* who) {
  MEDTL_CHECK(std::isfinite(value) && value == std::floor(value), who, ": load_state: '", key,
              "' must be a whole number, got ", value);
  return static_cast<int64_t>(value);
}

}  // namespace

// ---------------------------------------------------------------- ReduceLROnPlateau

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, Mode mode, double factor, int64_t patience,
                                     double threshold, ThresholdMode threshold_mode, int64_t cooldown, double min_lr,
                                     double eps)
    : optimizer_(optimizer), mode_(mode), factor_(factor), patience_(patience), threshold_(threshold),
      threshold_mode_(threshold_mode), cooldown_(cooldown), min_lr_(min_lr), eps_(eps) {
  MEDTL_CHECK(factor < 1.0, "ReduceLROnPlateau: factor should be < 1.0, got ", factor);
  MEDTL_CHECK(patience >= 0 && cooldown >= 0, "ReduceLROnPlateau: patience ", patience, " and cooldown ", cooldown,
              " must be >= 0");
  MEDTL_CHECK(min_lr >= 0.0, "ReduceLROnPlateau: min_lr must be >= 0, got ", min_lr);
  // PyTorch's _reset(): best starts at the worst value for the mode.
  best_ = mode == Mode::Min ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  if (mode_ == Mode::Min)
    return threshold_mode_ == ThresholdMode::Rel ? a < best * (1.0 - threshold_) : a < best - threshold_;
  return threshold_mode_ == ThresholdMode::Rel ? a > best * (threshold_ + 1.0) : a > best + threshold_;
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric, best_)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (in_cooldown()) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown are ignored
  }
  if (num_bad_epochs_ > patience_) {
    const double old_lr = optimizer_.lr();
    const double new_lr = std::max(old_lr * factor_, min_lr_);
    if (old_lr - new_lr > eps_) optimizer_.set_lr(new_lr);
    cooldown_counter_ = cooldown_;
    num_bad_epochs_ = 0;
  }
}

ScalarState ReduceLROnPlateau::export_state() const {
  return {{"best", best_},
          {"num_bad_epochs", static_cast<double>(num_bad_epochs_)},
          {"cooldown_counter", static_cast<double>(cooldown_counter_)},
          {"last_epoch", static_cast<double>(last_epoch_)}};
}

void ReduceLROnPlateau::load_state(const ScalarState& state) {
  const char* who = "ReduceLROnPlateau";
  check_known(state, {"best", "num_bad_epochs", "cooldown_counter", "last_epoch"}, who);
  const double best = lookup(state, "best", who);
  const int64_t bad = as_count(lookup(state, "num_bad_epochs", who), "num_bad_epochs", who);
  const int64_t cooldown = as_count(lookup(state, "cooldown_counter", who), "cooldown_counter", who);
  const int64_t last = as_count(lookup(state, "last_epoch", who), "last_epoch", who);
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  last_epoch_ = last;
}

// ---------------------------------------------------------------- CosineEpoch

CosineEpoch::CosineEpoch(Optimizer& optimizer, int64_t total_epochs)
    : optimizer_(optimizer), total_epochs_(total_epochs), base_lr_(optimizer.lr()) {
  MEDTL_CHECK(total_epochs > 0, "CosineEpoch: total_epochs must be positive, got ", total_epochs);
}

double CosineEpoch::lr_at(double lr0, int64_t epoch, int64_t total_epochs) {
  MEDTL_CHECK(total_epochs > 0 && epoch >= 0, "CosineEpoch: epoch ", epoch, " must be >= 0 and total_epochs ",
              total_epochs, " positive");
  const double inner = kPi * static_cast<double>(epoch % total_epochs) / static_cast<double>(total_epochs);
  return lr0 / 2.0 * (std::cos(inner) + 1.0);
}

void CosineEpoch::step() { step(last_epoch_ + 1); }

void CosineEpoch::step(int64_t epoch) {
  optimizer_.set_lr(lr_at(base_lr_, epoch, total_epochs_));
  last_epoch_ = epoch;
}

ScalarState CosineEpoch::export_state() const {
  return {{"base_lr", base_lr_}, {"last_epoch", static_cast<double>(last_epoch_)}};
}

void CosineEpoch::load_state(const ScalarState& state) {
  const char* who = "CosineEpoch";
  check_known(state, {"base_lr", "last_epoch"}, who);
  const double base = lookup(state, "base_lr", who);
  const int64_t last = as_count(lookup(state, "last_epoch", who), "last_epoch", who);
  MEDTL_CHECK(base >= 0.0, who, ": load_state: base_lr must be >= 0, got ", base);
  base_lr_ = base;
  last_epoch_ = last;
}

// ---------------------------------------------------------------- StepLR

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : optimizer_(optimizer), step_size_(step_size), gamma_(gamma), base_lr_(optimizer.lr()) {
  MEDTL_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
}

void StepLR::step() {
  ++last_epoch_;
  // PyTorch's chainable form: multiply the current lr, so a change made by hand persists.
  if (last_epoch_ % step_size_ == 0) optimizer_.set_lr(optimizer_.lr() * gamma_);
}

ScalarState StepLR::export_state() const {
  return {{"base_lr", base_lr_}, {"last_epoch", static_cast<double>(last_epoch_)}};
}

void StepLR::load_state(const ScalarState& state) {
  const char* who = "StepLR";
  check_known(state, {"base_lr", "last_epoch"}, who);
  const double base = lookup(state, "base_lr", who);
  const int64_t last = as_count(lookup(state, "last_epoch", who), "last_epoch", who);
  base_lr_ = base;
  last_epoch_ = last;
}

}  // namespace medtl::nn
