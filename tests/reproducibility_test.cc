// Bit-reproducible training (docs/reproducibility.md), on a tiny ResNet-50 run
// (experiments/configs/verify_tiny.cfg: 32x32 synthetic images, Adam, cosine schedule, an input
// Dropout, 4 steps over epochs of 3):
//   - resume: 2 steps, a checkpoint, then a NEW process (the verify_reproducible binary in worker
//     mode) that loads it and trains 2 more ends with every tensor -- parameters, buffers,
//     optimizer state, losses -- and every attribute identical to 4 uninterrupted steps;
//   - two processes: the same config in this process and in another gives the same hashes;
//   - thread counts: 2 full training steps (forward, backward, Adam) with 1 thread give the same
//     bits as with 2;
//   - the run manifest has every field, with sane values; the config format and its errors.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "experiments/manifest.h"
#include "experiments/repro_training.h"
#include "models/weights.h"
#include "tensor/determinism.h"
#include "tensor/parallel.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using experiments::ReproConfig;
using experiments::ReproRun;
using testing::tensors_identical;

constexpr const char* kConfig = "experiments/configs/verify_tiny.cfg";

std::string tmp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::string worker_binary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string base = srcdir != nullptr ? std::string(srcdir) + "/medtl/" : "";
  return base + "experiments/verify_reproducible";
}

// Runs verify_reproducible in worker mode in a new process; its stdout (the two hashes).
std::map<std::string, std::string> run_worker(const std::string& args) {
  const std::string command = worker_binary() + " " + kConfig + " --worker " + args;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw Error("popen failed: " + command);
  std::map<std::string, std::string> out;
  char line[512];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    out[key] = value;
  }
  const int status = ::pclose(pipe);
  if (status != 0) throw Error(str_cat("worker failed (status ", status, "): ", command));
  return out;
}

// Every dataset and attribute of two checkpoints, bit for bit.
void expect_identical_checkpoints(const std::string& a, const std::string& b) {
  const auto ta = models::read_hdf5_tensors(a), tb = models::read_hdf5_tensors(b);
  ASSERT_EQ(ta.size(), tb.size());
  int64_t bytes = 0;
  for (size_t i = 0; i < ta.size(); ++i) {
    ASSERT_EQ(ta[i].first, tb[i].first);
    EXPECT_TRUE(tensors_identical(ta[i].second, tb[i].second)) << ta[i].first;
    bytes += ta[i].second.numel() * dtype_size(ta[i].second.dtype());
  }
  const auto aa = models::read_hdf5_attributes(a), ab = models::read_hdf5_attributes(b);
  EXPECT_EQ(aa.strings, ab.strings);
  EXPECT_EQ(aa.ints, ab.ints);
  EXPECT_EQ(aa.uints, ab.uints);
  EXPECT_EQ(aa.doubles, ab.doubles);
  std::printf("[ NOTE     ] %zu tensors (%lld bytes) and %zu attributes compared\n", ta.size(),
              static_cast<long long>(bytes), aa.strings.size() + aa.ints.size() + aa.uints.size() + aa.doubles.size());
}

class Reproducibility : public ::testing::Test {
 protected:
  // Run A: all 4 steps, 2 threads. Run B: 2 steps, 2 threads, checkpointed mid-epoch. Both stay
  // alive for the tests (a ResNet-50 costs seconds to build).
  static void SetUpTestSuite() {
    set_num_threads(2);
    ASSERT_TRUE(deterministic());
    config_ = new ReproConfig(experiments::load_repro_config(kConfig));
    ASSERT_EQ(config_->steps, 4);
    ASSERT_EQ(config_->steps_per_epoch, 3);
    ASSERT_GT(config_->dropout, 0.0);
    a_ = new ReproRun(*config_);
    a_->train_all();
    a_->save(tmp_path("a_end.h5"));
    manifest_a_ = new experiments::RunManifest(a_->manifest("reproducibility_test"));
    b_ = new ReproRun(*config_);
    b_->train_until(2);
    b_->save(tmp_path("b_half.h5"));
  }
  static void TearDownTestSuite() {
    delete config_;
    delete manifest_a_;
    delete a_;
    delete b_;
  }
  static ReproConfig* config_;
  static experiments::RunManifest* manifest_a_;
  static ReproRun* a_;
  static ReproRun* b_;
};
ReproConfig* Reproducibility::config_ = nullptr;
experiments::RunManifest* Reproducibility::manifest_a_ = nullptr;
ReproRun* Reproducibility::a_ = nullptr;
ReproRun* Reproducibility::b_ = nullptr;

