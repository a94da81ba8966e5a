// The datasets on the real files of ../shared/data (located by tests/data_test_util.h): NIH1000
// (folder per class, its splits' patient overlap, a patient-disjoint re-split), PneumoniaMNIST
// and RetinaMNIST (.npz), ISBI 2012 (images + masks) and DSB 2018 (one mask per nucleus). The
// counts checked are those the folders' SOURCE.md files state.
#include <gtest/gtest.h>

#include <iostream>

#include "data/classification.h"
#include "data/decode.h"
#include "data/files.h"
#include "data/medmnist.h"
#include "data/segmentation.h"
#include "data/splits.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using namespace medtl::data;

std::string nih(const std::string& split) {
  return testing::shared_data("nih-chestxray14-1000-64px/NIH1000/" + split);
}

TEST(RealNih1000, SplitsClassesAndImages) {
  const std::vector<std::pair<std::string, int64_t>> expected = {{"train", 300}, {"valid", 100}, {"test", 100}};
  for (const auto& [split, per_class] : expected) {
    auto d = folder_per_class(nih(split), {}, false, "nih1000/" + split);
    EXPECT_EQ(d->target_kind(), TargetKind::Binary);
    EXPECT_EQ(d->class_names(), (std::vector<std::string>{"0_normal", "1_abnormal"}));
    ASSERT_EQ(d->size(), 2 * per_class) << split;
    int64_t positives = 0;
    for (const auto& item : d->items()) positives += item.class_index;
    EXPECT_EQ(positives, per_class) << split;
    std::cout << "nih1000/" << split << ": " << d->size() << " images (" << d->size() - positives << " normal, "
              << positives << " abnormal), " << count_patients(*d, kNihPatientPattern) << " patients\n";
  }
  // Every image decodes (979 RGB with R=G=B, 21 RGBA): 3 x 64 x 64 under the paper's RGB policy,
  // equal channels; 1 x 64 x 64 under Gray.
  auto train = folder_per_class(nih("train"));
  auto checked = scan_dataset(train, OnBadSample::Throw, nullptr);
  EXPECT_EQ(checked.get(), train.get());
  const Sample s = train->get(0);
  EXPECT_EQ(s.image.shape(), (Shape{3, 64, 64}));
  EXPECT_TRUE(testing::tensors_identical(s.image.select(0, 0), s.image.select(0, 2)));
  ImageOptions gray;
  gray.channels = ChannelPolicy::Gray;
  EXPECT_EQ(folder_per_class(nih("valid"), gray)->get(5).image.shape(), (Shape{1, 64, 64}));
}

TEST(RealNih1000, ProvidedSplitsSharePatients) {
  auto train = folder_per_class(nih("train")), valid = folder_per_class(nih("valid")),
       test = folder_per_class(nih("test"));
  // SOURCE.md: 165 / 71 / 59 patients; 15 shared by train and valid, 8 by train and test, 9 by valid and test.
  EXPECT_EQ(count_patients(*train, kNihPatientPattern), 165);
  EXPECT_EQ(count_patients(*valid, kNihPatientPattern), 71);
  EXPECT_EQ(count_patients(*test, kNihPatientPattern), 59);
  const auto tv = shared_patients(*train, *valid, kNihPatientPattern);
  const auto tt = shared_patients(*train, *test, kNihPatientPattern);
  const auto vt = shared_patients(*valid, *test, kNihPatientPattern);
  std::cout << "nih1000 provided splits share patients: train/valid " << tv.size() << ", train/test " << tt.size()
            << ", valid/test " << vt.size() << "\n";
  EXPECT_EQ(tv.size(), 15u);
  EXPECT_EQ(tt.size(), 8u);
  EXPECT_EQ(vt.size(), 9u);
}

TEST(RealNih1000, PatientDisjointResplit) {
  // All 1000 images under one root ({train,valid,test}/{class}) re-split by patient.
  std::vector<LabelledImage> all;
  for (const char* split : {"train", "valid", "test"}) {
    const auto d = folder_per_class(nih(split));
    all.insert(all.end(), d->items().begin(), d->items().end());
  }
  auto pool = std::make_shared<ImageLabelDataset>("nih1000/all", TargetKind::Binary,
                                                  std::vector<std::string>{"0_normal", "1_abnormal"}, all, ImageOptions{});
  ASSERT_EQ(pool->size(), 1000);
  const int64_t patients = count_patients(*pool, kNihPatientPattern);
  const auto parts = split_patient_disjoint(pool, {0.6, 0.2, 0.2}, 2021, kNihPatientPattern, {"train", "valid", "test"});
  int64_t total = 0;
  for (const auto& p : parts) total += p->size();
  EXPECT_EQ(total, 1000);
  for (size_t a = 0; a < 3; ++a)
    for (size_t b = a + 1; b < 3; ++b) EXPECT_TRUE(shared_patients(*parts[a], *parts[b], kNihPatientPattern).empty());
  std::cout << "nih1000 patient-disjoint re-split (seed 2021) of " << patients << " patients: " << parts[0]->size()
            << " / " << parts[1]->size() << " / " << parts[2]->size() << " images\n";
  EXPECT_NEAR(parts[0]->size(), 600, 60);
}

