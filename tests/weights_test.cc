// Weight files (models/weights.h): bit-exact round trips, attributes, strict and transfer
// loading with their reports, skip prefixes, and clear errors for missing, corrupt and foreign
// files. Uses a tiny test-only module so it does not depend on the real layers.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "models/weights.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using models::LoadMode;
using models::LoadReport;
using models::WeightFileInfo;
using testing::tensors_identical;

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

// A linear-like leaf: weight (out, in) and bias (out).
class Leaf : public nn::Module {
 public:
  Leaf(int64_t out, int64_t in, Generator& gen, DType dtype) {
    weight = register_parameter("weight", normal({out, in}, gen, 0.0, 1.0, dtype));
    bias = register_parameter("bias", normal({out}, gen, 0.0, 1.0, dtype));
  }
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Leaf"; }
  Tensor weight, bias;
};

// Keys: weight, running_mean, num_batches_tracked, [extra buffer], layer1.0.{weight,bias},
// layer1.1.{weight,bias}, fc.{weight,bias}.
class Tiny : public nn::Module {
 public:
  explicit Tiny(uint64_t seed, int64_t classes = 5, const std::string& extra = "", DType dtype = DType::Float32) {
    Generator gen(seed);
    weight = register_parameter("weight", normal({4, 3, 3, 3}, gen, 0.0, 1.0, dtype));
    running_mean = register_buffer("running_mean", normal({4}, gen, 0.0, 1.0, dtype));
    num_batches_tracked = register_buffer("num_batches_tracked", full({}, static_cast<double>(seed), DType::Int64));
    if (!extra.empty()) register_buffer(extra, normal({2}, gen, 0.0, 1.0, dtype));
    auto layer1 = std::make_shared<nn::Sequential>();
    layer1->push_back(std::make_shared<Leaf>(4, 4, gen, dtype));
    layer1->push_back(std::make_shared<Leaf>(4, 4, gen, dtype));
    register_module("layer1", layer1);
    fc = register_module("fc", std::make_shared<Leaf>(classes, 4, gen, dtype));
  }
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Tiny"; }
  Tensor weight, running_mean, num_batches_tracked;
  std::shared_ptr<Leaf> fc;
};

WeightFileInfo test_info() {
  WeightFileInfo info;
  info.architecture = "tiny";
  info.variant = "keras";
  info.num_classes = 5;
  info.channel_order = "BGR";
  info.mean = {103.939, 116.779, 123.68};
  info.std = {1.0, 1.0, 1.0};
  info.value_scale = 255.0;
  info.bn_eps = 1e-3;
  info.source = "unit test: random values, \"quoted\" and ünïcode";
  info.class_names_file = "tiny.h5.labels.json";
  return info;
}

Tensor find(const nn::NamedTensors& tensors, const std::string& key) {
  for (const auto& [name, t] : tensors)
    if (name == key) return t;
  ADD_FAILURE() << "no tensor named " << key;
  return Tensor();
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(Weights, DatasetPathForKey) {
  EXPECT_EQ(models::dataset_path_for_key("layer1.0.conv1.weight"), "/layer1/0/conv1/weight");
  EXPECT_EQ(models::dataset_path_for_key("fc.bias"), "/fc/bias");
  EXPECT_ERROR_CONTAINS(models::dataset_path_for_key("a..b"), "cannot name an HDF5 dataset");
}

TEST(Weights, RoundTripIsBitExactAndKeepsOrder) {
  const std::string path = temp_path("roundtrip.h5");
  Tiny source(1);
  models::save_weights(path, source, test_info());

  const nn::NamedTensors read = models::read_weight_tensors(path);
  const nn::NamedTensors expected = source.state_dict();
  ASSERT_EQ(read.size(), expected.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].first, expected[i].first) << "file order should be state_dict order";
    EXPECT_TRUE(tensors_identical(read[i].second, expected[i].second)) << read[i].first;
  }
  EXPECT_EQ(find(read, "num_batches_tracked").dtype(), DType::Int64);
  EXPECT_EQ(find(read, "num_batches_tracked").dim(), 0);
  EXPECT_EQ(find(read, "num_batches_tracked").item(), 1.0);

  Tiny target(2);
  const LoadReport report = models::load_weights(path, target, LoadMode::Strict);
  EXPECT_EQ(report.loaded.size(), expected.size());
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.shape_mismatched.empty());
  const nn::NamedTensors loaded = target.state_dict();
  for (size_t i = 0; i < loaded.size(); ++i)
    EXPECT_TRUE(tensors_identical(loaded[i].second, expected[i].second)) << loaded[i].first;
  // Loading copies into the module's own tensors (the members the forward uses).
  EXPECT_TRUE(tensors_identical(target.weight, source.weight));
  EXPECT_TRUE(tensors_identical(target.fc->bias, source.fc->bias));
}

