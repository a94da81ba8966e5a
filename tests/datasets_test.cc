// The dataset layouts whose real data is not on this machine (ChestX-ray14, CheXpert, Shenzhen,
// Montgomery, DRIVE, SIIM-ACR), written here file by file in the official layout with known
// labels and masks; plus folder-per-class and MedMNIST edge cases, RLE, splits and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "data/classification.h"
#include "data/medmnist.h"
#include "data/npz.h"
#include "data/rle.h"
#include "data/segmentation.h"
#include "data/splits.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using namespace medtl::data;

std::vector<uint16_t> constant(int n, uint16_t v) { return std::vector<uint16_t>(n, v); }

// A small gray PNG whose pixels encode `tag` so samples can be told apart.
void tagged_png(const std::string& path, uint16_t tag, int w = 4, int h = 3) {
  testing::write_gray_png(path, w, h, constant(w * h, tag));
}

std::vector<float> label_of(const Dataset& d, int64_t i, SampleKey key = {}) {
  key.index = i;
  return d.get(i, key).label.to_vector<float>();
}

// ---------------------------------------------------------------- folder per class

TEST(FolderPerClass, BinaryAndMultiClassLabels) {
  const std::string root = testing::scratch_dir("folder_per_class");
  tagged_png(root + "/two/0_normal/a.png", 1);
  tagged_png(root + "/two/0_normal/b.png", 2);
  tagged_png(root + "/two/1_abnormal/c.png", 3);
  auto binary = folder_per_class(root + "/two");
  EXPECT_EQ(binary->target_kind(), TargetKind::Binary);
  EXPECT_EQ(binary->class_names(), (std::vector<std::string>{"0_normal", "1_abnormal"}));
  ASSERT_EQ(binary->size(), 3);
  const Sample s = binary->get(2);
  EXPECT_EQ(s.label.to_vector<float>(), (std::vector<float>{1}));
  EXPECT_EQ(s.class_index, 1);
  EXPECT_EQ(s.image.shape(), (Shape{3, 3, 4}));  // gray replicated (the paper's convert('RGB'))
  EXPECT_EQ(s.image.at({2, 0, 0}), 3);
  EXPECT_EQ(label_of(*binary, 0), (std::vector<float>{0}));

  tagged_png(root + "/three/x/a.png", 1);
  tagged_png(root + "/three/y/b.png", 2);
  tagged_png(root + "/three/z/c.png", 3);
  auto multi = folder_per_class(root + "/three");
  EXPECT_EQ(multi->target_kind(), TargetKind::MultiClass);
  EXPECT_EQ(label_of(*multi, 1), (std::vector<float>{0, 1, 0}));
  EXPECT_EQ(multi->get(2).class_index, 2);
  EXPECT_EQ(folder_per_class(root + "/two", {}, /*force_multiclass=*/true)->target_kind(), TargetKind::MultiClass);
}

TEST(FolderPerClass, BadInput) {
  const std::string root = testing::scratch_dir("folder_per_class_bad");
  tagged_png(root + "/s/a/1.png", 1);
  std::filesystem::create_directories(root + "/s/b");
  EXPECT_ERROR_CONTAINS(folder_per_class(root + "/s"), "has no image files");
  EXPECT_ERROR_CONTAINS(folder_per_class(root + "/absent"), "absent' does not exist");
  // A corrupt file: get() names it; scan_dataset skips and lists it.
  tagged_png(root + "/s/b/2.png", 2);
  testing::write_text(root + "/s/b/3.png", "not a png");
  auto d = folder_per_class(root + "/s");
  ASSERT_EQ(d->size(), 3);
  EXPECT_ERROR_CONTAINS(d->get(2), "3.png");
  EXPECT_ERROR_CONTAINS(scan_dataset(d, OnBadSample::Throw, nullptr), "3.png");
  BadSampleLog log;
  auto good = scan_dataset(d, OnBadSample::Skip, &log);
  EXPECT_EQ(good->size(), 2);
  ASSERT_EQ(log.count(), 1);
  EXPECT_EQ(log.entries()[0].source, root + "/s/b/3.png");
  EXPECT_NE(log.report().find("1 bad sample skipped"), std::string::npos) << log.report();
}

// ---------------------------------------------------------------- ChestX-ray14

