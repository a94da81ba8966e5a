// Tests of the benchmark's config, grid and store: the three presets parse and validate (the paper
// preset included, whose data is not on this machine), errors name line and key, overrides, the
// grid's exclusions, shards and identities, seeds, file names, run records and HDF5 attributes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "experiments/benchmark_config.h"
#include "experiments/benchmark_grid.h"
#include "experiments/benchmark_progress.h"
#include "experiments/benchmark_store.h"
#include "models/weights.h"
#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

namespace fs = std::filesystem;

ExperimentConfig preset(const std::string& name) {
  return load_config("experiments/configs/" + name + ".ini");
}

Paths test_paths() {
  Paths p;
  p.data = "/nonexistent/data", p.weights = "/nonexistent/weights", p.workspace = "/ws";
  return p;
}

// Expects parse_config(text) to throw a message containing every piece of `parts`.
void expect_error(const std::string& text, const std::vector<std::string>& parts,
                  const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(text, "t.ini", overrides);
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

const char* const kMinimal =
    "[experiment]\nname = t\nruns = 2\nseed = 5\n"
    "[classification]\nimage_size = 32\nresize = 37\nmax_epochs = 3\n"
    "[source Scratch]\ninit = random\n"
    "[source ImageNet]\ninit = weights\nweights = ${weights}/w.h5\n"
    "[source InDomain]\ninit = pretrain\nfrom = Scratch\ndata = folder ${data}/a\n"
    "[target A]\ntask = classification\ndata = folder ${data}/a\n"
    "[target B]\ntask = segmentation\ndata = isbi2012 ${data}/isbi\nimage_size = 64\n";

TEST(BenchmarkConfig, PresetsParseAndValidate) {
  const ExperimentConfig d = preset("default");
  EXPECT_EQ(d.name, "default");
  EXPECT_GE(d.runs, 3);
  ASSERT_EQ(d.sources.size(), 4u);
  EXPECT_EQ(d.sources[0].init, "random");
  EXPECT_EQ(d.sources[1].init, "weights");
  EXPECT_EQ(d.sources[3].from, "ImageNet");
  EXPECT_EQ(d.targets.size(), 2u);
  EXPECT_EQ(d.target("NIH-CXR").metric, "auc");
  EXPECT_EQ(d.target("ISBI-EM").metric_columns(), (std::vector<std::string>{"dice_global", "dice_mean"}));
  // The paper's numbers that the default keeps.
  EXPECT_DOUBLE_EQ(d.target("NIH-CXR").protocol.lr, 2e-4);
  EXPECT_DOUBLE_EQ(d.target("NIH-CXR").protocol.lr_factor, 0.5);
  EXPECT_TRUE(d.target("NIH-CXR").protocol.ten_crop);
  EXPECT_DOUBLE_EQ(d.target("ISBI-EM").protocol.lr, 1e-3);
  EXPECT_EQ(d.target("ISBI-EM").protocol.loss, "dice");

  const ExperimentConfig s = preset("smoke");
  EXPECT_EQ(s.sources.size(), d.sources.size()) << "the smoke preset must exercise every kind of source";

  const ExperimentConfig p = preset("paper");  // parses and validates without its data
  EXPECT_EQ(p.runs, 10);
  EXPECT_EQ(p.variant, "torchvision");
  const Protocol& dxc = p.targets.at(0).protocol;
  EXPECT_EQ(dxc.image_size, 224);
  EXPECT_EQ(dxc.resize, 256);
  EXPECT_EQ(dxc.batch, 32);
  EXPECT_EQ(dxc.max_epochs, 1000);
  EXPECT_EQ(dxc.patience, 11);
  EXPECT_EQ(dxc.lr_patience, 5);
  for (const auto& t : p.targets)
    if (t.protocol.task == "segmentation") {
      EXPECT_EQ(t.protocol.patience, 21) << t.name;
    }
  const Grid grid(p, test_paths());
  EXPECT_FALSE(grid.excluded().empty()) << "ChestX-ray14-based sources must not be evaluated on DXC14";
  EXPECT_EQ(grid.runs().size() + grid.excluded().size() * 10, p.sources.size() * p.targets.size() * 10);
}

TEST(BenchmarkConfig, DefaultsInheritAndOverride) {
  const ExperimentConfig c = parse_config(kMinimal, "t.ini", {"target A.batch=8", "classification.lr=0.001"});
  EXPECT_EQ(c.target("A").protocol.batch, 8);
  EXPECT_DOUBLE_EQ(c.target("A").protocol.lr, 1e-3);
  EXPECT_EQ(c.target("A").protocol.max_epochs, 3);            // from [classification]
  EXPECT_EQ(c.target("B").protocol.max_epochs, 200);          // the paper's segmentation default
  EXPECT_EQ(c.source("InDomain").protocol.image_size, 32);    // pre-training falls back to [classification]
  EXPECT_EQ(c.source("Scratch").preprocess, "caffe");
  EXPECT_EQ(c.target("A").data.splits, (std::vector<std::string>{"train", "valid", "test"}));
  EXPECT_EQ(c.target("B").data.splits, (std::vector<std::string>{"0-19", "20-24", "25-29"}));
  EXPECT_EQ(split_overrides("a.b=1; c d.e=2;"), (std::vector<std::string>{"a.b=1", "c d.e=2"}));
}

TEST(BenchmarkConfig, ErrorsNameLineAndKey) {
  expect_error(std::string(kMinimal) + "[target C]\ntask = classification\ndata = folder x\nbatchsize = 3\n",
               {"t.ini:", "unknown key 'batchsize'", "target C"});
  expect_error("[experiment]\nruns = zero\n", {"runs", "integer", "zero"});
  expect_error("[experiment]\nname = t\n[source S]\ninit = random\n", {"no [target NAME]"});
  expect_error(std::string(kMinimal) + "[source X]\ninit = pretrain\nfrom = Y\ndata = folder q\n",
               {"starts from 'Y'"});
  expect_error(std::string(kMinimal) + "[source A2]\ninit = pretrain\nfrom = B2\ndata = folder q\n"
                                       "[source B2]\ninit = pretrain\nfrom = A2\ndata = folder q\n",
               {"cycle"});
  expect_error(std::string(kMinimal), {"no section [target Z]"}, {"target Z.batch=3"});
  expect_error("[experiment]\nname = t\nbaseline = Nope\n[source S]\ninit = random\n[target T]\ntask = "
               "classification\ndata = folder x\n",
               {"baseline 'Nope'"});
  expect_error(std::string(kMinimal) + "[target S]\ntask = segmentation\ndata = isbi2012 x\nimage_size = 50\n",
               {"multiple of 32"});
  expect_error("[experiment]\nname = a/b\n", {"name 'a/b'"});
}

TEST(BenchmarkGrid, ExclusionsShardsAndOrder) {
  const ExperimentConfig c = parse_config(kMinimal, "t.ini");
  const Grid grid(c, test_paths());
  // InDomain was pre-trained on target A's data: that cell is left out.
  ASSERT_EQ(grid.excluded().size(), 1u);
  EXPECT_NE(grid.excluded()[0].find("InDomain"), std::string::npos);
  EXPECT_EQ(grid.runs().size(), static_cast<size_t>(2 * (3 + 2)));  // runs x (A: 2 sources + ... )
  // Round-major order: the first round gives every cell one run.
  for (size_t k = 0; k < 5; ++k) EXPECT_EQ(grid.runs()[k].run, 0);
  // Shards: disjoint, complete, deterministic.
  for (int64_t n : {1, 2, 3, 7}) {
    std::multiset<std::string> keys;
    for (int64_t i = 0; i < n; ++i)
      for (const Job& j : grid.shard(i, n)) keys.insert(j.key);
    EXPECT_EQ(keys.size(), grid.runs().size());
    EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), grid.runs().size());
  }
  EXPECT_EQ(grid.shard(1, 3).front().key, grid.runs()[1].key);
  int64_t i = 0, n = 0;
  parse_shard("2/5", &i, &n);
  EXPECT_EQ(i, 2);
  EXPECT_EQ(n, 5);
  EXPECT_THROW(parse_shard("5/5", &i, &n), Error);
  EXPECT_THROW(parse_shard("1", &i, &n), Error);
  // Stage order: a chain's first stage comes first.
  const auto stages = grid.stages_for(grid.runs());
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].source, "InDomain");
}

