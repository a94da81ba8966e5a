// End-to-end test of `benchmark` as a user runs it (fork/exec of the binary on the smoke preset,
// real data from ../shared/data, the real ImageNet weights):
//  1. a reference: the grid in two shards (--shard=0/2, 1/2) combined by --merge;
//  2. the same grid killed with SIGKILL in the middle of a run (after a checkpoint was written),
//     then rerun: the runs stored before the kill are untouched, the interrupted run resumes, and
//     every score equals the reference's bit for bit (so sharding, merging and resuming change
//     nothing);
//  3. a NaN injected into one target's runs: those runs are stored as failures, the others are
//     reused, the grid completes with exit status 0.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "experiments/report.h"
#include "models/weights.h"
#include "tests/data_test_util.h"

namespace medtl {
namespace {

namespace fs = std::filesystem;
namespace rp = experiments::report;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class BenchmarkKill : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_ = models::weights_cache_dir() + "/resnet50_keras_imagenet.h5";
    if (!fs::exists(weights_)) GTEST_SKIP() << "no ImageNet weights at " << weights_ << " (tools/fetch_weights.sh)";
    data_ = testing::shared_data_dir();
    root_ = ::testing::TempDir() + "/benchmark_kill";
    fs::remove_all(root_);
    fs::create_directories(root_);
  }

  // argv for the benchmark with the smoke preset, writing to `out` (stages shared in root/pretrained).
  std::vector<std::string> args(const std::string& out, const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {"experiments/benchmark", "--preset=smoke", "--runs=1", "--threads=2",
                                  "--data-root=" + data_, "--out=" + out, "--pretrained-dir=" + root_ + "/pretrained",
                                  "--set=experiment.checkpoint_seconds=0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // Starts the benchmark with stderr (and stdout) to `log`; returns its pid.
  pid_t spawn(const std::vector<std::string>& a, const std::string& log) const {
    const pid_t pid = fork();
    if (pid == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      if (f == nullptr || dup2(fileno(stderr), STDOUT_FILENO) < 0) _exit(126);
      std::vector<char*> argv;
      for (const auto& s : a) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    return pid;
  }

  // Runs to completion; returns the exit status (and fails with the log when it is not 0).
  int run(const std::vector<std::string>& a, const std::string& log) const {
    int status = 0;
    waitpid(spawn(a, log), &status, 0);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    EXPECT_EQ(code, 0) << read_file(log);
    return code;
  }

  // The stored run files of a results folder: name -> content.
  static std::map<std::string, std::string> stored_runs(const std::string& out) {
    std::map<std::string, std::string> files;
    if (!fs::exists(out + "/runs")) return files;
    for (const auto& e : fs::directory_iterator(out + "/runs"))
      if (e.path().extension() == ".csv") files[e.path().filename().string()] = read_file(e.path().string());
    return files;
  }

  static bool has_checkpoint(const std::string& out) {
    std::error_code ec;
    if (!fs::exists(out + "/work", ec)) return false;
    for (const auto& e : fs::recursive_directory_iterator(out + "/work", ec))
      if (e.path().filename() == "checkpoint.h5") return true;
    return false;
  }

  static std::string scores(const std::string& out) {
    return rp::scores_canonical_text(rp::summarize(rp::parse_results_csv(read_file(out + "/results.csv"))).records);
  }

  std::string weights_, data_, root_;
};

TEST_F(BenchmarkKill, KilledGridResumesToTheSameScoresAndFailuresAreRecorded) {
  // 1. Reference: two shards, merged.
  const std::string a = root_ + "/shard0", b = root_ + "/shard1", merged = root_ + "/merged";
  ASSERT_EQ(run(args(a, {"--shard=0/2"}), root_ + "/shard0.log"), 0);
  ASSERT_EQ(run(args(b, {"--shard=1/2"}), root_ + "/shard1.log"), 0);
  EXPECT_EQ(stored_runs(a).size() + stored_runs(b).size(), 8u);
  ASSERT_EQ(run({"experiments/benchmark", "--preset=smoke", "--runs=1", "--weights-dir=" + fs::path(weights_).parent_path().string(),
                 "--data-root=" + data_, "--merge", "--out=" + merged, a, b},
                root_ + "/merge.log"),
            0);
  const std::string reference = scores(merged);
  EXPECT_NE(read_file(root_ + "/merge.log").find("scores SHA-256"), std::string::npos);

  // 2. Kill in the middle of a run, once two runs are stored and the running one has a checkpoint.
  const std::string k = root_ + "/killed";
  const pid_t pid = spawn(args(k, {}), root_ + "/killed.log");
  bool killed = false;
  for (int i = 0; i < 60 * 60 * 20 && !killed; ++i) {
    if (stored_runs(k).size() >= 2 && has_checkpoint(k)) {
      kill(pid, SIGKILL);
      killed = true;
    } else if (waitpid(pid, nullptr, WNOHANG) == pid) {
      break;  // finished before it could be killed mid-run
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(killed) << "the benchmark ended before a mid-run kill:\n" << read_file(root_ + "/killed.log");
  waitpid(pid, nullptr, 0);
  const auto before = stored_runs(k);
  ASSERT_GE(before.size(), 2u);
  ASSERT_LT(before.size(), 8u);
  ASSERT_EQ(run(args(k, {}), root_ + "/rerun.log"), 0);
  const std::string rerun_log = read_file(root_ + "/rerun.log");
  EXPECT_NE(rerun_log.find("resumed at epoch"), std::string::npos) << rerun_log;
  EXPECT_NE(rerun_log.find(std::to_string(before.size()) + " already stored"), std::string::npos) << rerun_log;
  const auto after = stored_runs(k);
  EXPECT_EQ(after.size(), 8u);
  for (const auto& [name, content] : before) EXPECT_EQ(after.at(name), content) << name << " changed on rerun";
  EXPECT_EQ(scores(k), reference) << "a killed and resumed grid must give the reference's scores bit for bit";
  EXPECT_FALSE(fs::exists(k + "/work/" + fs::path(before.begin()->first).stem().string())) << "finished runs leave no work folder";

  // 3. A NaN in every NIH-CXR run: recorded failures, the other target's runs reused, exit 0.
  ASSERT_EQ(run(args(k, {"--set=target NIH-CXR.debug_nan_at_step=1"}), root_ + "/nan.log"), 0);
  const std::string nan_log = read_file(root_ + "/nan.log");
  EXPECT_NE(nan_log.find("FAILED (recorded, the grid goes on)"), std::string::npos) << nan_log;
  EXPECT_NE(nan_log.find("4 already stored"), std::string::npos) << nan_log;
  const auto records = rp::parse_results_csv(read_file(k + "/results.csv"));
  int failed = 0, ok = 0;
  for (const auto& r : records) {
    if (r.target == "NIH-CXR") {
      EXPECT_NE(r.failure.find("non-finite"), std::string::npos) << r.failure;
      ++failed;
    } else {
      EXPECT_TRUE(r.failure.empty()) << r.failure;
      ++ok;
    }
  }
  EXPECT_EQ(failed, 4);
  EXPECT_EQ(ok, 8);  // ISBI-EM: 4 runs x (dice_global, dice_mean)
}

}  // namespace
}  // namespace medtl
