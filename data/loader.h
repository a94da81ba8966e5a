// The loader: batches of transformed samples from a Dataset, shuffled per epoch, built by worker
// threads ahead of the consumer through a bounded queue, delivered in order.
//
// Determinism: batch b of epoch e holds the samples order[b * N .. (b + 1) * N), where `order` is
// a permutation keyed by (seed, epoch) alone; sample i is read with SampleKey{seed, e, i} and
// transformed with SampleRng(seed, e, i). Workers only decide *who* builds a batch, never what is
// in it, and the consumer receives batches in index order: the bytes are identical for 0, 1 or
// N workers and on every rerun.
//
//   LoaderOptions options;
//   options.batch_size = 32, options.shuffle = true, options.num_workers = 2, options.seed = 7;
//   Loader loader(dataset, paper_classification_train(NormalizeSpec::imagenet()), options);
//   for (uint64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     Batch batch;
//     while (loader.next(batch)) train_step(batch.images, batch.labels);
//   }
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "tensor/tensor.h"

namespace medtl::data {

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = false;
  bool drop_last = false;  // drop the last batch when it has fewer than batch_size samples
  int num_workers = 0;     // 0: each batch is built on the consumer's thread inside next()
  int prefetch = 2;        // batches each worker may run ahead (queue bound: num_workers * prefetch)
  uint64_t seed = 0;       // keys the shuffle and every sample's randomness
  // Throw: the first bad sample stops the epoch with an error naming it. Skip: bad samples are
  // left out of their batch and listed in the BadSampleLog given to the loader.
  OnBadSample on_bad_sample = OnBadSample::Throw;
};

struct Batch {
  Tensor images;  // float32 (N, C, H, W) (or (N, 10, C, H, W) after TenCrop)
  Tensor labels;  // float32 (N, K); undefined for mask datasets
  Tensor masks;   // float32 (N, 1, H, W) (or (N, 10, 1, H, W)); undefined unless the samples have masks
  std::vector<int64_t> class_indices;  // per sample, -1 where the target is not one class
  std::vector<int64_t> indices;        // dataset indices of the samples, in batch order
  std::vector<std::string> sources;    // the files they came from
  int64_t batch_index = -1;            // position in the epoch
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

// Throughput of the current (or last) epoch, as seen by the consumer.
struct LoaderStats {
  int64_t batches = 0;
  int64_t samples = 0;
  double seconds = 0.0;       // from start_epoch to the last batch delivered
  double wait_seconds = 0.0;  // time the consumer spent blocked in next(): > 0 means it starved
  double samples_per_second() const { return seconds > 0 ? samples / seconds : 0.0; }
  std::string str() const;    // "320 samples in 2.10 s: 152.4 samples/s (waited 0.31 s)"
};

// The visiting order of epoch `epoch`: a Fisher-Yates shuffle of 0..n-1 drawn from a SampleRng
// keyed by (seed, epoch) in the loader's own domain (never an augmentation stream).
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, uint64_t epoch);

class Loader {
 public:
  // transform may be null (samples pass through unchanged). bad_log receives skipped samples
  // (OnBadSample::Skip), in batch order; it must outlive the loader.
  Loader(std::shared_ptr<const Dataset> dataset, TransformPtr transform, LoaderOptions options,
         BadSampleLog* bad_log = nullptr);
  ~Loader();  // stops the workers and joins them; never waits on the consumer
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t num_batches() const { return num_batches_; }
  int64_t num_samples() const;  // samples per epoch (after drop_last)
  const LoaderOptions& options() const { return options_; }

  // Begins epoch `epoch` (stopping any epoch still running) and starts the workers.
  void start_epoch(uint64_t epoch);
  // The next batch of the epoch in order; false at the end of the epoch. A failure while
  // building a batch (unreadable file, transform error, samples of different sizes) is rethrown
  // here as medtl::Error naming the sample index and its file; the epoch then ends.
  bool next(Batch& batch);
  // Ends the current epoch early: workers finish the sample they are on and exit.
  void stop();

  // Builds batch b of `epoch` on the calling thread (what every worker runs).
  Batch build_batch(uint64_t epoch, int64_t b) const;
  std::vector<int64_t> epoch_order(uint64_t epoch) const;
  LoaderStats stats() const;

 private:
  struct Built {
    Batch batch;
    std::vector<BadSample> skipped;
    std::string error;  // non-empty: building failed
  };
  Built build(uint64_t epoch, const std::vector<int64_t>& order, int64_t b) const;
  void worker_loop();
  void join_workers();

  std::shared_ptr<const Dataset> dataset_;
  TransformPtr transform_;
  LoaderOptions options_;
  BadSampleLog* bad_log_;
  int64_t num_batches_ = 0;

  // The running epoch. mutex_ guards everything below it.
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // workers wait for room in the queue
  std::condition_variable ready_cv_;  // the consumer waits for the next batch
  uint64_t epoch_ = 0;
  bool running_ = false;
  bool stop_ = false;
  std::vector<int64_t> order_;
  int64_t next_claim_ = 0;    // the next batch a worker will build
  int64_t next_deliver_ = 0;  // the next batch the consumer gets
  std::map<int64_t, Built> ready_;
  std::vector<std::thread> workers_;

  std::chrono::steady_clock::time_point epoch_start_;
  LoaderStats stats_;
};

}  // namespace medtl::data
