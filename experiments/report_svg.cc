// The SVG bar chart of one (target, metric) column in the paper's Fig. 2 style: bar_chart_svg,
// declared in report.h. Hand-written SVG, a deterministic function of the summary.
#include "experiments/report_svg.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "experiments/report.h"
#include "experiments/stats.h"
#include "tensor/error.h"

namespace medtl::experiments::report {
namespace {

using internal::directional_mark;
using internal::fixed;

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string px(double v) { return fixed(v, 1); }

// A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) near range / target_ticks.
double nice_step(double range, int target_ticks) {
  const double raw = range / target_ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (f * mag >= raw) return f * mag;
  return 10.0 * mag;
}

int step_decimals(double step) {
  int d = 0;
  while (d < 8 && std::fabs(step * std::pow(10.0, d) - std::round(step * std::pow(10.0, d))) > 1e-6) ++d;
  return d;
}

}  // namespace

std::string bar_chart_svg(const Summary& s, size_t column) {
  MEDTL_CHECK(column < s.columns.size(), "bar_chart_svg: column ", column, " of ", s.columns.size());
  const ColumnSummary& col = s.columns[column];
  const ReportOptions& o = s.options;
  const double k = o.display_scale;
  const int nbars = static_cast<int>(col.cells.size());
  const std::string font = "DejaVu Sans, Helvetica, Arial, sans-serif";
  const std::string test = o.primary_test == stats::TTestKind::Student ? "Student" : "Welch";

  // Layout. Labels are horizontal if every name fits its slot, else rotated by 30 degrees; the
  // left margin then grows so the first label is not cut off. Below the labels: the legend.
  constexpr double kCharW = 8.4;  // generous width of a 14px character (DejaVu Sans is wide)
  const double width = std::max(900.0, 160.0 + 52.0 * nbars);
  const double right = 36, top = 104;
  double left = 84;
  size_t longest = 0;
  for (const CellSummary& c : col.cells) longest = std::max(longest, utf8_length(c.source));
  const bool rotate = longest * kCharW > (width - left - right) / std::max(1, nbars) * 0.95;
  if (rotate && nbars > 0) {
    const double first = utf8_length(col.cells[0].source) * kCharW * 0.866;
    left = std::max(left, first - 0.5 * (width - left - right) / nbars + 14);
  }
  const double label_h = rotate ? 0.5 * kCharW * longest + 16 : 22;
  const double bottom = 30 + label_h + 40;  // n line, labels, legend
  const double height = std::max(520.0, top + 320 + bottom);
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  const double x0 = left, y_bottom = height - bottom;

  // Value range in display units: every mean ± std, every run and the baseline, padded.
  double lo = INFINITY, hi = -INFINITY;
  std::set<int64_t> ns;
  bool all_nonneg = true, all_le_100 = true;
  for (const CellSummary& c : col.cells) {
    if (c.n == 0) continue;
    ns.insert(c.n);
    lo = std::min(lo, (c.mean - c.std_pop) * k);
    hi = std::max(hi, (c.mean + c.std_pop) * k);
    for (double v : c.values) {
      lo = std::min(lo, v * k), hi = std::max(hi, v * k);
      all_nonneg &= v >= 0, all_le_100 &= v * k <= 100.0;
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  double span = hi - lo;
  if (span <= 0) span = std::max(std::fabs(hi), 1.0) * 0.02;
  const double step = nice_step(span * 1.6, 6);
  double axis_lo = std::floor((lo - 0.35 * span) / step) * step;
  double axis_hi = std::ceil((hi + 0.25 * span) / step) * step;
  if (all_nonneg && axis_lo < 0) axis_lo = 0;
  if (k == 100.0 && all_le_100 && axis_hi > 100.0) axis_hi = 100.0;
  const auto y_of = [&](double v) {
    const double t = (v - axis_lo) / (axis_hi - axis_lo);
    return y_bottom - std::clamp(t, -0.02, 1.02) * plot_h;
  };

  std::string g;
  g += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(width) + "\" height=\"" + px(height) +
       "\" viewBox=\"0 0 " + px(width) + " " + px(height) + "\" font-family=\"" + font + "\">\n";
  const std::string title = col.target + " — " + col.metric + (k == 100.0 ? " (%)" : "");
  g += "<title>" + xml_escape(title) + "</title>\n";
  g += "<rect x=\"0\" y=\"0\" width=\"" + px(width) + "\" height=\"" + px(height) + "\" fill=\"#ffffff\"/>\n";
  g += "<text x=\"" + px(width / 2) + "\" y=\"32\" text-anchor=\"middle\" font-size=\"21\" font-weight=\"bold\" "
       "fill=\"#111\">" + xml_escape(title) + "</text>\n";
  std::string n_text = ns.empty() ? "no finished runs"
                       : ns.size() == 1 ? std::to_string(*ns.begin()) + " runs"
                                        : std::to_string(*ns.begin()) + "–" + std::to_string(*ns.rbegin()) + " runs";
  std::string subtitle = "Bars: mean, whiskers: ± std (population) over " + n_text + ", dots: single runs.";
  g += "<text x=\"" + px(width / 2) + "\" y=\"56\" text-anchor=\"middle\" font-size=\"14\" fill=\"#333\">" +
       xml_escape(subtitle) + "</text>\n";
  std::string marks_line =
      col.has_baseline ? "Marks: two-sided " + test + " t-test vs " + o.baseline +
                             ": n.s. p≥0.05, * p<0.05, ** p<0.01, *** p<0.0001, ↓ significantly below"
                       : o.baseline + " was not evaluated on this target: no marks";
  g += "<text x=\"" + px(width / 2) + "\" y=\"76\" text-anchor=\"middle\" font-size=\"14\" fill=\"#333\">" +
       xml_escape(marks_line) + "</text>\n";
  if (col.has_baseline) {  // legend for the baseline line and band, centred under the labels
    const std::string text = o.baseline + " mean " + fixed(col.baseline_mean * k, o.decimals) + ", band: ± std";
    const double text_w = utf8_length(text) * 7.2, lx = width / 2 - (text_w + 44) / 2, ly = height - 16;
    g += "<rect x=\"" + px(lx) + "\" y=\"" + px(ly - 13) + "\" width=\"34\" height=\"14\" fill=\"#DD8452\" "
         "fill-opacity=\"0.16\"/>\n";
    g += "<line x1=\"" + px(lx) + "\" y1=\"" + px(ly - 6) + "\" x2=\"" + px(lx + 34) + "\" y2=\"" + px(ly - 6) +
         "\" stroke=\"#DD8452\" stroke-width=\"2.5\" stroke-dasharray=\"7 4\"/>\n";
    g += "<text x=\"" + px(lx + 44) + "\" y=\"" + px(ly) + "\" font-size=\"14\" fill=\"#333\">" + xml_escape(text) +
         "</text>\n";
  }

  // Grid, y ticks and axis.
  const int nticks = static_cast<int>(std::lround((axis_hi - axis_lo) / step));
  const int tick_dec = step_decimals(step);
  for (int i = 0; i <= nticks; ++i) {
    const double v = axis_lo + i * step;
    if (v > axis_hi + 1e-9 * step) break;
    const double y = y_of(v);
    g += "<line x1=\"" + px(x0) + "\" y1=\"" + px(y) + "\" x2=\"" + px(x0 + plot_w) + "\" y2=\"" + px(y) +
         "\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n";
    g += "<line x1=\"" + px(x0 - 6) + "\" y1=\"" + px(y) + "\" x2=\"" + px(x0) + "\" y2=\"" + px(y) +
         "\" stroke=\"#222\" stroke-width=\"1.2\"/>\n";
    g += "<text x=\"" + px(x0 - 10) + "\" y=\"" + px(y + 5) + "\" text-anchor=\"end\" font-size=\"14\" fill=\"#222\">" +
         fixed(v, tick_dec) + "</text>\n";
  }
  const std::string ylabel = col.metric + (k == 100.0 ? " (%)" : "");
  g += "<text transform=\"translate(" + px(std::max(24.0, x0 - 62)) + " " + px(top + plot_h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" font-size=\"15\" fill=\"#222\">" + xml_escape(ylabel) + "</text>\n";

  if (col.has_baseline) {  // the paper's shaded band: baseline mean ± std
    const CellSummary* base = col.find(o.baseline);
    const double y1 = y_of((base->mean + base->std_pop) * k), y2 = y_of((base->mean - base->std_pop) * k);
    g += "<rect x=\"" + px(x0) + "\" y=\"" + px(y1) + "\" width=\"" + px(plot_w) + "\" height=\"" + px(y2 - y1) +
         "\" fill=\"#DD8452\" fill-opacity=\"0.16\"/>\n";
  }

  // Bars, whiskers, dots, marks, labels.
  const double slot = plot_w / std::max(1, nbars);
  const double bar_w = std::min(slot * 0.62, 90.0);
  for (int i = 0; i < nbars; ++i) {
    const CellSummary& c = col.cells[i];
    const double cx = x0 + slot * (i + 0.5);
    if (c.n > 0) {
      const double ym = y_of(c.mean * k);
      const std::string fill = c.is_baseline ? "#DD8452" : "#4C72B0";
      g += "<rect x=\"" + px(cx - bar_w / 2) + "\" y=\"" + px(ym) + "\" width=\"" + px(bar_w) + "\" height=\"" +
           px(y_bottom - ym) + "\" fill=\"" + fill + "\" fill-opacity=\"0.85\"" +
           (c.is_best ? " stroke=\"#111\" stroke-width=\"2\"" : "") + "/>\n";
      const std::string mean_text = fixed(c.mean * k, o.decimals);
      if (utf8_length(mean_text) * 8.0 + 6 <= bar_w)  // only where it fits inside the bar
        g += "<text x=\"" + px(cx) + "\" y=\"" + px(y_bottom - 8) + "\" text-anchor=\"middle\" font-size=\"13\" "
             "fill=\"#ffffff\" font-weight=\"bold\">" + mean_text + "</text>\n";
      const double y_hi = y_of((c.mean + c.std_pop) * k), y_lo = y_of((c.mean - c.std_pop) * k);
      const double cap = bar_w * 0.18;
      g += "<path d=\"M" + px(cx) + " " + px(y_lo) + "V" + px(y_hi) + "M" + px(cx - cap) + " " + px(y_hi) + "H" +
           px(cx + cap) + "M" + px(cx - cap) + " " + px(y_lo) + "H" + px(cx + cap) +
           "\" stroke=\"#1a1a1a\" stroke-width=\"1.6\" fill=\"none\"/>\n";
      double y_top = y_hi;
      for (size_t r = 0; r < c.values.size(); ++r) {
        // Deterministic spread across the bar so equal values stay visible.
        const double f = c.values.size() == 1 ? 0.0 : -0.5 + static_cast<double>(r) / (c.values.size() - 1);
        const double dx = f * bar_w * 0.5, dy = y_of(c.values[r] * k);
        y_top = std::min(y_top, dy);
        g += "<circle cx=\"" + px(cx + dx) + "\" cy=\"" + px(dy) +
             "\" r=\"3.6\" fill=\"#111\" fill-opacity=\"0.7\" stroke=\"#ffffff\" stroke-width=\"0.8\"/>\n";
      }
      std::string mark, color = "#111";
      if (c.is_baseline) {
        mark = "baseline", color = "#A0522D";
      } else if (c.vs_baseline.present) {
        mark = directional_mark(c.vs_baseline);
        if (mark == "n.s." || mark == "n/a") color = "#555";
        else if (c.vs_baseline.diff < 0) color = "#C44E52";
      }
      if (!mark.empty()) {
        const bool stars = mark.find('*') != std::string::npos;
        const char* size = stars ? "18" : (mark.size() * 8.0 > slot ? "11" : "13");
        g += "<text x=\"" + px(cx) + "\" y=\"" + px(y_top - 9) + "\" text-anchor=\"middle\" font-size=\"" + size +
             "\" font-weight=\"bold\" fill=\"" + color + "\">" + xml_escape(mark) + "</text>\n";
      }
    } else {
      g += "<text x=\"" + px(cx) + "\" y=\"" + px(y_bottom - 10) + "\" text-anchor=\"middle\" font-size=\"13\" "
           "fill=\"#C44E52\">all runs failed</text>\n";
    }
    const std::string n_line = "n=" + std::to_string(c.n) + (c.failed ? " · " + std::to_string(c.failed) + " failed" : "");
    g += "<text x=\"" + px(cx) + "\" y=\"" + px(y_bottom + 16) + "\" text-anchor=\"middle\" font-size=\"11\" fill=\"" +
         (c.failed ? "#C44E52" : "#666") + "\">" + n_line + "</text>\n";
    const std::string weight = c.is_best ? " font-weight=\"bold\"" : "";
    if (rotate) {
      const double ly = y_bottom + 36;
      g += "<text x=\"" + px(cx + 4) + "\" y=\"" + px(ly) + "\" text-anchor=\"end\" font-size=\"14\" fill=\"#111\"" +
           weight + " transform=\"rotate(-30 " + px(cx + 4) + " " + px(ly) + ")\">" + xml_escape(c.source) + "</text>\n";
    } else {
      g += "<text x=\"" + px(cx) + "\" y=\"" + px(y_bottom + 36) + "\" text-anchor=\"middle\" font-size=\"14\" "
           "fill=\"#111\"" + weight + ">" + xml_escape(c.source) + "</text>\n";
    }
  }
  if (col.has_baseline) {
    const double yb = y_of(col.baseline_mean * k);
    g += "<line x1=\"" + px(x0) + "\" y1=\"" + px(yb) + "\" x2=\"" + px(x0 + plot_w) + "\" y2=\"" + px(yb) +
         "\" stroke=\"#DD8452\" stroke-width=\"2.5\" stroke-dasharray=\"7 4\"/>\n";
  }
  // Axes on top of the bars.
  g += "<path d=\"M" + px(x0) + " " + px(top) + "V" + px(y_bottom) + "H" + px(x0 + plot_w) +
       "\" stroke=\"#222\" stroke-width=\"1.4\" fill=\"none\"/>\n";
  g += "</svg>\n";
  return g;
}

}  // namespace medtl::experiments::report