// Every state_dict tensor and every optimizer state tensor of two runs, bit for bit.
void expect_identical_runs(ReproRun& x, ReproRun& y, const std::string& what) {
  const auto sx = x.model().state_dict(), sy = y.model().state_dict();
  ASSERT_EQ(sx.size(), sy.size());
  for (size_t i = 0; i < sx.size(); ++i)
    EXPECT_TRUE(tensors_identical(sx[i].second, sy[i].second)) << sx[i].first << ": " << what;
  const auto ox = x.optimizer().export_state(), oy = y.optimizer().export_state();
  ASSERT_EQ(ox.size(), oy.size());
  for (size_t i = 0; i < ox.size(); ++i)
    EXPECT_TRUE(tensors_identical(ox[i].second, oy[i].second)) << "optimizer " << ox[i].first << ": " << what;
  EXPECT_EQ(x.step_losses(), y.step_losses()) << what;
}

TEST_F(Reproducibility, ResumeInANewProcessEqualsTheUninterruptedRun) {
  const auto half = models::read_hdf5_attributes(tmp_path("b_half.h5"));
  EXPECT_EQ(half.ints.at("global_step"), 2);
  EXPECT_EQ(half.ints.at("epoch"), 0);
  EXPECT_EQ(half.ints.at("step_in_epoch"), 2);  // mid-epoch: the loader resumes at batch 2
  const auto out = run_worker("--threads=2 --resume=" + tmp_path("b_half.h5") + " --save=" + tmp_path("resumed.h5"));
  expect_identical_checkpoints(tmp_path("a_end.h5"), tmp_path("resumed.h5"));
  EXPECT_EQ(out.at("weights_sha256"), manifest_a_->weights_sha256);
  EXPECT_EQ(out.at("losses_sha256"), manifest_a_->losses_sha256);
}

TEST_F(Reproducibility, TwoProcessesGiveIdenticalBits) {
  // This process trained run A; another trains the same config from scratch.
  const auto out = run_worker("--threads=2 --manifest=" + tmp_path("other.json"));
  EXPECT_EQ(out.at("weights_sha256"), manifest_a_->weights_sha256);
  EXPECT_EQ(out.at("losses_sha256"), manifest_a_->losses_sha256);
  std::ifstream in(tmp_path("other.json"));
  std::stringstream json;
  json << in.rdbuf();
  EXPECT_NE(json.str().find("\"weights_sha256\": \"" + manifest_a_->weights_sha256 + "\""), std::string::npos);
}

TEST_F(Reproducibility, OneThreadEqualsTwoThreadsForFullTrainingSteps) {
  // Run B took 2 steps (forward, BCE, backward, Adam) with 2 threads; the same with 1 thread.
  const int saved = get_num_threads();
  set_num_threads(1);
  ReproRun c(*config_);
  c.train_until(2);
  set_num_threads(saved);
  expect_identical_runs(*b_, c, "1 vs 2 threads");
}

