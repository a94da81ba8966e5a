// Tests of the speed benchmark's command line (experiments/speed.cc): its JSON line, its FLOP count
// against the published ResNet-50 figure, and its errors. Never its timings (those are measured by
// tools/compare_speed.sh, not asserted).
#include <gtest/gtest.h>

#include <string>

#include "tests/test_util.h"

namespace medtl {
namespace {

using Result = testing::CommandResult;

Result run_speed(const std::string& args) { return testing::run_command("experiments/speed " + args); }

std::string last_line(const std::string& s) {
  const size_t end = s.find_last_not_of('\n');
  const size_t begin = s.rfind('\n', end);
  return s.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1) + 1);
}

// The number after "key": in a flat JSON object.
double json_number(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":");
  EXPECT_NE(at, std::string::npos) << key << " missing from " << json;
  return at == std::string::npos ? -1 : std::stod(json.substr(at + key.size() + 3));
}

constexpr const char* kQuick = " --batch=1 --size=224 --iters=1 --warmup=0 --threads=2 --peak_gflops=100 --json";

TEST(SpeedCli, ResNet50FlopsMatchThePublishedCountAndTrainingIsThreePasses) {
  const Result infer = run_speed(std::string("--model=resnet50 --mode=infer") + kQuick);
  ASSERT_EQ(infer.status, 0) << infer.output;
  const std::string j = last_line(infer.output);
  ASSERT_EQ(j.front(), '{') << infer.output;
  EXPECT_GT(json_number(j, "img_per_s"), 0.0);
  EXPECT_GT(json_number(j, "peak_memory_mib"), 50.0);
  EXPECT_EQ(json_number(j, "peak_gflops"), 100.0);
  // ResNet-50 at 224 x 224: 4.09 G multiply-adds in its convolutions and fc (He et al. quote
  // 3.8 G for v1; torchvision's v1.5 moves the stride to the 3x3 conv, which costs more).
  const double infer_gflop = json_number(j, "gflop_per_step");
  EXPECT_NEAR(infer_gflop, 8.18, 0.05) << j;

  const Result train = run_speed(std::string("--model=resnet50 --mode=train") + kQuick);
  ASSERT_EQ(train.status, 0) << train.output;
  // Forward, backward-data and backward-weights of every layer, except conv1's backward-data (its
  // input, the image, needs no gradient): 2 * 112 * 112 * 64 * (3 * 7 * 7) FLOPs.
  const double conv1 = 2.0 * 112 * 112 * 64 * 3 * 7 * 7 / 1e9;
  EXPECT_NEAR(json_number(last_line(train.output), "gflop_per_step"), 3 * infer_gflop - conv1, 2e-3);
}

TEST(SpeedCli, UNetRunsAndReportsJson) {
  const Result r = run_speed("--model=unet --mode=train --batch=1 --size=64 --iters=1 --warmup=0 --threads=2 "
                             "--peak_gflops=100 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_GT(json_number(last_line(r.output), "img_per_s"), 0.0);
  EXPECT_NE(r.output.find("medtl unet train on cpu, batch 1, 3x64x64"), std::string::npos) << r.output;
}

TEST(SpeedCli, BadFlagsAreClearErrors) {
  const Result cuda = run_speed("--device=cuda");
  EXPECT_EQ(cuda.status, 1);
  // This binary has no CUDA backend (default build) or no GPU to use (a --config=cuda build here).
  EXPECT_NE(cuda.output.find("--device=cuda:0: "), std::string::npos) << cuda.output;
  EXPECT_TRUE(cuda.output.find("built without the CUDA backend") != std::string::npos ||
              cuda.output.find("no CUDA GPU can be used here") != std::string::npos)
      << cuda.output;
  const Result model = run_speed("--model=vgg16");
  EXPECT_EQ(model.status, 1);
  EXPECT_NE(model.output.find("--model=vgg16: use resnet50 or unet"), std::string::npos) << model.output;
  const Result size = run_speed("--model=unet --size=100");
  EXPECT_EQ(size.status, 1);
  EXPECT_NE(size.output.find("multiple of 32"), std::string::npos) << size.output;
}

}  // namespace
}  // namespace medtl
