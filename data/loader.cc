// The loader: per-epoch order, batch building (read, transform, stack) and the worker threads
// with their bounded, in-order queue.
#include "data/loader.h"

#include <cstdio>
#include <cstring>
#include <exception>

#include "tensor/parallel.h"

namespace medtl::data {
namespace {

constexpr uint64_t kShuffleDomain = 0x73687566u;  // "shuf"

// Stacks equally shaped float32 tensors along a new first dim. `what` and the sample list name
// the offender when a shape differs.
Tensor stack_samples(const std::vector<Tensor>& parts, const char* what, const Batch& batch) {
  const Shape first = parts.front().shape();
  for (size_t k = 1; k < parts.size(); ++k)
    MEDTL_CHECK(parts[k].shape() == first, "loader: sample ", batch.indices[k], " ('", batch.sources[k], "') has ",
                what, " shape ", shape_str(parts[k].shape()), " but sample ", batch.indices[0], " ('", batch.sources[0],
                "') in the same batch has ", shape_str(first),
                "; add a Resize or crop transform so every sample has one size");
  Shape shape = first;
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = empty(shape);
  const int64_t n = shape_numel(first);
  for (size_t k = 0; k < parts.size(); ++k) {
    const Tensor p = parts[k].to(DType::Float32).contiguous();
    std::memcpy(out.data<float>() + k * n, p.data<float>(), sizeof(float) * n);
  }
  return out;
}

std::string safe_source(const Dataset& dataset, int64_t i) {
  try {
    return dataset.source(i);
  } catch (const std::exception& e) {
    return std::string("<source unknown: ") + e.what() + ">";
  }
}

}  // namespace

std::string LoaderStats::str() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%lld samples in %.2f s: %.1f samples/s (waited %.2f s)",
                static_cast<long long>(samples), seconds, samples_per_second(), wait_seconds);
  return buf;
}

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  SampleRng rng = SampleRng::for_purpose(seed, kShuffleDomain, epoch);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.integer(0, i + 1)]);
  return order;
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, TransformPtr transform, LoaderOptions options,
               BadSampleLog* bad_log)
    : dataset_(std::move(dataset)), transform_(std::move(transform)), options_(options), bad_log_(bad_log) {
  MEDTL_CHECK(dataset_ != nullptr, "Loader: no dataset");
  MEDTL_CHECK(options_.batch_size > 0, "Loader: batch_size must be positive, got ", options_.batch_size);
  MEDTL_CHECK(options_.num_workers >= 0, "Loader: num_workers must be >= 0, got ", options_.num_workers);
  MEDTL_CHECK(options_.prefetch > 0, "Loader: prefetch must be positive, got ", options_.prefetch);
  const int64_t n = dataset_->size();
  MEDTL_CHECK(n > 0, "Loader: dataset '", dataset_->name(), "' is empty (an empty split?)");
  num_batches_ = options_.drop_last ? n / options_.batch_size : (n + options_.batch_size - 1) / options_.batch_size;
  MEDTL_CHECK(num_batches_ > 0, "Loader: dataset '", dataset_->name(), "' has ", n, " samples, fewer than batch_size ",
              options_.batch_size, " with drop_last: an epoch would have no batch");
}

Loader::~Loader() { join_workers(); }

int64_t Loader::num_samples() const {
  return options_.drop_last ? num_batches_ * options_.batch_size : dataset_->size();
}

std::vector<int64_t> Loader::epoch_order(uint64_t epoch) const {
  if (options_.shuffle) return shuffled_indices(dataset_->size(), options_.seed, epoch);
  std::vector<int64_t> order(dataset_->size());
  for (int64_t i = 0; i < dataset_->size(); ++i) order[i] = i;
  return order;
}

Loader::Built Loader::build(uint64_t epoch, const std::vector<int64_t>& order, int64_t b) const {
  Built out;
  Batch& batch = out.batch;
  batch.batch_index = b;
  const int64_t begin = b * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(order.size()));
  std::vector<Tensor> images, labels, masks;
  for (int64_t k = begin; k < end; ++k) {
    const int64_t i = order[k];
    try {
      Sample s = dataset_->get(i, SampleKey{options_.seed, epoch, i});
      ImageMask x{s.image, s.mask};
      if (transform_) {
        SampleRng rng(options_.seed, epoch, i);
        transform_->apply(x, rng);
      }
      MEDTL_CHECK(x.image.defined(), "the sample has no image");
      batch.indices.push_back(i);
      batch.sources.push_back(s.source.empty() ? safe_source(*dataset_, i) : s.source);
      batch.class_indices.push_back(s.class_index);
      images.push_back(x.image);
      labels.push_back(s.label);
      masks.push_back(x.mask);
    } catch (const std::exception& e) {
      const std::string source = safe_source(*dataset_, i);
      if (options_.on_bad_sample == OnBadSample::Skip) {
        out.skipped.push_back({source, e.what()});
        continue;
      }
      out.error = str_cat("loader: sample ", i, " of dataset '", dataset_->name(), "' (file '", source, "'), epoch ",
                          epoch, ", batch ", b, ": ", e.what());
      return out;
    }
  }
  if (batch.indices.empty()) return out;  // every sample skipped: the batch is left out
  try {
    batch.images = stack_samples(images, "image", batch);
    auto all_or_none = [&](const std::vector<Tensor>& parts, const char* what) {
      size_t defined = 0;
      for (const Tensor& t : parts) defined += t.defined();
      MEDTL_CHECK(defined == 0 || defined == parts.size(), "loader: batch ", b, " mixes samples with and without a ",
                  what, " (sample ", batch.indices[0], ", '", batch.sources[0], "')");
      return defined > 0;
    };
    if (all_or_none(labels, "label")) batch.labels = stack_samples(labels, "label", batch);
    if (all_or_none(masks, "mask")) batch.masks = stack_samples(masks, "mask", batch);
  } catch (const std::exception& e) {
    out.error = str_cat(e.what(), " (dataset '", dataset_->name(), "', epoch ", epoch, ", batch ", b, ")");
  }
  return out;
}

