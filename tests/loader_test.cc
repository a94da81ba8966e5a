// The loader: batch shapes, shuffling, drop_last, bit-identical batches for 0/1/3 workers and
// reruns, the bounded queue, error propagation with the sample and file, skipping bad samples,
// and shutting down early without a hang. Uses an in-memory dataset defined here.
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "data/augment.h"
#include "data/loader.h"
#include "tests/test_util.h"

namespace medtl::data {
namespace {

using medtl::testing::tensors_identical;

// n samples of (channels, h, w); sample i's pixels are a pattern of i, its label one-hot i % 2,
// its mask (optional) a binary pattern. `bad` indices throw like an unreadable file; `odd_size`
// gives one sample a different size.
class MemoryDataset : public Dataset {
 public:
  MemoryDataset(int64_t n, int64_t channels, int64_t h, int64_t w, bool with_mask = false)
      : n_(n), c_(channels), h_(h), w_(w), with_mask_(with_mask) {}
  std::set<int64_t> bad;
  int64_t odd_size = -1;
  int sleep_us = 0;
  mutable std::atomic<int64_t> max_index_read{-1};
  mutable std::atomic<int64_t> reads{0};

  using Dataset::get;
  int64_t size() const override { return n_; }
  Sample get(int64_t i, const SampleKey&) const override {
    check_index(i);
    reads++;
    int64_t seen = max_index_read.load();
    while (i > seen && !max_index_read.compare_exchange_weak(seen, i)) {
    }
    if (sleep_us) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    MEDTL_CHECK(!bad.count(i), "cannot decode image '", source(i), "': truncated file");
    const int64_t h = i == odd_size ? h_ + 1 : h_;
    Sample s;
    std::vector<float> px(c_ * h * w_);
    for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<float>((i * 37 + k * 11) % 256);
    s.image = from_vector<float>(px, {c_, h, w_});
    if (with_mask_) {
      std::vector<float> m(h * w_);
      for (size_t k = 0; k < m.size(); ++k) m[k] = ((k / w_ + i) % 5 < 2) ? 1.0f : 0.0f;
      s.mask = from_vector<float>(m, {1, h, w_});
    } else {
      s.label = from_vector<float>({i % 2 == 0 ? 1.0f : 0.0f, i % 2 == 1 ? 1.0f : 0.0f}, {2});
      s.class_index = i % 2;
    }
    s.index = i;
    s.source = source(i);
    return s;
  }
  TargetKind target_kind() const override { return with_mask_ ? TargetKind::Mask : TargetKind::MultiClass; }
  std::vector<std::string> class_names() const override { return {"a", "b"}; }
  std::string source(int64_t i) const override { return "mem/img_" + std::to_string(i) + ".png"; }
  std::string name() const override { return "memory"; }

