// `bazel run //experiments:segment -- --weights=FILE [--threads=N] [--out=DIR] [--save_logits=OUT.npy]
//  [--size=S] [--threshold=0.5] INPUT...`
// Segments images (or preprocessed float32 .npy tensors (N, 3, H, W)) with a U-Net weight file
// (architecture "unet-resnet50", e.g. written by experiments/isbi_finetune) and writes each
// predicted mask as a PNG (255 = foreground: sigmoid(logit) > threshold) into DIR:
// <input stem>_mask.png for an image, <stem>_<n>_mask.png for image n of an .npy, and
// _mask_c<k>.png per class when the network has several. --save_logits writes the raw logits
// (N, classes, H, W) of every input, in order, as one float32 .npy.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "data/npy.h"
#include "experiments/flags.h"
#include "experiments/segmenter.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/parallel.h"

namespace medtl::experiments {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Input {
  std::string path;  // as resolved
  bool npy;
};

int run(int argc, char** argv) {
  const Flags flags(argc, argv,
                    {{"weights", "U-Net weight file (HDF5, architecture unet-resnet50; see docs/segmentation.md)"},
                     {"threads", "CPU threads (default: all cores)"},
                     {"device", "cpu (default), cuda or cuda:N (a --config=cuda build)"},
                     {"out", "folder for the mask PNGs (default: the current folder; created if missing)"},
                     {"save_logits", "also write the raw logits (N, classes, H, W) of all inputs as float32 .npy"},
                     {"size", "resize image files to SxS first (S a multiple of 32; default: keep their size)"},
                     {"threshold", "foreground where sigmoid(logit) > threshold (default 0.5)"}},
                    "usage: segment --weights=FILE [flags] INPUT...   (INPUT: image file or float32 .npy (N, 3, H, W), "
                    "already normalised as the weight file says)");
  if (flags.has("help")) {
    std::cout << flags.help();
    return 0;
  }
  MEDTL_CHECK(flags.has("weights"), "--weights=FILE is required\n", flags.help());
  MEDTL_CHECK(!flags.positionals().empty(), "no INPUT given\n", flags.help());
  if (flags.has("threads")) {
    const int64_t threads = flags.get_int("threads", 1);
    MEDTL_CHECK(threads > 0, "--threads must be positive, got ", threads);
    set_num_threads(static_cast<int>(threads));
  }
  const int64_t size = flags.get_int("size", 0);
  MEDTL_CHECK(size >= 0 && size % 32 == 0, "--size=", size, ": must be a positive multiple of 32 (the U-Net halves ",
              "the image five times), or 0 to keep each image's size");
  const double threshold = flags.get_double("threshold", 0.5);
  const Device device = flags.device();
  MEDTL_CHECK(threshold >= 0.0 && threshold <= 1.0, "--threshold=", threshold, ": must be in [0, 1]");

  // Check everything that can be checked before the (slow) model load and forward passes.
  const std::string weights = user_path(flags.get("weights"));
  const models::WeightFileInfo info = models::read_weight_info(weights);
  MEDTL_CHECK(info.architecture == models::kUNetArchitecture, "'", weights, "' holds a '", info.architecture,
              "' model; segment needs a trained U-Net (architecture '", models::kUNetArchitecture,
              "'). A ResNet-50 file only initialises the encoder: fine-tune a U-Net from it first "
              "(e.g. bazel run //experiments:isbi_finetune -- --save=unet.h5)");
  std::vector<Input> inputs;
  for (const std::string& arg : flags.positionals()) {
    Input in{user_path(arg), ends_with(arg, ".npy")};
    MEDTL_CHECK(std::filesystem::is_regular_file(in.path), "input '", in.path, "' does not exist or is not a file");
    inputs.push_back(in);
  }
  const std::string out_dir = user_path(flags.get("out", "."));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  MEDTL_CHECK(std::filesystem::is_directory(out_dir), "--out='", out_dir, "' is not a folder and cannot be created",
              ec ? ": " + ec.message() : std::string());

  Generator gen(0);  // every tensor is overwritten by the strict load
  models::LoadedUNet loaded = models::load_unet(weights, 1, gen);
  models::UNetResNet50& model = *loaded.model;
  model.to(device);
  const int64_t classes = model.classes();

  std::set<std::string> written;
  std::vector<Tensor> all_logits;
  for (const Input& in : inputs) {
    Tensor batch;
    if (in.npy) {
      batch = data::read_npy(in.path);
      MEDTL_CHECK(batch.dim() == 4 && batch.size(1) == 3 && batch.dtype() == DType::Float32 && batch.size(0) > 0, "'",
                  in.path, "': expected a float32 array (N, 3, H, W) with N >= 1, got ", batch.str());
    } else {
      batch = preprocess_segmentation_image(in.path, loaded.info, size).unsqueeze(0);
      MEDTL_CHECK(batch.size(2) % 32 == 0 && batch.size(3) % 32 == 0, "'", in.path, "' is ", batch.size(3), "x",
                  batch.size(2), " pixels; the U-Net needs a width and height that are multiples of 32: pass ",
                  "--size=S to resize every image to SxS (e.g. --size=", (std::max(batch.size(2), batch.size(3)) + 31) / 32 * 32,
                  ")");
    }
    const Tensor logits = predict_logits(model, batch);
    const Tensor probs = ops::sigmoid(logits);
    const std::string stem = std::filesystem::path(in.path).stem().string();
    for (int64_t n = 0; n < logits.size(0); ++n) {
      for (int64_t c = 0; c < classes; ++c) {
        std::string name = in.npy ? stem + "_" + std::to_string(n) + "_mask" : stem + "_mask";
        if (classes > 1) name += "_c" + std::to_string(c);
        const std::string path = (std::filesystem::path(out_dir) / (name + ".png")).string();
        MEDTL_CHECK(written.insert(path).second, "two inputs would both write '", path,
                    "' (same file name in different folders); segment them in separate runs or rename one");
        write_mask_png(path, probs.select(0, n).select(0, c), threshold);
        std::cout << in.path << (in.npy ? "[" + std::to_string(n) + "]" : "") << " -> " << path << "\n";
      }
    }
    if (flags.has("save_logits")) all_logits.push_back(logits);
  }
  if (flags.has("save_logits")) {
    int64_t rows = 0;
    for (const Tensor& l : all_logits) {
      MEDTL_CHECK(l.shape().back() == all_logits[0].shape().back() && l.size(2) == all_logits[0].size(2),
                  "--save_logits: the inputs have different sizes (", shape_str(all_logits[0].shape()), " vs ",
                  shape_str(l.shape()), "); one .npy needs one size (use --size, or one input per run)");
      rows += l.size(0);
    }
    Tensor stacked = empty({rows, classes, all_logits[0].size(2), all_logits[0].size(3)});
    int64_t at = 0;
    for (const Tensor& l : all_logits) {
      ops::copy_(stacked.narrow(0, at, l.size(0)), l);
      at += l.size(0);
    }
    const std::string path = user_path(flags.get("save_logits"));
    data::write_npy(path, stacked);
    std::cout << "logits " << shape_str(stacked.shape()) << " -> " << path << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace medtl::experiments

int main(int argc, char** argv) {
  try {
    return medtl::experiments::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "segment: error: " << e.what() << std::endl;
    return 1;
  }
}
