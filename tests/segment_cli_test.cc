// The segment command end to end: masks and logits for an image and an .npy batch, and a clear
// error (exit status 1 with a message, never a crash) for each kind of bad input.
#include <gtest/gtest.h>

#include <stb/stb_image_write.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/image.h"
#include "data/npy.h"
#include "models/unet.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

using Result = testing::CommandResult;

Result run_segment(const std::string& args) { return testing::run_command("experiments/segment " + args); }

void expect_error(const std::string& args, const std::string& fragment) {
  SCOPED_TRACE(args);
  const Result r = run_segment(args);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("segment: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(fragment), std::string::npos) << r.output;
}

void write_gray_png(const std::string& path, int w, int h) {
  std::vector<unsigned char> pixels(static_cast<size_t>(w * h));
  for (int i = 0; i < w * h; ++i) pixels[static_cast<size_t>(i)] = static_cast<unsigned char>((i * 37) % 256);
  ASSERT_NE(stbi_write_png(path.c_str(), w, h, 1, pixels.data(), w), 0);
}

// One random U-Net file for the whole suite (building and writing it takes seconds).
class SegmentCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Generator gen(5);
    models::UNetResNet50 unet(models::ResNetVariant::Torchvision, 1, gen);
    models::save_weights(unet_file(), unet,
                         models::unet_weight_info(models::WeightFileInfo::torchvision("resnet50", 0, "random"), 1,
                                                  "segment_cli_test"));
  }
  static std::string unet_file() { return temp_path("unet.h5"); }
};

TEST_F(SegmentCli, WritesMasksAndLogitsForImagesAndNpy) {
  // One run (each loads the 130 MB model): a 50x40 image resized by --size=64, and an .npy batch.
  const std::string image = temp_path("slice.png"), npy = temp_path("batch.npy"), out = temp_path("masks/sub");
  write_gray_png(image, 50, 40);
  Generator gen(1);
  data::write_npy(npy, uniform({2, 3, 64, 64}, gen, -1.0, 1.0));
  const std::string logits_path = temp_path("logits.npy");
  const Result r = run_segment("--weights=" + unet_file() + " --threads=2 --size=64 --out=" + out +
                               " --save_logits=" + logits_path + " " + image + " " + npy);
  ASSERT_EQ(r.status, 0) << r.output;
  const Tensor logits = data::read_npy(logits_path);
  ASSERT_EQ(logits.shape(), (Shape{3, 1, 64, 64}));
  for (double v : logits.to_vector<double>()) ASSERT_TRUE(std::isfinite(v));
  const char* names[] = {"slice_mask.png", "batch_0_mask.png", "batch_1_mask.png"};
  for (int64_t n = 0; n < 3; ++n) {
    SCOPED_TRACE(names[n]);
    const data::DecodedImage mask = data::decode_image(out + "/" + names[n], data::ChannelPolicy::Keep);
    ASSERT_EQ(mask.pixels.shape(), (Shape{1, 64, 64}));
    // The mask is the thresholded logits: sigmoid(x) > 0.5 exactly where x > 0.
    const auto m = mask.pixels.to_vector<double>();
    const auto l = logits.select(0, n).to_vector<double>();
    for (size_t i = 0; i < m.size(); ++i) ASSERT_EQ(m[i], l[i] > 0.0 ? 255.0 : 0.0) << i;
  }
}

TEST_F(SegmentCli, BadInputsAreClearErrors) {
  const std::string image = temp_path("ok.png");
  write_gray_png(image, 32, 32);
  const std::string w = "--weights=" + unet_file() + " ";
  // Before the model is loaded.
  expect_error(image, "--weights=FILE is required");
  expect_error(w, "no INPUT given");
  expect_error(w + "--colour=red " + image, "unknown flag --colour");
  expect_error(w + "--size=100 " + image, "multiple of 32");
  expect_error(w + "--device=tpu " + image, "use cpu, cuda or cuda:N");
  // No GPU here: the default build has no CUDA backend, a --config=cuda build finds no GPU.
  expect_error(w + "--device=cuda " + image, "--device=cuda:0: ");
  expect_error(w + temp_path("missing.png"), "does not exist");
  expect_error("--weights=" + temp_path("missing.h5") + " " + image, "missing.h5");
  nn::Sequential nothing;
  const std::string resnet = temp_path("resnet.h5");
  models::save_weights(resnet, nothing, models::WeightFileInfo::torchvision("resnet50", 1000, "test"));
  expect_error("--weights=" + resnet + " " + image, "fine-tune a U-Net from it first");
  // After it: inputs the network cannot take.
  const std::string odd = temp_path("odd2.png"), bad_npy = temp_path("gray.npy"), garbage = temp_path("garbage.png");
  write_gray_png(odd, 50, 40);
  data::write_npy(bad_npy, zeros({2, 1, 32, 32}));
  std::ofstream(garbage) << "not a png";
  expect_error(w + odd, "pass --size=S");
  expect_error(w + bad_npy, "expected a float32 array (N, 3, H, W)");
  expect_error(w + garbage, "garbage.png");
}

}  // namespace
}  // namespace medtl