 private:
  int64_t n_, c_, h_, w_;
  bool with_mask_;
};

LoaderOptions opts(int64_t batch, int workers, bool shuffle = false, bool drop_last = false, uint64_t seed = 3) {
  LoaderOptions o;
  o.batch_size = batch;
  o.num_workers = workers;
  o.shuffle = shuffle;
  o.drop_last = drop_last;
  o.seed = seed;
  return o;
}

std::vector<Batch> drain(Loader& loader, uint64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

TEST(Loader, BatchShapesLabelsAndLastBatch) {
  auto ds = std::make_shared<MemoryDataset>(10, 1, 6, 5);
  Loader loader(ds, nullptr, opts(4, 0));
  EXPECT_EQ(loader.num_batches(), 3);
  const std::vector<Batch> batches = drain(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].images.shape(), (Shape{4, 1, 6, 5}));
  EXPECT_EQ(batches[0].labels.shape(), (Shape{4, 2}));
  EXPECT_FALSE(batches[0].masks.defined());
  EXPECT_EQ(batches[2].images.shape(), (Shape{2, 1, 6, 5}));
  EXPECT_EQ(batches[2].indices, (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(batches[1].class_indices, (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(batches[1].sources[0], "mem/img_4.png");
  EXPECT_TRUE(tensors_identical(batches[1].images.select(0, 2), ds->get(6).image));
  EXPECT_EQ(batches[1].labels.at({1, 1}), 1.0);
  EXPECT_EQ(loader.stats().samples, 10);
  EXPECT_GT(loader.stats().samples_per_second(), 0.0);

  Loader dropping(ds, nullptr, opts(4, 2, false, /*drop_last=*/true));
  EXPECT_EQ(dropping.num_batches(), 2);
  EXPECT_EQ(dropping.num_samples(), 8);
  EXPECT_EQ(drain(dropping, 0).size(), 2u);
}

TEST(Loader, MasksAreBatched) {
  auto ds = std::make_shared<MemoryDataset>(5, 3, 8, 8, /*with_mask=*/true);
  Loader loader(ds, nullptr, opts(2, 1));
  const std::vector<Batch> batches = drain(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].images.shape(), (Shape{2, 3, 8, 8}));
  EXPECT_EQ(batches[0].masks.shape(), (Shape{2, 1, 8, 8}));
  EXPECT_FALSE(batches[0].labels.defined());
}

TEST(Loader, ShuffleIsAPermutationKeyedBySeedAndEpoch) {
  const std::vector<int64_t> a = shuffled_indices(1000, 7, 0), b = shuffled_indices(1000, 7, 1);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 1000u);
  EXPECT_EQ(*std::min_element(a.begin(), a.end()), 0);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 999);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, shuffled_indices(1000, 7, 0));
  EXPECT_NE(a, shuffled_indices(1000, 8, 0));
  int fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += a[i] == i;
  EXPECT_LT(fixed, 10);  // a random permutation has about one fixed point

  auto ds = std::make_shared<MemoryDataset>(23, 1, 4, 4);
  Loader loader(ds, nullptr, opts(5, 2, /*shuffle=*/true));
  std::vector<int64_t> seen;
  for (const Batch& batch : drain(loader, 4)) seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
  EXPECT_EQ(seen, shuffled_indices(23, 3, 4));
}

// Batches of the paper's classification augmentation (and the segmentation one) are identical in
// every byte for 0, 1 and 3 workers and on a rerun.
TEST(Loader, BitIdenticalForAnyWorkerCount) {
  auto ds = std::make_shared<MemoryDataset>(21, 1, 40, 48);
  const TransformPtr train = paper_classification_train(NormalizeSpec::imagenet(), 32);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3, 3}) {
    Loader loader(ds, train, opts(4, workers, /*shuffle=*/true));
    std::vector<Batch> all = drain(loader, 0);
    const std::vector<Batch> second = drain(loader, 1);
    all.insert(all.end(), second.begin(), second.end());
    runs.push_back(all);
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t b = 0; b < runs[0].size(); ++b) {
      EXPECT_EQ(runs[r][b].indices, runs[0][b].indices);
      EXPECT_TRUE(tensors_identical(runs[r][b].images, runs[0][b].images)) << "run " << r << " batch " << b;
      EXPECT_TRUE(tensors_identical(runs[r][b].labels, runs[0][b].labels));
    }
  }
  // Epochs differ (order and augmentation), and a sample's augmentation does not depend on its batch.
  EXPECT_NE(runs[0][0].indices, runs[0][6].indices);
  Loader unshuffled(ds, train, opts(7, 2));
  const Batch& shuffled_first = runs[0][0];
  const int64_t i = shuffled_first.indices[0];
  const Batch by_hand = unshuffled.build_batch(0, i / 7);
  EXPECT_TRUE(tensors_identical(by_hand.images.select(0, i % 7), shuffled_first.images.select(0, 0)));

  auto seg = std::make_shared<MemoryDataset>(9, 1, 64, 64, true);
  auto aug = std::make_shared<Pipeline>();
  aug->emplace<Resize>(40, 40, Interp::Nearest, Interp::Nearest);
  aug->emplace<OneOf>(std::vector<std::pair<TransformPtr, double>>{
                          {std::make_shared<ElasticTransform>(120.0, 6.0, 3.6, 1.0), 1.0},
                          {std::make_shared<GridDistortion>(5, 0.3, 1.0), 1.0}},
                      0.9);
  Loader seg0(seg, aug, opts(4, 0, true)), seg3(seg, aug, opts(4, 3, true));
  const std::vector<Batch> a = drain(seg0, 2), b = drain(seg3, 2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_TRUE(tensors_identical(a[k].images, b[k].images));
    EXPECT_TRUE(tensors_identical(a[k].masks, b[k].masks));
  }
}

