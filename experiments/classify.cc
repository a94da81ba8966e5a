// `bazel run //experiments:classify -- --weights=FILE [--topk=5] [--json] [--threads=N]
//  [--crop=square|resize256] [--save_logits=OUT.npy] INPUT...`
// Classifies images (or preprocessed .npy tensors (N, 3, H, W)) with a ResNet-50 weight file and
// prints the top-k classes per input.
#include <cstdio>
#include <iostream>

#include "autograd/graph.h"
#include "data/npy.h"
#include "experiments/classifier.h"
#include "experiments/flags.h"
#include "tensor/ops/copy.h"
#include "tensor/parallel.h"

namespace medtl::experiments {
namespace {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

void print_predictions(const std::string& file, const std::vector<Prediction>& top, bool json) {
  if (json) {
    std::cout << "{\"file\": \"" << json_escape(file) << "\", \"topk\": [";
    for (size_t i = 0; i < top.size(); ++i) {
      std::printf("%s{\"index\": %ld, \"name\": \"%s\", \"prob\": %.6f}", i ? ", " : "", static_cast<long>(top[i].index),
                  json_escape(top[i].name).c_str(), top[i].probability);
      std::fflush(stdout);
    }
    std::cout << "]}" << std::endl;
    return;
  }
  std::cout << file << "\n";
  for (const Prediction& p : top) std::printf("  %4ld  %-30s %.4f\n", static_cast<long>(p.index), p.name.c_str(), p.probability);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  const Flags flags(argc, argv,
                    {{"weights", "ResNet-50 weight file (HDF5, see docs/weights.md)"},
                     {"topk", "classes to print per input (default 5)"},
                     {"json", "one JSON object per input on its own line"},
                     {"threads", "CPU threads (default: all cores)"},
                     {"device", "cpu (default), cuda or cuda:N (a --config=cuda build)"},
                     {"crop", "square (default: centre square, resize 224) or resize256 (shorter side 256, crop 224)"},
                     {"save_logits", "write the raw logits (N, classes) as float32 .npy"}},
                    "usage: classify --weights=FILE [flags] INPUT...   (INPUT: image file or .npy (N, 3, H, W))");
  if (flags.has("help")) {
    std::cout << flags.help();
    return 0;
  }
  MEDTL_CHECK(flags.has("weights"), "--weights=FILE is required; tools/fetch_weights.sh makes the ImageNet ResNet-50 file\n",
              flags.help());
  MEDTL_CHECK(!flags.positionals().empty(), "no INPUT given\n", flags.help());
  if (flags.has("threads")) set_num_threads(static_cast<int>(flags.get_int("threads", 1)));

  const Device device = flags.device();
  const Classifier classifier = load_classifier(flags.get("weights"));
  classifier.model->to(device);
  const CropMode crop = parse_crop_mode(flags.get("crop", "square"));
  const int64_t k = flags.get_int("topk", 5);
  ag::NoGradGuard no_grad;
  std::vector<Tensor> all_logits;
  for (const std::string& input : flags.positionals()) {
    const bool is_npy = input.size() > 4 && input.compare(input.size() - 4, 4, ".npy") == 0;
    Tensor batch;
    if (is_npy) {
      batch = data::read_npy(input);
      MEDTL_CHECK(batch.dim() == 4 && batch.size(1) == 3 && batch.dtype() == DType::Float32, "'", input,
                  "': expected a float32 array (N, 3, H, W), got ", batch.str());
    } else {
      batch = preprocess_image(input, classifier.info, crop).unsqueeze(0);
    }
    const Tensor logits = classifier.model->forward(batch.to(device)).to(Device::cpu());  // (N, classes)
    for (int64_t n = 0; n < logits.size(0); ++n) {
      const std::string name = logits.size(0) > 1 ? input + "[" + std::to_string(n) + "]" : input;
      print_predictions(name, top_k(logits.select(0, n), k, classifier.class_names), flags.get_bool("json"));
    }
    all_logits.push_back(logits);
  }
  if (flags.has("save_logits")) {
    int64_t rows = 0;
    for (const Tensor& l : all_logits) rows += l.size(0);
    Tensor stacked = empty({rows, all_logits[0].size(1)});
    int64_t at = 0;
    for (const Tensor& l : all_logits) {
      ops::copy_(stacked.narrow(0, at, l.size(0)), l);
      at += l.size(0);
    }
    data::write_npy(flags.get("save_logits"), stacked);
  }
  return 0;
}

}  // namespace
}  // namespace medtl::experiments

int main(int argc, char** argv) {
  try {
    return medtl::experiments::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "classify: error: " << e.what() << std::endl;
    return 1;
  }
}
