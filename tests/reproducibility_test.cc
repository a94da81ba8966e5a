// Bit-reproducible training (docs/reproducibility.md), on a tiny ResNet-50 run
// (experiments/configs/verify_tiny.cfg: 32x32 synthetic images, Adam, cosine schedule, an input
// Dropout, 4 steps over epochs of 3):
//   - two processes: 2 steps in this process and in another (the verify_reproducible binary in
//     worker mode) give the same hashes and the same tensors, bit for bit;
//   - resume: that other process's checkpoint, loaded by a THIRD process that trains 2 more steps,
//     ends with every tensor -- parameters, buffers, optimizer state, losses -- and every
//     attribute identical to 4 uninterrupted steps in this process;
//   - thread counts: 2 full training steps (forward, backward, Adam) with 1 thread give the same
//     bits as with 2;
//   - the run manifest has every field, with sane values; the config format and its errors.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Two checkpoints hold the same state: the files are byte-identical (same content, no timestamps,
// no thread count). When they are not, every dataset and attribute is compared to say what differs.
void expect_identical_checkpoints(const std::string& a, const std::string& b) {
  const std::string bytes_a = file_bytes(a), bytes_b = file_bytes(b);
  ASSERT_GT(bytes_a.size(), 0u) << a;
  if (bytes_a == bytes_b) {
    std::printf("[ NOTE     ] %s and %s are byte-identical (%zu bytes)\n", std::filesystem::path(a).filename().c_str(),
                std::filesystem::path(b).filename().c_str(), bytes_a.size());
    return;
  }
  ADD_FAILURE() << a << " and " << b << " differ as files; comparing their contents";
  const auto ta = models::read_hdf5_tensors(a), tb = models::read_hdf5_tensors(b);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    ASSERT_EQ(ta[i].first, tb[i].first);
    EXPECT_TRUE(tensors_identical(ta[i].second, tb[i].second)) << ta[i].first;
  }
  const auto aa = models::read_hdf5_attributes(a), ab = models::read_hdf5_attributes(b);
  EXPECT_EQ(aa.strings, ab.strings);
  EXPECT_EQ(aa.ints, ab.ints);
  EXPECT_EQ(aa.uints, ab.uints);
  EXPECT_EQ(aa.doubles, ab.doubles);
}

// Every state_dict tensor, every optimizer state tensor and the losses of a run, copied.
struct Snapshot {
  nn::NamedTensors tensors;  // "model.<key>" and "optimizer.<key>", as in a checkpoint file
  std::vector<double> step_losses;
  static Snapshot of(ReproRun& run) {
    Snapshot s;
    for (const auto& [key, t] : run.model().state_dict()) s.tensors.emplace_back("model." + key, t.clone());
    for (auto& [key, t] : run.optimizer().export_state()) s.tensors.emplace_back("optimizer." + key, t);
    s.step_losses = run.step_losses();
    return s;
  }
};

// The model and optimizer tensors of a checkpoint file (or of another snapshot) against a snapshot.
void expect_tensors_match(const Snapshot& want, const nn::NamedTensors& got, const std::string& what) {
  std::map<std::string, Tensor> by_name(got.begin(), got.end());
  int64_t compared = 0, bytes = 0;
  for (const auto& [key, t] : want.tensors) {
    const auto it = by_name.find(key);
    ASSERT_NE(it, by_name.end()) << key << " missing: " << what;
    EXPECT_TRUE(tensors_identical(t, it->second)) << key << ": " << what;
    ++compared;
    bytes += t.numel() * dtype_size(t.dtype());
  }
  std::printf("[ NOTE     ] %s: %lld tensors (%lld bytes) bit-identical\n", what.c_str(),
              static_cast<long long>(compared), static_cast<long long>(bytes));
}