TEST(Loader, QueueIsBounded) {
  auto ds = std::make_shared<MemoryDataset>(200, 1, 4, 4);
  LoaderOptions o = opts(2, 2);
  o.prefetch = 2;  // at most 4 batches built ahead of the consumer
  Loader loader(ds, nullptr, o);
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the workers fill the queue
  // Delivered batch 0; batches 1..4 may be built; sample indices stay below (1 + 4) * 2.
  EXPECT_LT(ds->max_index_read.load(), 10);
  EXPECT_GE(ds->max_index_read.load(), 7);
}

TEST(Loader, ErrorsNameTheSampleAndFileForAnyWorkerCount) {
  auto ds = std::make_shared<MemoryDataset>(30, 1, 4, 4);
  ds->bad = {13};
  for (int workers : {0, 1, 3}) {
    Loader loader(ds, nullptr, opts(4, workers));
    loader.start_epoch(0);
    Batch b;
    int delivered = 0;
    try {
      while (loader.next(b)) ++delivered;
      ADD_FAILURE() << "no error with " << workers << " workers";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("sample 13"), std::string::npos) << what;
      EXPECT_NE(what.find("mem/img_13.png"), std::string::npos) << what;
      EXPECT_NE(what.find("truncated file"), std::string::npos) << what;
    }
    EXPECT_EQ(delivered, 3) << "batches 0-2 come before the failing batch 3";
    EXPECT_FALSE(loader.next(b));  // the epoch ended with the error
    ds->bad.clear();               // and the loader is usable again
    EXPECT_EQ(drain(loader, 1).size(), 8u);
    ds->bad = {13};
  }
}

TEST(Loader, TransformAndSizeErrorsArePropagated) {
  auto ds = std::make_shared<MemoryDataset>(8, 1, 10, 10);
  ds->odd_size = 5;
  Loader loader(ds, nullptr, opts(4, 2));
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_ERROR_CONTAINS(loader.next(b), "sample 5 ('mem/img_5.png') has image shape (1, 11, 10)");
  // A transform that cannot apply (crop larger than the image) names the sample too.
  auto crop_pipeline = std::make_shared<Pipeline>();
  crop_pipeline->emplace<CenterCrop>(20, 20);
  Loader failing(std::make_shared<MemoryDataset>(4, 1, 10, 10), crop_pipeline, opts(2, 3));
  failing.start_epoch(0);
  EXPECT_ERROR_CONTAINS(failing.next(b), "sample 0 of dataset 'memory' (file 'mem/img_0.png')");
}

TEST(Loader, SkipPolicyDropsAndListsBadSamples) {
  auto ds = std::make_shared<MemoryDataset>(10, 1, 4, 4);
  ds->bad = {2, 3, 7};
  for (int workers : {0, 3}) {
    BadSampleLog log;
    LoaderOptions o = opts(4, workers);
    o.on_bad_sample = OnBadSample::Skip;
    Loader loader(ds, nullptr, o, &log);
    std::vector<int64_t> seen;
    for (const Batch& batch : drain(loader, 0)) seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
    EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 4, 5, 6, 8, 9}));
    ASSERT_EQ(log.count(), 3);
    EXPECT_EQ(log.entries()[0].source, "mem/img_2.png");
    EXPECT_EQ(log.entries()[2].source, "mem/img_7.png");
  }
}

TEST(Loader, EarlyStopAndDestructionDoNotHang) {
  auto ds = std::make_shared<MemoryDataset>(400, 1, 8, 8);
  ds->sleep_us = 200;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 5; ++round) {
    Loader loader(ds, nullptr, opts(4, 3, true));
    loader.start_epoch(0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    if (round % 2) loader.start_epoch(1);  // restart mid-epoch
    if (round == 4) loader.stop();
  }  // destructor with workers blocked on a full queue
  {
    Loader never_consumed(ds, nullptr, opts(4, 3));
    never_consumed.start_epoch(0);
  }
  {
    Loader never_started(ds, nullptr, opts(4, 3));
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
}

TEST(Loader, RejectsEmptyAndTooSmallDatasets) {
  EXPECT_ERROR_CONTAINS(Loader(std::make_shared<MemoryDataset>(0, 1, 4, 4), nullptr, opts(4, 0)), "is empty");
  EXPECT_ERROR_CONTAINS(Loader(std::make_shared<MemoryDataset>(3, 1, 4, 4), nullptr, opts(4, 0, false, true)),
                        "fewer than batch_size 4 with drop_last");
}

}  // namespace
}  // namespace medtl::data