TEST(Weights, AttributesRoundTrip) {
  const std::string path = temp_path("attributes.h5");
  Tiny source(3);
  const WeightFileInfo info = test_info();
  models::save_weights(path, source, info);
  const WeightFileInfo back = models::read_weight_info(path);
  EXPECT_EQ(back.architecture, info.architecture);
  EXPECT_EQ(back.variant, info.variant);
  EXPECT_EQ(back.num_classes, info.num_classes);
  EXPECT_EQ(back.channel_order, info.channel_order);
  EXPECT_EQ(back.mean, info.mean);
  EXPECT_EQ(back.std, info.std);
  EXPECT_EQ(back.value_scale, info.value_scale);
  EXPECT_EQ(back.bn_eps, info.bn_eps);
  EXPECT_EQ(back.source, info.source);
  EXPECT_EQ(back.class_names_file, info.class_names_file);

  const std::string path2 = temp_path("attributes_tv.h5");
  models::save_weights(path2, source, WeightFileInfo::torchvision("resnet50", 0, "torchvision resnet50-19c8e357"));
  const WeightFileInfo tv = models::read_weight_info(path2);
  EXPECT_EQ(tv.variant, "torchvision");
  EXPECT_EQ(tv.channel_order, "RGB");
  EXPECT_EQ(tv.mean[2], 0.406);
  EXPECT_EQ(tv.std[0], 0.229);
  EXPECT_EQ(tv.value_scale, 1.0);
  EXPECT_EQ(tv.bn_eps, 1e-5);
  EXPECT_EQ(tv.class_names_file, "");
}

TEST(Weights, InvalidInfoIsRejected) {
  Tiny source(3);
  WeightFileInfo info = test_info();
  info.channel_order = "rgb";
  EXPECT_ERROR_CONTAINS(models::save_weights(temp_path("bad_info.h5"), source, info), "channel_order");
  EXPECT_FALSE(file_exists(temp_path("bad_info.h5")));
}

TEST(Weights, StrictErrorListsEveryProblem) {
  const std::string path = temp_path("strict.h5");
  Tiny source(4, /*classes=*/5, /*extra=*/"extra_in_file");
  models::save_weights(path, source, test_info());

  Tiny target(5, /*classes=*/3, /*extra=*/"extra_in_model");
  const Tensor before = target.weight.clone();
  try {
    models::load_weights(path, target, LoadMode::Strict);
    FAIL() << "strict load should fail";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 missing, 1 unexpected, 2 shape-mismatched"), std::string::npos) << msg;
    EXPECT_NE(msg.find("extra_in_model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("extra_in_file"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fc.weight: file (5, 4) vs module (3, 4)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fc.bias: file (5,) vs module (3,)"), std::string::npos) << msg;
  }
  // Nothing was loaded: a failed strict load leaves the module as it was.
  EXPECT_TRUE(tensors_identical(target.weight, before));
}