TEST(RealMedMnist, PneumoniaMnistBothCopies) {
  const std::string varun = testing::shared_data("pneumoniamnist/varun19424-pneumonia_mnist/pneumoniamnist.npz");
  const std::string balanced = testing::shared_data("pneumoniamnist/aksufatih-snn-medmnist/pneumoniamnist.npz");
  // SOURCE.md counts (normal / pneumonia).
  const std::vector<std::tuple<std::string, std::string, int64_t, int64_t>> expected = {
      {varun, "train", 388, 3494}, {varun, "val", 135, 389}, {varun, "test", 234, 390},
      {balanced, "train", 1214, 1214}, {balanced, "val", 135, 135}, {balanced, "test", 234, 234}};
  for (const auto& [path, split, normal, pneumonia] : expected) {
    MedMnistDataset d(path, split);
    EXPECT_EQ(d.target_kind(), TargetKind::Binary);
    EXPECT_EQ(d.size(), normal + pneumonia) << path << " " << split;
    EXPECT_EQ(d.class_counts(), (std::vector<int64_t>{normal, pneumonia})) << path << " " << split;
  }
  MedMnistDataset test(varun, "test");
  const Sample s = test.get(0);
  EXPECT_EQ(s.image.shape(), (Shape{3, 28, 28}));
  EXPECT_EQ(s.label.shape(), (Shape{1}));
  MedMnistOptions gray;
  gray.image.channels = ChannelPolicy::Gray;
  EXPECT_EQ(MedMnistDataset(varun, "test", gray).get(0).image.shape(), (Shape{1, 28, 28}));
}

TEST(RealMedMnist, RetinaMnistOfficialSplits) {
  const std::string path = testing::shared_data("retinamnist/retinamnist.npz");
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"train", {486, 128, 206, 194, 66}}, {"val", {54, 12, 28, 20, 6}}, {"test", {174, 46, 92, 68, 20}}};
  for (const auto& [split, counts] : expected) {
    MedMnistDataset d(path, split);
    EXPECT_EQ(d.target_kind(), TargetKind::MultiClass);
    EXPECT_EQ(d.class_counts(), counts) << split;
  }
  MedMnistDataset train(path, "train");
  const Sample s = train.get(3);
  EXPECT_EQ(s.image.shape(), (Shape{3, 28, 28}));
  EXPECT_EQ(s.label.shape(), (Shape{5}));
  EXPECT_EQ(s.label.at({s.class_index}), 1.0f);
  EXPECT_FALSE(testing::tensors_identical(s.image.select(0, 0), s.image.select(0, 2)));  // real colour
}

TEST(RealIsbi2012, ImagesAndMasks) {
  const std::string root = testing::shared_data("isbi2012-em-membrane");
  auto cells = isbi2012(root);
  ASSERT_EQ(cells->size(), 30);
  EXPECT_EQ(cells->class_names(), (std::vector<std::string>{"background", "cell interior"}));
  EXPECT_EQ(file_name(cells->items()[2].image), "2.png");  // numeric order
  EXPECT_EQ(file_name(cells->items()[10].image), "10.png");
  double foreground = 0, pixels = 0;
  for (int64_t i = 0; i < cells->size(); ++i) {
    const Sample s = cells->get(i);
    ASSERT_EQ(s.image.shape(), (Shape{3, 512, 512}));
    ASSERT_EQ(s.mask.shape(), (Shape{1, 512, 512}));
    for (float v : s.mask.to_vector<float>()) foreground += v;
    pixels += 512.0 * 512.0;
  }
  std::cout << "isbi2012: 30 slices, cell-interior fraction " << foreground / pixels << "\n";
  EXPECT_NEAR(foreground / pixels, 0.78, 0.03);  // SOURCE.md: about 78% of label pixels are 255
  auto membrane = isbi2012(root, {}, /*membrane_foreground=*/true);
  const Tensor a = cells->get(0).mask, b = membrane->get(0).mask;
  const auto va = a.to_vector<float>(), vb = b.to_vector<float>();
  for (size_t k = 0; k < va.size(); ++k) ASSERT_EQ(va[k] + vb[k], 1.0f);
}

TEST(RealDsb2018, NucleiMergedIntoOneMask) {
  const std::string stage = testing::shared_data("dsb2018-nuclei-stage1-train-subset/stage1_train");
  auto d = dsb2018(stage);
  ASSERT_EQ(d->size(), 200);
  int64_t masks = 0;
  for (const auto& item : d->items()) masks += static_cast<int64_t>(item.masks.size());
  EXPECT_EQ(masks, 8608);  // SOURCE.md
  std::cout << "dsb2018: 200 images, " << masks << " nucleus masks\n";
  // The first few images: RGBA dropped to RGB, mask the size of the image, union of the nuclei
  // equal to the sum of the nuclei's areas (they do not overlap).
  for (int64_t i = 0; i < 3; ++i) {
    const Sample s = d->get(i);
    EXPECT_EQ(s.image.size(0), 3);
    EXPECT_EQ(s.mask.size(1), s.image.size(1));
    EXPECT_EQ(s.mask.size(2), s.image.size(2));
    double merged = 0, separate = 0;
    for (float v : s.mask.to_vector<float>()) merged += v;
    for (const auto& m : d->items()[i].masks)
      for (float v : load_image(m, ChannelPolicy::Gray).pixels.to_vector<float>()) separate += v > 0;
    EXPECT_EQ(merged, separate) << d->items()[i].id;
    EXPECT_GT(merged, 0);
  }
}

}  // namespace
}  // namespace medtl