TEST(BenchmarkGrid, IdentitiesFollowWhatResultsDependOn) {
  const Paths paths = test_paths();
  auto hash_of = [&](const std::vector<std::string>& overrides, const Paths& p) {
    const ExperimentConfig c = parse_config(kMinimal, "t.ini", overrides);
    const Grid g(c, p);
    Job job = g.runs()[0];  // Scratch on A, run 0
    g.identify(job);
    return job.hash;
  };
  const std::string base = hash_of({}, paths);
  EXPECT_EQ(base.size(), 16u);
  EXPECT_EQ(hash_of({"classification.workers=0"}, paths), base);   // loader threads change nothing
  Paths other = paths;
  other.data = "/elsewhere";
  EXPECT_EQ(hash_of({}, other), base);                              // nor does where the data lies
  EXPECT_NE(hash_of({"classification.lr=0.1"}, paths), base);
  EXPECT_NE(hash_of({"experiment.seed=6"}, paths), base);
  EXPECT_NE(hash_of({"experiment.conv_chunk=4"}, paths), base);
  EXPECT_NE(hash_of({"target A.train_limit=10"}, paths), base);
  // A GPU computes other bits: its runs are other runs. Which GPU does not matter, and an explicit
  // cpu is the default (CPU hashes are what they were before devices existed).
  EXPECT_EQ(hash_of({"experiment.device=cpu"}, paths), base);
  EXPECT_NE(hash_of({"experiment.device=cuda"}, paths), base);
  EXPECT_EQ(hash_of({"experiment.device=cuda:1"}, paths), hash_of({"experiment.device=cuda"}, paths));
  EXPECT_THROW(hash_of({"experiment.device=tpu"}, paths), Error);
  // Stages: identity through the from-chain.
  const ExperimentConfig c = parse_config(kMinimal, "t.ini");
  const Grid g(c, paths);
  const Job stage = g.stage_job("InDomain");
  EXPECT_NE(stage.identity.find("random preprocess=caffe"), std::string::npos);
  EXPECT_NE(g.stage_path("InDomain", "/p").find("/p/InDomain-" + stage.hash + ".h5"), std::string::npos);
  EXPECT_THROW(g.source_identity("ImageNet"), Error);  // the weight file is missing: says where to get it
}

