// .npz: the real MedMNIST archives of ../shared/data (one with stored members, two with deflated
// ones), a write/read round trip in both modes, and damaged archives.
#include <gtest/gtest.h>

#include "data/npy.h"
#include "data/npz.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

TEST(Npz, RealDeflatedArchiveRetinaMnist) {
  // Official retinamnist.npz: deflated members (zip method 8).
  const std::string path = testing::shared_data("retinamnist/retinamnist.npz");
  EXPECT_EQ(data::list_npz(path), (std::vector<std::string>{"train_images", "val_images", "test_images",
                                                             "train_labels", "val_labels", "test_labels"}));
  const auto arrays = data::read_npz(path);
  EXPECT_EQ(arrays.at("train_images").shape(), (Shape{1080, 28, 28, 3}));
  EXPECT_EQ(arrays.at("val_images").shape(), (Shape{120, 28, 28, 3}));
  EXPECT_EQ(arrays.at("test_images").shape(), (Shape{400, 28, 28, 3}));
  EXPECT_EQ(arrays.at("train_images").dtype(), DType::UInt8);
  EXPECT_EQ(arrays.at("train_labels").shape(), (Shape{1080, 1}));
  // Class counts from SOURCE.md: train 486/128/206/194/66.
  std::vector<int> counts(5, 0);
  for (uint8_t v : arrays.at("train_labels").to_vector<uint8_t>()) ++counts.at(v);
  EXPECT_EQ(counts, (std::vector<int>{486, 128, 206, 194, 66}));
}

TEST(Npz, RealStoredAndDeflatedPneumoniaMnist) {
  // aksufatih copy: stored members (method 0); varun19424 copy: deflated.
  const auto stored = data::read_npz(testing::shared_data("pneumoniamnist/aksufatih-snn-medmnist/pneumoniamnist.npz"));
  EXPECT_EQ(stored.at("train_images").shape(), (Shape{2428, 28, 28}));
  EXPECT_EQ(stored.at("val_images").shape(), (Shape{270, 28, 28}));
  EXPECT_EQ(stored.at("test_images").shape(), (Shape{468, 28, 28}));
  const auto deflated = data::read_npz(testing::shared_data("pneumoniamnist/varun19424-pneumonia_mnist/pneumoniamnist.npz"));
  EXPECT_EQ(deflated.at("train_images").shape(), (Shape{3882, 28, 28}));
  EXPECT_EQ(deflated.at("test_labels").shape(), (Shape{624, 1}));
  // SOURCE.md: the two copies share their test normals: every image of the balanced copy's test
  // split is byte-identical to one of the full copy's. Check the first one.
  const Tensor a = stored.at("test_images").select(0, 0);
  const Tensor all = deflated.at("test_images");
  bool found = false;
  for (int64_t i = 0; i < all.size(0) && !found; ++i) found = testing::tensors_identical(all.select(0, i), a);
  EXPECT_TRUE(found);
}

TEST(Npz, RoundTripStoredAndDeflated) {
  const std::string dir = testing::scratch_dir("npz_roundtrip");
  std::map<std::string, Tensor> arrays;
  arrays["images"] = arange(0, 240, 1, DType::Float32).view({2, 3, 40}).to(DType::UInt8);
  arrays["labels"] = from_vector<int64_t>({3, -1}, {2, 1});
  arrays["x"] = arange(0, 1, 0.125, DType::Float64);
  for (bool compress : {false, true}) {
    const std::string path = dir + (compress ? "/c.npz" : "/s.npz");
    data::write_npz(path, arrays, compress);
    const auto back = data::read_npz(path);
    ASSERT_EQ(back.size(), arrays.size());
    for (const auto& [name, t] : arrays) EXPECT_TRUE(testing::tensors_identical(back.at(name), t)) << name;
    EXPECT_TRUE(testing::tensors_identical(data::read_npz_array(path, "x"), arrays["x"]));
  }
}

TEST(Npz, DamagedArchivesAreNamed) {
  const std::string dir = testing::scratch_dir("npz_damaged");
  std::map<std::string, Tensor> arrays{{"a", arange(0, 4096, 1, DType::Float32)}};
  data::write_npz(dir + "/ok.npz", arrays, true);
  const std::string bytes = testing::read_bytes(dir + "/ok.npz");

  EXPECT_ERROR_CONTAINS(data::read_npz(dir + "/absent.npz"), "absent.npz': no such file");
  EXPECT_ERROR_CONTAINS(data::read_npz_array(dir + "/ok.npz", "b"), "has no array 'b'; it has: a");
  testing::write_text(dir + "/short.npz", bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR_CONTAINS(data::read_npz(dir + "/short.npz"), "short.npz");
  testing::write_text(dir + "/text.npz", "not a zip file, not at all, but long enough to look");
  EXPECT_ERROR_CONTAINS(data::read_npz(dir + "/text.npz"), "no zip end-of-directory record");
  // Flip one byte inside the deflated data: inflate fails or the CRC does not match.
  std::string flipped = bytes;
  flipped[100] = static_cast<char>(flipped[100] ^ 0x55);
  testing::write_text(dir + "/flipped.npz", flipped);
  EXPECT_ERROR_CONTAINS(data::read_npz(dir + "/flipped.npz"), "member 'a.npy'");
}

}  // namespace
}  // namespace medtl
