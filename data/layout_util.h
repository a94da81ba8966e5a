// Small helpers shared by the layout readers (classification.cc, segmentation.cc, medmnist.cc):
// the image extensions a folder listing keeps, string joining, and the bad-entry rule.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"

namespace medtl::data {

// Extensions of the files load_image decodes, lower-case with the dot.
inline const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                                      ".tif", ".tiff", ".dcm", ".pgm", ".ppm"};
  return extensions;
}

inline std::string join_strings(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// A bad entry met while a layout is read: throws "<source>: <problem>" under OnBadSample::Throw,
// else records it in the log (the dataset's skipped()) and the caller leaves the entry out.
struct BadEntry {
  OnBadSample policy;
  BadSampleLog* log;
  void operator()(const std::string& source, const std::string& problem) const {
    if (policy == OnBadSample::Throw) throw Error(source + ": " + problem);
    log->add(source, problem);
  }
};

}  // namespace medtl::data