TEST_F(Reproducibility, ManifestHasEveryField) {
  const experiments::RunManifest& m = *manifest_a_;
  const std::string json = experiments::manifest_json(m);
  for (const char* key : {"program", "created_utc", "config", "config_sha256", "seeds", "git_commit", "git_dirty",
                          "versions", "onednn", "hdf5", "compiler", "cuda", "cudnn", "cpu", "model", "isa",
                          "onednn_isa", "gpu", "threads", "deterministic", "conv_chunk", "gemm_tile", "steps", "epochs",
                          "epoch_losses", "step_losses", "losses_sha256", "weights_sha256"})
    EXPECT_NE(json.find(str_cat("\"", key, "\": ")), std::string::npos) << key << " missing from\n" << json;
  auto is_hex64 = [](const std::string& s) {
    return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
  };
  EXPECT_TRUE(is_hex64(m.config_sha256));
  EXPECT_TRUE(is_hex64(m.weights_sha256));
  EXPECT_TRUE(is_hex64(m.losses_sha256));
  EXPECT_EQ(m.config, config_->canonical_text());
  EXPECT_EQ(m.config_sha256, experiments::sha256_hex(m.config));
  EXPECT_TRUE(m.git_commit == "unknown" || is_hex64(m.git_commit + std::string(24, '0')));
  ASSERT_FALSE(m.seeds.empty());
  EXPECT_EQ(m.seeds[0].first, "seed");
  EXPECT_EQ(m.seeds[0].second, config_->seed);
  EXPECT_EQ(m.onednn_version.rfind("2.", 0), 0u) << m.onednn_version;
  EXPECT_FALSE(m.hdf5_version.empty());
  EXPECT_FALSE(m.compiler.empty());
  EXPECT_FALSE(m.onednn_isa.empty());
#if defined(__x86_64__)
  EXPECT_FALSE(m.cpu_isa.empty());  // at least sse4_2 on any x86-64-v2 machine this builds for
#endif
  EXPECT_EQ(m.threads, 2);
  EXPECT_TRUE(m.deterministic);
  EXPECT_EQ(m.conv_chunk, kDefaultConvChunk);
  EXPECT_EQ(m.gemm_tile, kGemmTile);
  EXPECT_EQ(m.steps, 4);
  EXPECT_EQ(m.epochs, 2);
  ASSERT_EQ(m.step_losses.size(), 4u);
  ASSERT_EQ(m.epoch_losses.size(), 2u);
  EXPECT_DOUBLE_EQ(m.epoch_losses[1], m.step_losses[3]);  // epoch 1 holds only step 4
  EXPECT_EQ(m.losses_sha256, experiments::float64_sha256(m.epoch_losses));
  // The file on disk is the same JSON.
  experiments::write_manifest(tmp_path("a.json"), m);
  std::ifstream in(tmp_path("a.json"));
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), json);
}

TEST(Sha256, KnownVectorsAndTheWeightsHashDefinition) {
  EXPECT_EQ(experiments::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(experiments::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(experiments::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // float64 little-endian bytes: 1.0 is 00 00 00 00 00 00 f0 3f.
  EXPECT_EQ(experiments::float64_sha256({1.0}), experiments::sha256_hex(std::string("\0\0\0\0\0\0\xf0\x3f", 8)));
}

TEST(ReproConfigFile, CanonicalTextAndErrors) {
  const ReproConfig a = experiments::parse_repro_config("seed = 3\n# comment\nbatch=8  # trailing\n\n", "a");
  const ReproConfig b = experiments::parse_repro_config("batch = 8\nseed = 3\n", "b");
  EXPECT_EQ(a.canonical_text(), b.canonical_text());
  EXPECT_EQ(a.batch, 8);
  EXPECT_EQ(experiments::parse_repro_config(a.canonical_text(), "round trip").canonical_text(), a.canonical_text());
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("bacth = 8\n", "typo.cfg"), "typo.cfg:1: unknown key 'bacth'");
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("lr = fast\n", "x"), "'lr' must be a number");
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("seed = 1\nseed = 2\n", "x"), "already set on line 1");
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("optimizer = lbfgs\n", "x"), "sgd, adam, adamw");
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("image_size = 48\n", "x"), "multiple of 32");
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("batch = 1\n", "x"), "'batch' must be an integer >= 2");
  EXPECT_ERROR_CONTAINS(experiments::load_repro_config("no/such.cfg"), "cannot read");
}

TEST_F(Reproducibility, ResumeRefusesAnotherConfig) {
  ReproConfig other = *config_;
  other.lr = 0.01;
  ReproRun::check_checkpoint_config(tmp_path("b_half.h5"), *config_);  // the right one passes
  EXPECT_ERROR_CONTAINS(ReproRun::check_checkpoint_config(tmp_path("b_half.h5"), other), "another config");
  EXPECT_ERROR_CONTAINS(ReproRun::check_checkpoint_config(tmp_path("missing.h5"), other), "checkpoint not found");
}

}  // namespace
}  // namespace medtl