TEST(BenchmarkGrid, SeedsAreStableAndDistinct) {
  EXPECT_EQ(run_seed(20210927, 0), run_seed(20210927, 0));
  EXPECT_NE(run_seed(20210927, 0), run_seed(20210927, 1));
  EXPECT_NE(derive_seed(1, "init"), derive_seed(1, "head"));
  EXPECT_LT(run_seed(7, 3), uint64_t{1} << 63);
}

TEST(BenchmarkStore, FileNamesRecordsAndAttributes) {
  EXPECT_EQ(file_safe("ImageNet\xE2\x86\x92PneumoniaMNIST"), "ImageNet-to-PneumoniaMNIST");
  EXPECT_EQ(file_safe("a b/c"), "a_b_c");
  const std::string dir = ::testing::TempDir() + "/bench_store";
  fs::create_directories(dir + "/runs");
  report::RunRecord r;
  r.source = "ImageNet", r.target = "NIH", r.metric = "auc", r.run = 1, r.seed = 99, r.value = 0.8125;
  r.epochs = 4, r.wall_seconds = 12.5, r.config_hash = "abc";
  report::RunRecord f = r;
  f.metric = "auc2", f.failure = "epoch 1 batch 2: loss = nan";
  write_run_records(dir + "/runs/k.csv", {r, f});
  const auto back = read_results_dir(dir).at("k");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].value, 0.8125);
  EXPECT_EQ(back[0].seed, 99u);
  EXPECT_EQ(back[0].config_hash, "abc");
  EXPECT_EQ(back[1].failure, f.failure);
  EXPECT_TRUE(read_run_records(dir + "/runs/none.csv").empty());

  // String attributes on a weight file, beside the format's own.
  const std::string h5 = dir + "/w.h5";
  models::write_hdf5_file(h5, {}, models::Hdf5Attributes{});
  write_string_attributes(h5, {{"medtl_stage_hash", "0123"}, {"medtl_data", "x\xE2\x86\x92y"}});
  write_string_attributes(h5, {{"medtl_stage_hash", "4567"}});
  EXPECT_EQ(read_string_attribute(h5, "medtl_stage_hash"), "4567");
  EXPECT_EQ(read_string_attribute(h5, "medtl_data"), "x\xE2\x86\x92y");
  EXPECT_EQ(read_string_attribute(h5, "absent"), "");
  EXPECT_EQ(read_string_attribute(dir + "/none.h5", "medtl_stage_hash"), "");
  EXPECT_EQ(file_sha256(h5).size(), 64u);
}

TEST(BenchmarkProgress, DurationFormat) {
  EXPECT_EQ(GridProgress::format_seconds(5), "5s");
  EXPECT_EQ(GridProgress::format_seconds(65), "1m05s");
  EXPECT_EQ(GridProgress::format_seconds(3725), "1h02m");
  EXPECT_EQ(GridProgress::format_seconds(-1), "?");
}

}  // namespace
}  // namespace medtl::experiments::bench