const char* kDataEntryHeader =
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n";

TEST(ChestXray14, OfficialCsvAndSplitLists) {
  const std::string root = testing::scratch_dir("chestxray14");
  testing::write_text(root + "/Data_Entry_2017.csv",
                      std::string(kDataEntryHeader) +
                          "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143\n"
                          "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143\n"
                          "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171\n"
                          "00000003_000.png,Hernia|Pleural_Thickening|Atelectasis,0,3,74,F,PA,2500,2048,0.168,0.168\n");
  tagged_png(root + "/images_001/images/00000001_000.png", 10);
  tagged_png(root + "/images_001/images/00000001_001.png", 11);
  tagged_png(root + "/images_002/images/00000002_000.png", 20);
  tagged_png(root + "/images_002/images/00000003_000.png", 30);
  testing::write_text(root + "/train_val_list.txt", "00000001_000.png\n00000001_001.png\n00000002_000.png\n");
  testing::write_text(root + "/test_list.txt", "00000003_000.png\n");
  auto train = chestxray14(root, root + "/train_val_list.txt");
  auto test = chestxray14(root, root + "/test_list.txt");
  EXPECT_EQ(train->target_kind(), TargetKind::MultiLabel);
  EXPECT_EQ(train->class_names(), chestxray14_labels());
  EXPECT_EQ(chestxray14_labels().front(), "Atelectasis");
  EXPECT_EQ(chestxray14_labels().back(), "Hernia");
  ASSERT_EQ(train->size(), 3);
  ASSERT_EQ(test->size(), 1);
  std::vector<float> expect(14, 0.0f);
  expect[1] = 1;  // Cardiomegaly
  EXPECT_EQ(label_of(*train, 0), expect);
  expect[10] = 1;  // Emphysema
  EXPECT_EQ(label_of(*train, 1), expect);
  EXPECT_EQ(label_of(*train, 2), std::vector<float>(14, 0.0f));  // No Finding
  std::vector<float> t(14, 0.0f);
  t[0] = t[12] = t[13] = 1;  // Atelectasis, Pleural_Thickening, Hernia
  EXPECT_EQ(label_of(*test, 0), t);
  EXPECT_EQ(test->get(0).image.at({0, 0, 0}), 30);

  // The paper's list format: "<name> <14 labels>", checked against the CSV.
  testing::write_text(root + "/paper_test.txt", "00000003_000.png 1 0 0 0 0 0 0 0 0 0 0 0 1 1\n");
  EXPECT_EQ(label_of(*chestxray14(root, root + "/paper_test.txt"), 0), t);
  testing::write_text(root + "/paper_wrong.txt", "00000003_000.png 0 0 0 0 0 0 0 0 0 0 0 0 1 1\n");
  EXPECT_ERROR_CONTAINS(chestxray14(root, root + "/paper_wrong.txt"), "labels differ from");
}

TEST(ChestXray14, BadEntries) {
  const std::string root = testing::scratch_dir("chestxray14_bad");
  testing::write_text(root + "/Data_Entry_2017.csv",
                      std::string(kDataEntryHeader) + "00000001_000.png,Cardiomegaly,0,1,58,M,PA,1,1,1,1\n"
                                                      "00000004_000.png,Pneumonitis,0,4,58,M,PA,1,1,1,1\n");
  tagged_png(root + "/images/00000001_000.png", 1);
  testing::write_text(root + "/list.txt", "00000001_000.png\n00000009_000.png\n");
  EXPECT_ERROR_CONTAINS(chestxray14(root, root + "/list.txt"), "unknown finding 'Pneumonitis'");
  testing::write_text(root + "/Data_Entry_2017.csv",
                      std::string(kDataEntryHeader) + "00000001_000.png,Cardiomegaly,0,1,58,M,PA,1,1,1,1\n"
                                                      "00000002_000.png,Mass,0,2,58,M,PA,1,1,1,1\n");
  EXPECT_ERROR_CONTAINS(chestxray14(root, root + "/list.txt"), "00000009_000.png): not in");
  ImageOptions skip;
  skip.on_bad = OnBadSample::Skip;
  testing::write_text(root + "/list2.txt", "00000001_000.png\n00000009_000.png\n00000002_000.png\n");
  auto d = chestxray14(root, root + "/list2.txt", skip);
  EXPECT_EQ(d->size(), 1);
  EXPECT_EQ(d->skipped().count(), 2);  // 00000009 unknown label, 00000002 has no image file
  EXPECT_NE(d->skipped().report().find("image file not found"), std::string::npos) << d->skipped().report();
  testing::write_text(root + "/empty.txt", "\n# nothing\n");
  EXPECT_ERROR_CONTAINS(chestxray14(root, root + "/empty.txt"), "is empty");
}