Batch Loader::build_batch(uint64_t epoch, int64_t b) const {
  MEDTL_CHECK(b >= 0 && b < num_batches_, "Loader::build_batch: batch ", b, " is outside [0, ", num_batches_, ")");
  Built built = build(epoch, epoch_order(epoch), b);
  if (!built.error.empty()) detail::throw_error(__FILE__, __LINE__, built.error);
  return std::move(built.batch);
}

void Loader::start_epoch(uint64_t epoch) {
  join_workers();
  std::vector<int64_t> order = epoch_order(epoch);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_ = epoch;
    order_ = std::move(order);
    next_claim_ = 0;
    next_deliver_ = 0;
    ready_.clear();
    stop_ = false;
    running_ = true;
    stats_ = LoaderStats{};
    epoch_start_ = std::chrono::steady_clock::now();
  }
  for (int w = 0; w < options_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  // One thread per worker: kernels inside (resize's parallel_for) run serially here rather than
  // each worker starting an OpenMP team of its own. Results do not depend on it.
  set_num_threads(1);
  const int64_t capacity = static_cast<int64_t>(options_.num_workers) * options_.prefetch;
  for (;;) {
    int64_t b;
    uint64_t epoch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || next_claim_ >= num_batches_ || next_claim_ < next_deliver_ + capacity; });
      if (stop_ || next_claim_ >= num_batches_) return;
      b = next_claim_++;
      epoch = epoch_;
    }
    Built built;
    try {
      built = build(epoch, order_, b);  // order_ does not change while workers run
    } catch (const std::exception& e) {  // build catches per sample; this is allocation failure and the like
      built.error = str_cat("loader: batch ", b, " of epoch ", epoch, ": ", e.what());
    } catch (...) {
      built.error = str_cat("loader: batch ", b, " of epoch ", epoch, ": unknown exception");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[b] = std::move(built);
    }
    ready_cv_.notify_all();
  }
}

bool Loader::next(Batch& batch) {
  const auto wait_start = std::chrono::steady_clock::now();
  for (;;) {
    Built built;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!running_) return false;
      if (next_deliver_ >= num_batches_) {
        running_ = false;
        break;
      }
      const int64_t b = next_deliver_;
      if (options_.num_workers > 0) {
        ready_cv_.wait(lock, [&] { return ready_.count(b) > 0; });
        built = std::move(ready_[b]);
        ready_.erase(b);
        ++next_deliver_;
      } else {
        ++next_deliver_;
        lock.unlock();
        // Per-sample kernels are too small to gain from an OpenMP team (on a busy machine the
        // fork/join costs more than the work); run them serially here too, then restore the
        // caller's setting. Values do not depend on it.
        const int threads = get_num_threads();
        set_num_threads(1);
        try {
          built = build(epoch_, order_, b);
        } catch (...) {
          set_num_threads(threads);
          throw;
        }
        set_num_threads(threads);
      }
    }
    work_cv_.notify_all();
    if (bad_log_)
      for (BadSample& bad : built.skipped) bad_log_->add(std::move(bad.source), std::move(bad.problem));
    if (!built.error.empty()) {
      stop();
      detail::throw_error(__FILE__, __LINE__, built.error);
    }
    if (built.batch.indices.empty()) continue;  // every sample of this batch was skipped
    batch = std::move(built.batch);
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.batches += 1;
    stats_.samples += batch.size();
    stats_.wait_seconds += std::chrono::duration<double>(now - wait_start).count();
    stats_.seconds = std::chrono::duration<double>(now - epoch_start_).count();
    return true;
  }
  join_workers();
  return false;
}

void Loader::stop() {
  join_workers();
  std::lock_guard<std::mutex> lock(mutex_);
  running_ = false;
}

void Loader::join_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  ready_.clear();
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace medtl::data