TEST(Weights, TransferLoadsMatchesAndReportsTheRest) {
  const std::string path = temp_path("transfer.h5");
  Tiny source(6, 5, "extra_in_file");
  models::save_weights(path, source, test_info());

  Tiny target(7, 3, "extra_in_model");
  const Tensor fc_before = target.fc->weight.clone();
  const LoadReport report = models::load_weights(path, target, LoadMode::Transfer);
  EXPECT_EQ(report.loaded.size(), 7u);  // weight, running_mean, num_batches_tracked, layer1 x4
  EXPECT_EQ(report.missing, std::vector<std::string>{"extra_in_model"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"extra_in_file"});
  ASSERT_EQ(report.shape_mismatched.size(), 2u);
  EXPECT_EQ(report.shape_mismatched[0], "fc.weight: file (5, 4) vs module (3, 4)");
  EXPECT_TRUE(report.skipped.empty());
  EXPECT_TRUE(tensors_identical(target.weight, source.weight));
  EXPECT_TRUE(tensors_identical(find(target.state_dict(), "layer1.1.bias"), find(source.state_dict(), "layer1.1.bias")));
  EXPECT_TRUE(tensors_identical(target.fc->weight, fc_before));  // head left for the caller
  const std::string summary = report.summary();
  EXPECT_NE(summary.find("loaded 7 tensors"), std::string::npos) << summary;
  EXPECT_NE(summary.find("extra_in_model"), std::string::npos) << summary;
  EXPECT_NE(summary.find("fc.weight: file (5, 4) vs module (3, 4)"), std::string::npos) << summary;
}

TEST(Weights, TransferWithNothingInCommonIsAnError) {
  const std::string path = temp_path("nothing_in_common.h5");
  Tiny source(8);
  models::save_weights(path, source, test_info());
  Generator gen(1);
  Leaf other(2, 2, gen, DType::Float32);
  EXPECT_ERROR_CONTAINS(models::load_weights(path, other, LoadMode::Transfer), "no tensor of");
}

TEST(Weights, SkipPrefixesLeaveTensorsOutOfStrictChecks) {
  const std::string path = temp_path("skip.h5");
  Tiny source(9, 5, "extra_in_file");
  models::save_weights(path, source, test_info());

  Tiny target(10, 3, "extra_in_model");
  const Tensor fc_before = target.fc->weight.clone();
  const LoadReport report =
      models::load_weights(path, target, LoadMode::Strict, {"fc.", "extra_in_model", "extra_in_file"});
  EXPECT_EQ(report.loaded.size(), 7u);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.shape_mismatched.empty());
  EXPECT_TRUE(contains(report.skipped, "fc.weight"));
  EXPECT_TRUE(contains(report.skipped, "fc.bias"));
  EXPECT_TRUE(contains(report.skipped, "extra_in_model"));
  EXPECT_TRUE(contains(report.skipped, "extra_in_file"));
  EXPECT_TRUE(tensors_identical(target.fc->weight, fc_before));
  EXPECT_TRUE(tensors_identical(target.running_mean, source.running_mean));
}

TEST(Weights, Float64ModuleLoadsAndSavesAsFloat32) {
  const std::string path = temp_path("float64.h5");
  Tiny source(11);
  models::save_weights(path, source, test_info());
  Tiny target(12, 5, "", DType::Float64);
  models::load_weights(path, target, LoadMode::Strict);
  EXPECT_EQ(target.weight.dtype(), DType::Float64);
  EXPECT_TRUE(tensors_identical(target.weight, source.weight.to(DType::Float64)));
  EXPECT_EQ(target.num_batches_tracked.item(), 11.0);

  // A float64 model is written as float32 datasets (the format stores float32).
  const std::string path64 = temp_path("from_float64.h5");
  models::save_weights(path64, target, test_info());
  const Tensor w = find(models::read_weight_tensors(path64), "weight");
  EXPECT_EQ(w.dtype(), DType::Float32);
  EXPECT_TRUE(tensors_identical(w, source.weight));
}

TEST(Weights, MissingFileNamesPathAndFetchScript) {
  const std::string path = temp_path("does_not_exist.h5");
  Tiny target(13);
  EXPECT_ERROR_CONTAINS(models::load_weights(path, target, LoadMode::Strict), "weight file not found: '" + path);
  EXPECT_ERROR_CONTAINS(models::read_weight_info(path), "tools/fetch_weights.sh");
  EXPECT_ERROR_CONTAINS(models::read_weight_tensors(path), "not found");
}