// ---------------------------------------------------------------- CheXpert

std::string chexpert_header() {
  std::string h = "Path,Sex,Age,Frontal/Lateral,AP/PA";
  for (const auto& l : chexpert_labels()) h += "," + l;
  return h + "\n";
}

// A CheXpert-v1.0-small tree with three studies; labels per row as written.
std::string write_chexpert(const std::string& name, const std::vector<std::string>& label_rows) {
  const std::string root = testing::scratch_dir(name);
  std::string csv = chexpert_header();
  for (size_t r = 0; r < label_rows.size(); ++r) {
    const std::string rel = "CheXpert-v1.0-small/train/patient0000" + std::to_string(r + 1) + "/study1/view1_" +
                            (r == 2 ? "lateral" : "frontal") + ".jpg";
    tagged_png(root + "/" + rel, static_cast<uint16_t>(r + 1));  // PNG bytes in a .jpg: decoded by content
    csv += rel + ",Female,68," + (r == 2 ? "Lateral," : "Frontal,AP") + "," + label_rows[r] + "\n";
  }
  testing::write_text(root + "/CheXpert-v1.0-small/train.csv", csv);
  return root + "/CheXpert-v1.0-small/train.csv";
}

TEST(CheXpert, UncertaintyPolicies) {
  //                     NF   EC   Card  LO   LL   Ed   Cons Pn   Atel Pnx  PE   PO   Fr   SD
  const std::string csv = write_chexpert(
      "chexpert", {"1.0,,,,,,,,,0.0,,,,1.0", ",,-1.0,1.0,,-1.0,,,-1.0,,1.0,,,", "0.0,0.0,1.0,,,,-1.0,,,,,,,"});
  auto ones = chexpert(csv, UncertainPolicy::Ones);
  auto zeros = chexpert(csv, UncertainPolicy::Zeros);
  auto lsr = chexpert(csv, UncertainPolicy::LsrOnes);
  ASSERT_EQ(ones->size(), 3);
  EXPECT_EQ(ones->class_names(), chexpert_labels());
  std::vector<float> row0(14, 0.0f);
  row0[0] = row0[13] = 1;
  EXPECT_EQ(label_of(*ones, 0), row0);  // blank -> 0
  const auto o = label_of(*ones, 1), z = label_of(*zeros, 1);
  for (int c : {2, 5, 8}) {
    EXPECT_EQ(o[c], 1.0f) << c;
    EXPECT_EQ(z[c], 0.0f) << c;
  }
  EXPECT_EQ(o[3], 1.0f);
  EXPECT_EQ(z[10], 1.0f);
  // LSR-Ones: uniform in [0.55, 0.85), a function of (seed, epoch, index) only.
  const SampleKey key{42, 3, 1};
  const auto a = lsr->label(1, key), b = lsr->label(1, key);
  EXPECT_EQ(a, b);
  for (int c : {2, 5, 8}) {
    EXPECT_GE(a[c], 0.55f);
    EXPECT_LT(a[c], 0.85f);
  }
  EXPECT_EQ(a[3], 1.0f);
  EXPECT_EQ(a[0], 0.0f);
  EXPECT_NE(lsr->label(1, {42, 4, 1}), a) << "a new epoch redraws the soft labels";
  EXPECT_NE(lsr->label(1, {43, 3, 1}), a) << "a new seed redraws the soft labels";
  // Many draws cover the interval evenly enough.
  double mean = 0;
  for (uint64_t e = 0; e < 400; ++e) mean += lsr->label(1, {7, e, 1})[2];
  EXPECT_NEAR(mean / 400, 0.70, 0.02);
  // Thread-safe and deterministic: four threads get the same samples as one.
  std::vector<std::vector<float>> serial(3), parallel(3);
  for (int64_t i = 0; i < 3; ++i) serial[i] = lsr->get(i, {9, 2, i}).label.to_vector<float>();
  std::vector<std::thread> threads;
  for (int64_t i = 0; i < 3; ++i)
    threads.emplace_back([&, i] { parallel[i] = lsr->get(i, {9, 2, i}).label.to_vector<float>(); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(serial, parallel);
  // Frontal only drops the lateral view.
  EXPECT_EQ(chexpert(csv, UncertainPolicy::Ones, {}, "", /*frontal_only=*/true)->size(), 2);
  // The five evaluation outputs.
  std::vector<std::string> eval;
  for (int i : chexpert_eval_indices()) eval.push_back(chexpert_labels()[i]);
  EXPECT_EQ(eval, (std::vector<std::string>{"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"}));
}

TEST(CheXpert, BadEntries) {
  const std::string csv = write_chexpert("chexpert_bad", {"1.0,,,,,,,,,,,,,", ",,2.0,,,,,,,,,,,", ",,,,,,,,,,,,,"});
  EXPECT_ERROR_CONTAINS(chexpert(csv, UncertainPolicy::Ones), "unknown label '2.0' for 'Cardiomegaly'");
  ImageOptions skip;
  skip.on_bad = OnBadSample::Skip;
  std::filesystem::remove(std::filesystem::path(csv).parent_path() / "train/patient00003/study1/view1_lateral.jpg");
  auto d = chexpert(csv, UncertainPolicy::Ones, skip);
  EXPECT_EQ(d->size(), 1);
  EXPECT_EQ(d->skipped().count(), 2);
  const std::string dir = testing::scratch_dir("chexpert_header");
  testing::write_text(dir + "/train.csv", "Path,Sex,Age,Frontal/Lateral,AP/PA,Cardiomegaly\n");
  EXPECT_ERROR_CONTAINS(chexpert(dir + "/train.csv", UncertainPolicy::Ones), "columns");
}

// ---------------------------------------------------------------- Shenzhen

TEST(Shenzhen, LabelFromFileNameAndLists) {
  const std::string root = testing::scratch_dir("shenzhen");
  const std::string dir = root + "/ChinaSet_AllFiles/CXR_png";
  tagged_png(dir + "/CHNCXR_0001_0.png", 1);
  tagged_png(dir + "/CHNCXR_0002_0.png", 2);
  tagged_png(dir + "/CHNCXR_0327_1.png", 3);
  auto all = shenzhen(dir);
  ASSERT_EQ(all->size(), 3);
  EXPECT_EQ(all->target_kind(), TargetKind::Binary);
  EXPECT_EQ(label_of(*all, 2), (std::vector<float>{1}));
  EXPECT_EQ(label_of(*all, 0), (std::vector<float>{0}));
  testing::write_text(root + "/ShenzenCXR_test_data.txt", "CHNCXR_0327_1.png 1\nCHNCXR_0002_0.png 0\n");
  auto test = shenzhen(dir, root + "/ShenzenCXR_test_data.txt");
  ASSERT_EQ(test->size(), 2);
  EXPECT_EQ(test->get(0).image.at({0, 0, 0}), 3);
  testing::write_text(root + "/wrong.txt", "CHNCXR_0327_1.png 0\n");
  EXPECT_ERROR_CONTAINS(shenzhen(dir, root + "/wrong.txt"), "disagrees with the file name");
  tagged_png(dir + "/CHNCXR_0400_2.png", 4);
  EXPECT_ERROR_CONTAINS(shenzhen(dir), "unknown label '2'");
}

// ---------------------------------------------------------------- segmentation layouts

TEST(Montgomery, LeftAndRightMasksMerged) {
  const std::string root = testing::scratch_dir("montgomery") + "/MontgomerySet";
  const int w = 6, h = 4;
  std::vector<uint16_t> left(w * h, 0), right(w * h, 0);
  for (int y = 0; y < h; ++y) { left[y * w + 0] = left[y * w + 1] = 255; right[y * w + 4] = right[y * w + 5] = 255; }
  for (const char* name : {"MCUCXR_0001_0.png", "MCUCXR_0002_1.png"}) {
    tagged_png(root + "/CXR_png/" + name, 100, w, h);
    testing::write_gray_png(root + "/ManualMask/leftMask/" + name, w, h, left);
  }
  testing::write_gray_png(root + "/ManualMask/rightMask/MCUCXR_0001_0.png", w, h, right);
  EXPECT_ERROR_CONTAINS(montgomery(root), "no right-lung mask");
  ImageOptions skip;
  skip.on_bad = OnBadSample::Skip;
  auto d = montgomery(root, skip);
  ASSERT_EQ(d->size(), 1);
  EXPECT_EQ(d->skipped().count(), 1);
  EXPECT_EQ(d->target_kind(), TargetKind::Mask);
  EXPECT_EQ(d->class_names(), (std::vector<std::string>{"background", "lung"}));
  const Sample s = d->get(0);
  ASSERT_EQ(s.mask.shape(), (Shape{1, h, w}));
  EXPECT_FALSE(s.label.defined());
  for (int x = 0; x < w; ++x) EXPECT_EQ(s.mask.at({0, 2, x}), (x <= 1 || x >= 4) ? 1.0f : 0.0f) << x;
}

TEST(Drive, OfficialAndSaUnetLayouts) {
  const std::string root = testing::scratch_dir("drive") + "/DRIVE";
  const int w = 5, h = 4;
  std::vector<uint16_t> rgb(w * h * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint16_t>(i * 4);
  std::vector<uint8_t> vessel(w * h, 0);
  vessel[3] = vessel[7] = vessel[19] = 1;
  // Official: training/images/21_training.tif + training/1st_manual/21_manual1.gif.
  testing::write_tiff(root + "/training/images/21_training.tif", w, h, 3, 8, rgb);
  testing::write_mask_gif(root + "/training/1st_manual/21_manual1.gif", w, h, vessel);
  std::filesystem::create_directories(root + "/training/mask");
  auto train = drive(root + "/training");
  ASSERT_EQ(train->size(), 1);
  const Sample s = train->get(0);
  EXPECT_EQ(s.image.shape(), (Shape{3, h, w}));
  EXPECT_EQ(s.image.at({1, 0, 0}), 4);
  float on = 0;
  for (float v : s.mask.to_vector<float>()) on += v;
  EXPECT_EQ(on, 3);
  EXPECT_EQ(s.mask.at({0, 3, 4}), 1.0f);
  // SA-UNet copy: test/images/01_test.png + test/labels/01_manual1.png.
  testing::write_png(root + "/test/images/01_test.png", w, h, 3, 8, rgb);
  std::vector<uint16_t> label(w * h, 0);
  label[0] = 255;
  label[1] = 100;  // below the paper's threshold of 127
  testing::write_gray_png(root + "/test/labels/01_manual1.png", w, h, label);
  const Sample t = drive(root + "/test")->get(0);
  EXPECT_EQ(t.mask.at({0, 0, 0}), 1.0f);
  EXPECT_EQ(t.mask.at({0, 0, 1}), 0.0f);
  // A mask whose size differs from its image: the error names both files.
  testing::write_mask_gif(root + "/bad/1st_manual/22_manual1.gif", w + 1, h, std::vector<uint8_t>((w + 1) * h, 0));
  testing::write_tiff(root + "/bad/images/22_training.tif", w, h, 3, 8, rgb);
  auto bad = drive(root + "/bad");
  EXPECT_ERROR_CONTAINS(bad->get(0), "22_manual1.gif' is 6x4 (WxH) but its image '" + root + "/bad/images/22_training.tif' is 5x4");
}

TEST(Dsb2018, NucleusMasksMergedAndMissingMasks) {
  const std::string root = testing::scratch_dir("dsb") + "/stage1_train";
  tagged_png(root + "/abc/images/abc.png", 50);
  std::vector<uint16_t> m1(12, 0), m2(12, 0);
  m1[0] = 255;
  m2[11] = 255;
  testing::write_gray_png(root + "/abc/masks/m1.png", 4, 3, m1);
  testing::write_gray_png(root + "/abc/masks/m2.png", 4, 3, m2);
  tagged_png(root + "/def/images/def.png", 60);  // no masks/ (a test-stage image)
  EXPECT_ERROR_CONTAINS(dsb2018(root), "no masks/ folder");
  ImageOptions skip;
  skip.on_bad = OnBadSample::Skip;
  auto d = dsb2018(root, skip);
  ASSERT_EQ(d->size(), 1);
  const auto mask = d->get(0).mask.to_vector<float>();
  EXPECT_EQ(mask[0], 1.0f);
  EXPECT_EQ(mask[11], 1.0f);
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1.0f), 2);
}

// ---------------------------------------------------------------- RLE and SIIM-ACR

TEST(Rle, SiimRelativeAndKaggleAbsolute) {
  // 4x3 (H x W) image, column-major pixel numbers: column 0 = 0..3, column 1 = 4..7, column 2 = 8..11.
  // SIIM relative: "1 2 3 2": pixels 1-2, then 3 after the run's end (3) -> 6-7.
  const Tensor m = rle_decode("1 2 3 2", 4, 3, RleFormat::siim());
  std::vector<float> expect(12, 0.0f);
  for (int p : {1, 2, 6, 7}) expect[(p % 4) * 3 + p / 4] = 1.0f;
  EXPECT_EQ(m.to_vector<float>(), expect);
  // Kaggle absolute 1-based: "2 2 7 2" is the same mask.
  EXPECT_TRUE(testing::tensors_identical(rle_decode("2 2 7 2", 4, 3, RleFormat::kaggle_absolute()), m));
  EXPECT_EQ(rle_encode(m, RleFormat::siim()), "1 2 3 2");
  EXPECT_EQ(rle_encode(m, RleFormat::kaggle_absolute()), "2 2 7 2");
  EXPECT_EQ(rle_encode(zeros({1, 4, 3}), RleFormat::siim()), "-1");
  EXPECT_EQ(rle_decode("-1", 4, 3, RleFormat::siim()).to_vector<float>(), std::vector<float>(12, 0.0f));
  // Round trip on a random mask.
  Generator gen(5);
  Tensor r = uniform({1, 9, 7}, gen, 0, 1);
  float* p = r.data<float>();
  for (int64_t i = 0; i < r.numel(); ++i) p[i] = p[i] > 0.6f ? 1.0f : 0.0f;
  for (const RleFormat& f : {RleFormat::siim(), RleFormat::kaggle_absolute(), RleFormat{false, false, false}})
    EXPECT_TRUE(testing::tensors_identical(rle_decode(rle_encode(r, f), 9, 7, f), r));
  EXPECT_ERROR_CONTAINS(rle_decode("5 10", 4, 3, RleFormat::siim()), "goes beyond the 4x3 image");
  EXPECT_ERROR_CONTAINS(rle_decode("1 2 3", 4, 3, RleFormat::siim()), "even count");
  EXPECT_ERROR_CONTAINS(rle_decode("1 x", 4, 3, RleFormat::siim()), "'x' is not a non-negative integer");
}

TEST(SiimAcr, DicomWithRleMasks) {
  const std::string root = testing::scratch_dir("siim");
  // The Kaggle tree: dicom-images-train/<study>/<series>/<ImageId>.dcm. CT_small is 128x128.
  const std::string a = "1.2.276.0.7230010.3.1.4.8323329.1000.1517875165.878027";
  const std::string b = "1.2.276.0.7230010.3.1.4.8323329.1001.1517875165.878028";
  const std::string c = "1.2.276.0.7230010.3.1.4.8323329.1002.1517875165.878029";
  for (const std::string& id : {a, b}) {
    const std::string dir = root + "/dicom-images-train/1.2.3." + id.substr(40, 4) + "/1.2.4";
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(testing::dicom_sample("CT_small.dcm"), dir + "/" + id + ".dcm");
  }
  // Two regions of image a (merged), none for b, c has no DICOM file.
  testing::write_text(root + "/train-rle.csv", "ImageId, EncodedPixels\n" + a + ", 130 3 200 2\n" + a +
                                                   ", 16000 4\n" + b + ", -1\n" + c + ", 5 5\n");
  EXPECT_ERROR_CONTAINS(siim_acr(root + "/dicom-images-train", root + "/train-rle.csv"), "no DICOM file " + c);
  ImageOptions skip;
  skip.on_bad = OnBadSample::Skip;
  auto d = siim_acr(root + "/dicom-images-train", root + "/train-rle.csv", skip);
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(d->skipped().count(), 1);
  const Sample s = d->get(0);
  EXPECT_EQ(s.image.shape(), (Shape{3, 128, 128}));
  EXPECT_EQ(s.image.at({0, 0, 0}), 175 - 1024);  // Hounsfield units, as the DICOM test
  Tensor expect = zeros({1, 128, 128});
  rle_paint("130 3 200 2", expect, RleFormat::siim());
  rle_paint("16000 4", expect, RleFormat::siim());
  EXPECT_TRUE(testing::tensors_identical(s.mask, expect));
  EXPECT_EQ(expect.at({0, 2, 1}), 1.0f);  // pixel 130 = column 1, row 2
  float total = 0;
  for (float v : d->get(1).mask.to_vector<float>()) total += v;
  EXPECT_EQ(total, 0);
  // A run past the image's end is an error naming the image.
  testing::write_text(root + "/bad-rle.csv", "ImageId,EncodedPixels\n" + a + ",16380 10\n");
  auto bad = siim_acr(root + "/dicom-images-train", root + "/bad-rle.csv");
  EXPECT_ERROR_CONTAINS(bad->get(0), "RLE 0 of '" + a + "'");
}

// ---------------------------------------------------------------- MedMNIST edge cases

TEST(MedMnist, UnknownLabelsAndTaskDetection) {
  const std::string dir = testing::scratch_dir("medmnist");
  std::map<std::string, Tensor> arrays;
  arrays["train_images"] = arange(0, 4 * 2 * 2, 1, DType::Float32).view({4, 2, 2}).to(DType::UInt8);
  arrays["train_labels"] = from_vector<float>({0, 1, 7, 1}, {4, 1}).to(DType::UInt8);
  arrays["val_images"] = arrays["train_images"];
  arrays["val_labels"] = from_vector<float>({1, 0, 1, 1}, {4, 1}).to(DType::UInt8);
  data::write_npz(dir + "/pneumoniamnist.npz", arrays, true);
  EXPECT_ERROR_CONTAINS(MedMnistDataset(dir + "/pneumoniamnist.npz", "train"), "train_labels[2]: unknown label 7");
  MedMnistOptions skip;
  skip.image.on_bad = OnBadSample::Skip;
  MedMnistDataset d(dir + "/pneumoniamnist.npz", "train", skip);
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.skipped().count(), 1);
  EXPECT_EQ(d.target_kind(), TargetKind::Binary);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"normal", "pneumonia"}));
  const Sample s = d.get(2);  // row 3
  EXPECT_EQ(s.class_index, 1);
  EXPECT_EQ(s.image.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(s.image.at({1, 1, 1}), 15);
  EXPECT_ERROR_CONTAINS(MedMnistDataset(dir + "/pneumoniamnist.npz", "test"), "has no array 'test_images'");
  EXPECT_ERROR_CONTAINS(MedMnistDataset(dir + "/pneumoniamnist.npz", "valid"), "split 'valid' unknown");
  // Multi-label (chestmnist-like) is recognised from the label shape.
  arrays["train_labels"] = from_vector<float>({0, 1, 1, 0, 0, 0, 1, 1}, {4, 2}).to(DType::UInt8);
  data::write_npz(dir + "/mystery.npz", arrays, false);
  MedMnistDataset ml(dir + "/mystery.npz", "train");
  EXPECT_EQ(ml.target_kind(), TargetKind::MultiLabel);
  EXPECT_EQ(ml.get(3).label.to_vector<float>(), (std::vector<float>{1, 1}));
  EXPECT_ERROR_CONTAINS(MedMnistDataset(dir + "/mystery.npz", "val"), "not a known MedMNIST task");
}

