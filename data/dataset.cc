// The dataset interface's shared pieces: target names, index checks, the bad-sample log, keyed
// per-sample random numbers, Subset and the one-pass scan that finds unreadable samples.
#include "data/dataset.h"

#include <sstream>

#include "tensor/philox.h"

namespace medtl::data {

const char* target_kind_name(TargetKind kind) {
  switch (kind) {
    case TargetKind::MultiClass: return "multi-class";
    case TargetKind::Binary: return "binary";
    case TargetKind::MultiLabel: return "multi-label";
    case TargetKind::Mask: return "mask";
  }
  return "?";
}

void Dataset::check_index(int64_t i) const {
  MEDTL_CHECK(i >= 0 && i < size(), "dataset '", name(), "': index ", i, " out of range [0, ", size(), ")");
}

void BadSampleLog::add(std::string source, std::string problem) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.push_back({std::move(source), std::move(problem)});
}

int64_t BadSampleLog::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(entries_.size());
}

std::vector<BadSample> BadSampleLog::entries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_;
}

std::string BadSampleLog::report() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.empty()) return "no bad samples";
  std::ostringstream out;
  out << entries_.size() << " bad sample" << (entries_.size() == 1 ? "" : "s") << " skipped:";
  for (const auto& e : entries_) out << "\n  " << e.source << ": " << e.problem;
  return out.str();
}

std::vector<double> keyed_uniforms(const SampleKey& key, uint64_t purpose, int count) {
  MEDTL_CHECK(count >= 0 && count <= 4096, "keyed_uniforms: count ", count, " out of range [0, 4096]");
  // Key: the seed mixed with the purpose through one Philox block, so different purposes give
  // unrelated streams. Stream: the epoch. Counter: index * 1024 + block (4 uint32 -> 2 doubles).
  const PhiloxBlock mixed = philox_random(key.seed, 0x6d65647464617461ull /* "medtdata" */, purpose);
  const uint64_t seed = (static_cast<uint64_t>(mixed[0]) << 32) | mixed[1];
  std::vector<double> out;
  out.reserve(count);
  for (int block = 0; static_cast<int>(out.size()) < count; ++block) {
    const PhiloxBlock r = philox_random(seed, key.epoch, static_cast<uint64_t>(key.index) * 1024u + block);
    out.push_back(uints_to_unit_double(r[0], r[1]));
    if (static_cast<int>(out.size()) < count) out.push_back(uints_to_unit_double(r[2], r[3]));
  }
  return out;
}

Subset::Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices, std::string name)
    : base_(std::move(base)), indices_(std::move(indices)), name_(std::move(name)) {
  MEDTL_CHECK(base_ != nullptr, "Subset: the base dataset is null");
  if (name_.empty()) name_ = base_->name() + "[subset]";
  for (int64_t i : indices_)
    MEDTL_CHECK(i >= 0 && i < base_->size(), "Subset '", name_, "': index ", i, " out of range for '", base_->name(),
                "' (", base_->size(), " samples)");
}

Sample Subset::get(int64_t i, const SampleKey& key) const {
  check_index(i);
  Sample s = base_->get(indices_[i], key);
  s.index = i;
  return s;
}

std::string Subset::source(int64_t i) const {
  check_index(i);
  return base_->source(indices_[i]);
}

std::shared_ptr<const Dataset> scan_dataset(std::shared_ptr<const Dataset> dataset, OnBadSample policy,
                                            BadSampleLog* log) {
  MEDTL_CHECK(dataset != nullptr, "scan_dataset: the dataset is null");
  std::vector<int64_t> good;
  bool all_good = true;
  for (int64_t i = 0; i < dataset->size(); ++i) {
    try {
      dataset->get(i);
      good.push_back(i);
    } catch (const Error& e) {
      if (policy == OnBadSample::Throw) throw;
      all_good = false;
      if (log != nullptr) log->add(dataset->source(i), e.what());
    }
  }
  MEDTL_CHECK(!good.empty(), "dataset '", dataset->name(), "' has no readable samples (", dataset->size(),
              " listed); check its path and layout");
  if (all_good) return dataset;
  return std::make_shared<Subset>(dataset, std::move(good), dataset->name());
}

}  // namespace medtl::data
