// Private to //experiments:report: the number formatting shared by the SVG charts and report.cc.
#pragma once

#include <string>

#include "experiments/report.h"

// bar_chart_svg itself is declared in report.h (the public API) and defined in report_svg.cc.
// The two helpers below are defined in report.cc, so the figures and report.md round and mark
// numbers the same way.
namespace medtl::experiments::report::internal {

// `v` with `decimals` digits after the point; "nan" for NaN; never "-0.00" (a sign that is not there).
std::string fixed(double v, int decimals);

// Direction-aware mark for the text and figures: stars get an arrow when the source is
// significantly *below* the reference (the paper's Fig. 2 leaves those bars unmarked).
// "" where there is no comparison.
std::string directional_mark(const Comparison& c);

}  // namespace medtl::experiments::report::internal