// ---------------------------------------------------------------- splits

std::shared_ptr<ImageLabelDataset> patients_dataset(const std::string& name, int patients, int per_patient) {
  const std::string root = testing::scratch_dir(name);
  for (int p = 0; p < patients; ++p)
    for (int k = 0; k < per_patient + (p % 3); ++k) {
      char file[64];
      std::snprintf(file, sizeof file, "%08d_%03d.png", p + 1, k);
      tagged_png(root + "/all/" + (p % 2 ? "1_abnormal/" : "0_normal/") + file, static_cast<uint16_t>(p));
    }
  return folder_per_class(root + "/all");
}

TEST(Splits, RatioIsSeededDisjointAndComplete) {
  auto d = patients_dataset("split_ratio", 10, 2);
  const auto parts = split_by_ratio(d, {0.6, 0.2, 0.2}, 123, {"train", "val", "test"});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0]->name(), d->name() + "/train");
  std::set<int64_t> seen;
  int64_t total = 0;
  for (const auto& p : parts) {
    for (int64_t i : p->indices()) seen.insert(i);
    total += p->size();
  }
  EXPECT_EQ(total, d->size());
  EXPECT_EQ(static_cast<int64_t>(seen.size()), d->size());
  EXPECT_EQ(parts[1]->size(), std::llround(0.2 * d->size()));
  EXPECT_EQ(split_by_ratio(d, {0.6, 0.2, 0.2}, 123)[0]->indices(), parts[0]->indices());
  EXPECT_NE(split_by_ratio(d, {0.6, 0.2, 0.2}, 124)[0]->indices(), parts[0]->indices());
  EXPECT_ERROR_CONTAINS(split_by_ratio(d, {0.5, 0.6}, 1), "sum to");
  EXPECT_ERROR_CONTAINS(split_by_ratio(d, {0.999, 0.001}, 1), "would be empty");
  // A subset's samples are the base's samples.
  const Sample s = parts[2]->get(0);
  EXPECT_EQ(s.index, 0);
  EXPECT_EQ(s.source, d->source(parts[2]->indices()[0]));
}

