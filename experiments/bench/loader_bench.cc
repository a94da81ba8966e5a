// Loader throughput with the paper's classification training augmentation (RandomResizedCrop 224 +
// horizontal flip + rotation 7 + ImageNet normalisation) on real images: samples/s for 0 workers
// and for --workers threads, and the cost of each stage on one thread.
//
//   bazel run -c opt //experiments/bench:loader_bench
//   bazel run -c opt //experiments/bench:loader_bench -- --workers=2 --source_size=1024
//
// --source_size=N decodes every image once, resizes it to N x N and keeps it in memory, so the
// transforms can be timed at the size of the real datasets (ChestX-ray14 is 1024 x 1024) without
// those files. Decoding is then not timed; the stage table shows what decoding costs at 64 px.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/classification.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "experiments/flags.h"
#include "tensor/parallel.h"

namespace {

using namespace medtl;
using namespace medtl::data;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Every sample of `base` decoded once and resized to size x size, kept in memory.
class ResizedInMemory : public Dataset {
 public:
  using Dataset::get;
  ResizedInMemory(const Dataset& base, int64_t size) : name_(base.name() + "@" + std::to_string(size)) {
    for (int64_t i = 0; i < base.size(); ++i) {
      Sample s = base.get(i);
      s.image = resize_bilinear(s.image, size, size);
      samples_.push_back(std::move(s));
    }
    kind_ = base.target_kind();
    classes_ = base.class_names();
  }
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Sample get(int64_t i, const SampleKey&) const override {
    check_index(i);
    return samples_[i];
  }
  TargetKind target_kind() const override { return kind_; }
  std::vector<std::string> class_names() const override { return classes_; }
  std::string source(int64_t i) const override { return samples_[i].source; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  std::vector<Sample> samples_;
  TargetKind kind_ = TargetKind::Binary;
  std::vector<std::string> classes_;
};

// Median seconds per sample of each stage over the first n samples, on this thread.
void stage_table(const Dataset& ds, int64_t n) {
  const NormalizeSpec spec = NormalizeSpec::imagenet();
  const RandomResizedCrop rrc(224, 224);
  const RandomHorizontalFlip flip(0.5);
  const RandomRotation rot(7.0);
  const GrayToRgb rgb;
  const Normalize norm(spec);
  std::vector<std::vector<double>> t(5);
  n = std::min(n, ds.size());
  for (int64_t i = 0; i < n; ++i) {
    SampleRng rng(1, 0, i);
    double t0 = now_s();
    Sample s = ds.get(i);
    double t1 = now_s();
    ImageMask x{s.image, Tensor()};
    rrc.apply(x, rng);
    double t2 = now_s();
    flip.apply(x, rng);
    double t3 = now_s();
    rot.apply(x, rng);
    double t4 = now_s();
    rgb.apply(x, rng);
    norm.apply(x, rng);
    double t5 = now_s();
    t[0].push_back(t1 - t0), t[1].push_back(t2 - t1), t[2].push_back(t3 - t2), t[3].push_back(t4 - t3),
        t[4].push_back(t5 - t4);
  }
  const char* names[5] = {"read (decode or copy)", "RandomResizedCrop 224", "horizontal flip (p 0.5)",
                          "rotation +-7 (nearest)", "gray->RGB + normalise"};
  std::printf("per-sample stage cost on one thread (median of %lld samples):\n", static_cast<long long>(n));
  double total = 0;
  for (int k = 0; k < 5; ++k) {
    std::sort(t[k].begin(), t[k].end());
    const double median = t[k][t[k].size() / 2];
    total += median;
    std::printf("  %-26s %8.3f ms\n", names[k], median * 1e3);
  }
  std::printf("  %-26s %8.3f ms  (~%.0f samples/s per thread)\n", "sum", total * 1e3, 1.0 / total);
}

}  // namespace

int main(int argc, char** argv) {
  experiments::Flags flags(argc, argv,
                           {{"data", "a split folder with one sub-folder per class (default: NIH1000/train in ../shared/data)"},
                            {"workers", "loader worker threads (default 2)"},
                            {"batch", "batch size (default 32)"},
                            {"epochs", "epochs to time per configuration (default 2)"},
                            {"channels", "gray (decode 1 channel, replicate at the end) or rgb (decode 3), default gray"},
                            {"source_size", "0: images as decoded; N: pre-resized to N x N in memory (default 0)"}},
                           "loader_bench [--data=DIR] [--workers=2] [--batch=32] [--epochs=2] [--channels=gray] [--source_size=0]");
  std::string data = flags.get("data", "");
  if (data.empty()) {
    const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");  // set by bazel run
    data = std::string(ws ? ws : ".") + "/../shared/data/nih-chestxray14-1000-64px/NIH1000/train";
  }
  const int workers = static_cast<int>(flags.get_int("workers", 2));
  const int64_t batch = flags.get_int("batch", 32);
  const int epochs = static_cast<int>(flags.get_int("epochs", 2));
  const std::string channels = flags.get("channels", "gray");
  const int64_t source_size = flags.get_int("source_size", 0);

  ImageOptions options;
  options.channels = channels == "rgb" ? ChannelPolicy::RGB : ChannelPolicy::Gray;
  std::shared_ptr<const Dataset> ds = folder_per_class(data, options);
  if (source_size > 0) ds = std::make_shared<ResizedInMemory>(*ds, source_size);
  const Sample first = ds->get(0);
  std::printf("dataset %s: %lld images, first %s; %d threads available to OpenMP\n", ds->name().c_str(),
              static_cast<long long>(ds->size()), shape_str(first.image.shape()).c_str(), get_num_threads());

  const auto pipeline = paper_classification_train(NormalizeSpec::imagenet());
  std::printf("pipeline: %s\n\n", pipeline->describe().c_str());
  stage_table(*ds, 200);

  std::printf("\nloader, batch %lld, shuffle, drop_last:\n", static_cast<long long>(batch));
  for (int w : {0, workers}) {
    LoaderOptions o;
    o.batch_size = batch;
    o.shuffle = true;
    o.drop_last = true;
    o.num_workers = w;
    o.seed = 1;
    Loader loader(ds, pipeline, o);
    for (int e = 0; e < epochs; ++e) {
      loader.start_epoch(e);
      Batch b;
      while (loader.next(b)) {
      }
      std::printf("  %d worker%s, epoch %d: %s\n", w, w == 1 ? "" : "s", e, loader.stats().str().c_str());
    }
  }
  return 0;
}
