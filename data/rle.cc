// Kaggle run-length encodings <-> binary masks.
#include "data/rle.h"

#include <sstream>
#include <vector>

namespace medtl::data {

void rle_paint(const std::string& rle, Tensor& mask, const RleFormat& format, const std::string& what) {
  MEDTL_CHECK(mask.dim() == 3 && mask.size(0) == 1 && mask.dtype() == DType::Float32 && mask.is_contiguous(),
              what, ": rle_paint needs a contiguous float32 (1, H, W) mask, got ", mask.str());
  const int64_t h = mask.size(1), w = mask.size(2), total = h * w;
  std::istringstream in(rle);
  std::vector<int64_t> numbers;
  std::string token;
  while (in >> token) {
    if (numbers.empty() && token == "-1") {
      std::string rest;
      MEDTL_CHECK(!(in >> rest), what, ": '-1' (empty mask) followed by more numbers");
      return;
    }
    size_t used = 0;
    int64_t v = -1;
    try { v = std::stoll(token, &used); } catch (...) { used = 0; }
    MEDTL_CHECK(used == token.size() && v >= 0, what, ": '", token, "' is not a non-negative integer");
    numbers.push_back(v);
  }
  MEDTL_CHECK(numbers.size() % 2 == 0, what, ": ", numbers.size(), " numbers; start/length pairs need an even count");
  float* m = mask.data<float>();
  int64_t position = 0;  // end of the previous run (relative starts)
  for (size_t k = 0; k < numbers.size(); k += 2) {
    int64_t start = numbers[k];
    const int64_t length = numbers[k + 1];
    if (format.one_based) {
      MEDTL_CHECK(start >= 1, what, ": start ", start, " in a 1-based encoding");
      start -= 1;
    }
    if (format.relative_starts) start += position;
    MEDTL_CHECK(start + length <= total, what, ": run ", k / 2, " (pixels ", start, "..", start + length - 1,
                ") goes beyond the ", h, "x", w, " image (", total, " pixels)");
    for (int64_t p = start; p < start + length; ++p) {
      const int64_t index = format.column_major ? (p % h) * w + p / h : p;
      m[index] = 1.0f;
    }
    position = start + length;
  }
}

Tensor rle_decode(const std::string& rle, int64_t height, int64_t width, const RleFormat& format,
                  const std::string& what) {
  MEDTL_CHECK(height > 0 && width > 0, what, ": mask size ", height, "x", width);
  Tensor mask = zeros({1, height, width});
  rle_paint(rle, mask, format, what);
  return mask;
}

std::string rle_encode(const Tensor& mask, const RleFormat& format) {
  MEDTL_CHECK(mask.dim() == 2 || (mask.dim() == 3 && mask.size(0) == 1), "rle_encode: expected (1, H, W) or (H, W), got ",
              shape_str(mask.shape()));
  const Tensor m = (mask.dim() == 3 ? mask.select(0, 0) : mask).to(DType::Float32).contiguous();
  const int64_t h = m.size(0), w = m.size(1), total = h * w;
  const float* p = m.data<float>();
  std::ostringstream out;
  int64_t previous_end = 0, run_start = -1;
  bool any = false;
  auto emit = [&](int64_t start, int64_t end) {
    const int64_t s = (format.relative_starts ? start - previous_end : start) + (format.one_based ? 1 : 0);
    out << (any ? " " : "") << s << " " << (end - start);
    previous_end = end;
    any = true;
  };
  for (int64_t q = 0; q <= total; ++q) {
    const bool on = q < total && p[format.column_major ? (q % h) * w + q / h : q] != 0.0f;
    if (on && run_start < 0) run_start = q;
    if (!on && run_start >= 0) { emit(run_start, q); run_start = -1; }
  }
  return any ? out.str() : "-1";
}

}  // namespace medtl::data