TEST(Splits, PatientDisjointAndOverlapCount) {
  auto d = patients_dataset("split_patients", 30, 2);
  EXPECT_EQ(count_patients(*d, kNihPatientPattern), 30);
  const auto parts = split_patient_disjoint(d, {0.7, 0.15, 0.15}, 7, kNihPatientPattern);
  ASSERT_EQ(parts.size(), 3u);
  int64_t total = 0;
  for (const auto& p : parts) total += p->size();
  EXPECT_EQ(total, d->size());
  for (size_t a = 0; a < parts.size(); ++a)
    for (size_t b = a + 1; b < parts.size(); ++b)
      EXPECT_TRUE(shared_patients(*parts[a], *parts[b], kNihPatientPattern).empty()) << a << " " << b;
  EXPECT_NEAR(static_cast<double>(parts[0]->size()) / d->size(), 0.7, 0.1);
  // A random (not patient-aware) split of the same data shares patients.
  const auto naive = split_by_ratio(d, {0.7, 0.3}, 7);
  EXPECT_FALSE(shared_patients(*naive[0], *naive[1], kNihPatientPattern).empty());
  EXPECT_EQ(patient_id("00000231_013.png", kNihPatientPattern), "00000231");
  EXPECT_ERROR_CONTAINS(patient_id("scan.png", kNihPatientPattern), "'scan.png' does not match");
}