class Reproducibility : public ::testing::Test {
 protected:
  // Run A, in this process with 2 threads: 2 steps (snapshot, hashes), then steps 3 and 4
  // (checkpoint "a_end.h5", manifest). Run W1, in another process: 2 steps from scratch, saved to
  // "w1_half.h5" mid-epoch. A ResNet-50 costs seconds to build, so the tests share these.
  static void SetUpTestSuite() {
    set_num_threads(2);
    ASSERT_TRUE(deterministic());
    config_ = new ReproConfig(experiments::load_repro_config(kConfig));
    ASSERT_EQ(config_->steps, 4);
    ASSERT_EQ(config_->steps_per_epoch, 3);
    ASSERT_GT(config_->dropout, 0.0);
    ReproRun a(*config_);
    a.train_until(2);
    a_half_ = new Snapshot(Snapshot::of(a));
    const experiments::RunManifest half = a.manifest("reproducibility_test");
    a_half_hashes_ = new std::pair<std::string, std::string>(half.weights_sha256, half.losses_sha256);
    w1_ = new std::map<std::string, std::string>(run_worker("--threads=2 --until=2 --save=" + tmp_path("w1_half.h5")));
    a.train_all();
    a.save(tmp_path("a_end.h5"));
    manifest_a_ = new experiments::RunManifest(a.manifest("reproducibility_test"));
  }
  static void TearDownTestSuite() {
    delete config_;
    delete manifest_a_;
    delete a_half_;
    delete a_half_hashes_;
    delete w1_;
  }
  static ReproConfig* config_;
  static experiments::RunManifest* manifest_a_;
  static Snapshot* a_half_;
  static std::pair<std::string, std::string>* a_half_hashes_;
  static std::map<std::string, std::string>* w1_;
};
ReproConfig* Reproducibility::config_ = nullptr;
experiments::RunManifest* Reproducibility::manifest_a_ = nullptr;
Snapshot* Reproducibility::a_half_ = nullptr;
std::pair<std::string, std::string>* Reproducibility::a_half_hashes_ = nullptr;
std::map<std::string, std::string>* Reproducibility::w1_ = nullptr;

TEST_F(Reproducibility, TwoProcessesGiveIdenticalBits) {
  // The same config trained in this process (A) and in another (W1): same hashes, same tensors.
  EXPECT_EQ(w1_->at("weights_sha256"), a_half_hashes_->first);
  EXPECT_EQ(w1_->at("losses_sha256"), a_half_hashes_->second);
  expect_tensors_match(*a_half_, models::read_hdf5_tensors(tmp_path("w1_half.h5")), "this process vs another");
}

TEST_F(Reproducibility, ResumeInANewProcessEqualsTheUninterruptedRun) {
  const auto half = models::read_hdf5_attributes(tmp_path("w1_half.h5"));
  EXPECT_EQ(half.ints.at("global_step"), 2);
  EXPECT_EQ(half.ints.at("epoch"), 0);
  EXPECT_EQ(half.ints.at("step_in_epoch"), 2);  // mid-epoch: the loader resumes at batch 2
  // A third process loads W1's checkpoint and trains steps 3 and 4 (crossing an epoch end: the
  // scheduler steps, the visiting order changes), then saves: every dataset and attribute must
  // equal A's uninterrupted 4 steps.
  const auto out = run_worker("--threads=2 --resume=" + tmp_path("w1_half.h5") + " --save=" + tmp_path("resumed.h5"));
  expect_identical_checkpoints(tmp_path("a_end.h5"), tmp_path("resumed.h5"));
  EXPECT_EQ(out.at("weights_sha256"), manifest_a_->weights_sha256);
  EXPECT_EQ(out.at("losses_sha256"), manifest_a_->losses_sha256);
}

TEST_F(Reproducibility, OneThreadEqualsTwoThreadsForFullTrainingSteps) {
  // A took 2 steps (forward, BCE, backward, Adam) with 2 threads; the same with 1 thread.
  const int saved = get_num_threads();
  set_num_threads(1);
  ReproRun c(*config_);
  c.train_until(2);
  set_num_threads(saved);
  const Snapshot one = Snapshot::of(c);
  expect_tensors_match(*a_half_, one.tensors, "1 vs 2 threads");
  EXPECT_EQ(one.step_losses, a_half_->step_losses);
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
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("image_size = 16\n", "x"), "'image_size' must be an integer >= 32");
  EXPECT_ERROR_CONTAINS(experiments::parse_repro_config("batch = 1\n", "x"), "'batch' must be an integer >= 2");
  EXPECT_ERROR_CONTAINS(experiments::load_repro_config("no/such.cfg"), "cannot read");
}

TEST_F(Reproducibility, ResumeRefusesAnotherConfig) {
  ReproConfig other = *config_;
  other.lr = 0.01;
  ReproRun::check_checkpoint_config(tmp_path("w1_half.h5"), *config_);  // the right one passes
  EXPECT_ERROR_CONTAINS(ReproRun::check_checkpoint_config(tmp_path("w1_half.h5"), other), "another config");
  EXPECT_ERROR_CONTAINS(ReproRun::check_checkpoint_config(tmp_path("missing.h5"), other), "checkpoint not found");
}

}  // namespace
}  // namespace medtl