TEST(Weights, GarbageFileIsNotHdf5) {
  const std::string path = temp_path("garbage.h5");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 131 + 7) & 0xff));
  }
  Tiny target(14);
  EXPECT_ERROR_CONTAINS(models::load_weights(path, target, LoadMode::Strict), "is not an HDF5 file");
  EXPECT_ERROR_CONTAINS(models::read_weight_info(path), path);
}

TEST(Weights, TruncatedFileFailsWithHdf5CallAndHint) {
  const std::string path = temp_path("truncated.h5");
  Tiny source(15);
  models::save_weights(path, source, test_info());
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  Tiny target(16);
  try {
    models::load_weights(path, target, LoadMode::Strict);
    FAIL() << "a truncated file should not load";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("HDF5 call H5Fopen"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weights.cc:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Re-run the converter"), std::string::npos) << msg;
  }
}

// An HDF5 file written directly (no creation-order tracking), with `format` set to `format`
// (nullptr: no attribute) and, if `version` > 0, format_version; datasets /weight and /b/x.
void write_foreign_file(const std::string& path, const char* format, int64_t version = 0) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hsize_t n = 4;
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t dset = H5Dcreate2(file, "/weight", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const float data[4] = {1, 2, 3, 4};
  ASSERT_GE(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  H5Dclose(dset);
  const hid_t group = H5Gcreate2(file, "/b", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t dset2 = H5Dcreate2(file, "/b/x", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const double data2[4] = {0.5, 1.5, 2.5, 3.5};
  ASSERT_GE(H5Dwrite(dset2, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data2), 0);
  H5Dclose(dset2);
  H5Gclose(group);
  H5Sclose(space);
  if (version > 0) {
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(file, "format_version", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(H5Awrite(attr, H5T_NATIVE_INT64, &version), 0);
    H5Aclose(attr);
    H5Sclose(scalar);
  }
  if (format != nullptr) {
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(file, "format", type, scalar, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(H5Awrite(attr, type, &format), 0);
    H5Aclose(attr);
    H5Sclose(scalar);
    H5Tclose(type);
  }
  ASSERT_GE(H5Fclose(file), 0);
}

TEST(Weights, WrongOrMissingFormatAttributeIsRejected) {
  Tiny target(17);
  const std::string wrong = temp_path("wrong_format.h5");
  write_foreign_file(wrong, "keras-h5");
  EXPECT_ERROR_CONTAINS(models::load_weights(wrong, target, LoadMode::Transfer),
                        "has format \"keras-h5\", expected \"medtl-weights\"");
  const std::string none = temp_path("no_format.h5");
  write_foreign_file(none, nullptr);
  EXPECT_ERROR_CONTAINS(models::read_weight_info(none), "not a medtl weight file");
}

TEST(Weights, ReadsFilesWithoutCreationOrderInNameOrder) {
  const std::string path = temp_path("untracked.h5");
  write_foreign_file(path, "medtl-weights", 1);
  const nn::NamedTensors tensors = models::read_weight_tensors(path);
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].first, "b.x");
  EXPECT_EQ(tensors[0].second.dtype(), DType::Float64);
  EXPECT_EQ(tensors[0].second.to_vector<double>(), (std::vector<double>{0.5, 1.5, 2.5, 3.5}));
  EXPECT_EQ(tensors[1].first, "weight");
  EXPECT_EQ(tensors[1].second.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  // Attributes the file lacks are named in the error.
  EXPECT_ERROR_CONTAINS(models::read_weight_info(path), "lacks the root attribute 'architecture'");
  // A newer format version is refused.
  write_foreign_file(path, "medtl-weights", 2);
  EXPECT_ERROR_CONTAINS(models::read_weight_tensors(path), "format_version 2");
}

TEST(Weights, AtomicWriteLeavesNoTmpAndReplacesOldFile) {
  const std::string path = temp_path("atomic.h5");
  {
    std::ofstream stale(path + ".tmp");
    stale << "left over from a crashed run";
  }
  Tiny first(18), second(19);
  models::save_weights(path, first, test_info());
  EXPECT_TRUE(file_exists(path));
  EXPECT_FALSE(file_exists(path + ".tmp"));
  models::save_weights(path, second, test_info());  // overwrite
  EXPECT_FALSE(file_exists(path + ".tmp"));
  EXPECT_TRUE(tensors_identical(find(models::read_weight_tensors(path), "weight"), second.weight));

  const std::string bad = temp_path("no_such_dir/x.h5");
  EXPECT_ERROR_CONTAINS(models::save_weights(bad, first, test_info()), "does not exist");
  EXPECT_FALSE(file_exists(bad + ".tmp"));
}

TEST(Weights, CacheDirFollowsEnvironment) {
  setenv("MEDTL_CACHE", "/some/cache", 1);
  EXPECT_EQ(models::weights_cache_dir(), "/some/cache");
  unsetenv("MEDTL_CACHE");
  setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(models::weights_cache_dir(), "/home/someone/.cache/medtl");
}


// ---- Cross-tool checks driven by tests/converters_test.sh (skipped when run on their own). ----

// Writes a sample file for h5py to read, plus `<file>.expected.txt`: one line per tensor,
// "key dtype ndim dims... values..." with values printed exactly (%.9g round-trips float32).
TEST(Weights, WritesSampleForOtherTools) {
  const char* out = std::getenv("MEDTL_WEIGHTS_SAMPLE_OUT");
  if (out == nullptr) GTEST_SKIP() << "set MEDTL_WEIGHTS_SAMPLE_OUT (tests/converters_test.sh does)";
  Tiny source(42);
  models::save_weights(out, source, test_info());
  std::FILE* f = std::fopen((std::string(out) + ".expected.txt").c_str(), "w");
  ASSERT_NE(f, nullptr);
  for (const auto& [key, t] : source.state_dict()) {
    std::fprintf(f, "%s %s %d", key.c_str(), dtype_name(t.dtype()), static_cast<int>(t.dim()));
    for (int64_t d : t.shape()) std::fprintf(f, " %lld", static_cast<long long>(d));
    for (double v : t.to_vector<double>()) std::fprintf(f, " %.9g", v);
    std::fprintf(f, "\n");
  }
  std::fclose(f);
}

// Reads a file another tool wrote and reports what C++ sees: the attributes, then per tensor
// "key dtype ndim dims... sum" (sum in double, row-major), for the script to compare with h5py.
TEST(Weights, ReadsFileFromOtherTools) {
  const char* in = std::getenv("MEDTL_WEIGHTS_SAMPLE_IN");
  const char* report = std::getenv("MEDTL_WEIGHTS_SAMPLE_REPORT");
  if (in == nullptr || report == nullptr)
    GTEST_SKIP() << "set MEDTL_WEIGHTS_SAMPLE_IN and MEDTL_WEIGHTS_SAMPLE_REPORT (tests/converters_test.sh does)";
  const WeightFileInfo info = models::read_weight_info(in);
  const nn::NamedTensors tensors = models::read_weight_tensors(in);
  std::FILE* f = std::fopen(report, "w");
  ASSERT_NE(f, nullptr);
  std::fprintf(f, "architecture %s\nvariant %s\nnum_classes %lld\nchannel_order %s\n", info.architecture.c_str(),
               info.variant.c_str(), static_cast<long long>(info.num_classes), info.channel_order.c_str());
  std::fprintf(f, "mean %.17g %.17g %.17g\nstd %.17g %.17g %.17g\nvalue_scale %.17g\nbn_eps %.17g\n", info.mean[0],
               info.mean[1], info.mean[2], info.std[0], info.std[1], info.std[2], info.value_scale, info.bn_eps);
  std::fprintf(f, "class_names_file %s\nsource %s\n", info.class_names_file.c_str(), info.source.c_str());
  for (const auto& [key, t] : tensors) {
    std::fprintf(f, "tensor %s %s %d", key.c_str(), dtype_name(t.dtype()), static_cast<int>(t.dim()));
    for (int64_t d : t.shape()) std::fprintf(f, " %lld", static_cast<long long>(d));
    double sum = 0.0;
    for (double v : t.to_vector<double>()) sum += v;
    std::fprintf(f, " %.17g\n", sum);
  }
  std::fclose(f);
}

}  // namespace
}  // namespace medtl