TEST(Splits, ByListWithUnknownNames) {
  auto d = patients_dataset("split_list", 4, 1);
  auto part = split_by_list(d, {"00000002_000.png", "x/00000003_002.png 1"}, "mine");
  EXPECT_EQ(part->size(), 2);
  EXPECT_EQ(part->name(), d->name() + "/mine");
  EXPECT_ERROR_CONTAINS(split_by_list(d, {"00000099_000.png"}, "nope"), "00000099_000.png: listed in split 'nope'");
  BadSampleLog log;
  EXPECT_ERROR_CONTAINS(split_by_list(d, {"00000099_000.png"}, "nope", OnBadSample::Skip, &log), "is empty");
  EXPECT_EQ(split_by_list(d, {"00000099_000.png", "00000001_000.png"}, "s", OnBadSample::Skip, &log)->size(), 1);
  EXPECT_EQ(log.count(), 2);
}

TEST(Dataset, KeyedUniformsAreAFunctionOfTheKey) {
  const auto a = keyed_uniforms({1, 2, 3}, 99, 7);
  EXPECT_EQ(a, keyed_uniforms({1, 2, 3}, 99, 7));
  EXPECT_NE(a, keyed_uniforms({1, 2, 4}, 99, 7));
  EXPECT_NE(a, keyed_uniforms({1, 2, 3}, 98, 7));
  const auto longer = keyed_uniforms({1, 2, 3}, 99, 9);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), longer.begin()));  // a prefix: values do not depend on count
  for (double v : a) {
    EXPECT_GE(v, 0.0);
    EXPECT_LT(v, 1.0);
  }
}

}  // namespace
}  // namespace medtl
