// ROC AUC, moments over runs, the Student t distribution and two-sample t-tests (see stats.h).
#include "experiments/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "tensor/error.h"

namespace medtl::experiments::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// AUC of one class given as a strided column of (scores, labels); labels already validated 0/1.
// Positives and negatives are counted by the caller and both non-zero.
double auc_ranked(std::vector<std::pair<double, int>>& pairs, int64_t positives, int64_t negatives) {
  std::sort(pairs.begin(), pairs.end(),
            [](const std::pair<double, int>& x, const std::pair<double, int>& y) { return x.first < y.first; });
  // Ranks are 1-based; a run of ties [i, j) shares the average rank (i + 1 + j) / 2. Sums of
  // half-integers below 2^52 are exact in double, so the result does not depend on tie order.
  double rank_sum_pos = 0.0;
  const size_t n = pairs.size();
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && pairs[j].first == pairs[i].first) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);
    int64_t pos_in_run = 0;
    for (size_t k = i; k < j; ++k) pos_in_run += pairs[k].second;
    rank_sum_pos += avg_rank * static_cast<double>(pos_in_run);
    i = j;
  }
  const double p = static_cast<double>(positives), q = static_cast<double>(negatives);
  return (rank_sum_pos - p * (p + 1.0) / 2.0) / (p * q);
}

// Continued fraction for I_x(a, b) (Numerical Recipes 6.4, modified Lentz).
double beta_continued_fraction(double a, double b, double x) {
  constexpr int kMaxIter = 1000000;
  constexpr double kEps = 1e-15;
  constexpr double kTiny = 1e-300;
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0;
  double d = 1.0 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= kMaxIter; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));  // even step
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));  // odd step
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) return h;
  }
  MEDTL_CHECK(false, "regularized_incomplete_beta(a=", a, ", b=", b, ", x=", x, "): continued fraction did not converge in ",
              kMaxIter, " iterations");
  return kNaN;
}

// I_x(a, b) with y = 1 - x passed separately so callers can supply it without cancellation.
double ibeta(double a, double b, double x, double y) {
  if (x <= 0.0) return 0.0;
  if (y <= 0.0) return 1.0;
  // front = x^a y^b / B(a, b), in logs.
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log(y);
  const double front = std::exp(log_front);
  if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_continued_fraction(a, b, x) / a;
  return 1.0 - front * beta_continued_fraction(b, a, y) / b;
}

void check_values(const std::vector<double>& values, const char* what) {
  MEDTL_CHECK(!values.empty(), what, ": needs at least one value, got none");
}

}  // namespace

// ---- ROC AUC -------------------------------------------------------------------------------

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  MEDTL_CHECK(scores.size() == labels.size(), "roc_auc: ", scores.size(), " scores but ", labels.size(), " labels");
  std::vector<std::pair<double, int>> pairs(scores.size());
  int64_t positives = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    MEDTL_CHECK(labels[i] == 0 || labels[i] == 1, "roc_auc: label ", i, " is ", labels[i], "; labels must be 0 or 1");
    MEDTL_CHECK(!std::isnan(scores[i]), "roc_auc: score ", i, " is NaN");
    pairs[i] = {scores[i], labels[i]};
    positives += labels[i];
  }
  const int64_t negatives = static_cast<int64_t>(scores.size()) - positives;
  MEDTL_CHECK(positives > 0 && negatives > 0, "roc_auc: only one class present in the labels (class ",
              positives > 0 ? 1 : 0, ", ", scores.size(),
              " samples); ROC AUC is not defined in that case (sklearn raises too). Evaluate on data with both "
              "classes, or use mean_auc, which skips and reports such classes");
  return auc_ranked(pairs, positives, negatives);
}

MeanAuc mean_auc(const std::vector<double>& scores, const std::vector<int>& labels, int64_t num_classes,
                 const std::vector<int64_t>& classes, const std::vector<std::string>& class_names) {
  MEDTL_CHECK(num_classes > 0, "mean_auc: num_classes must be positive, got ", num_classes);
  MEDTL_CHECK(scores.size() == labels.size(), "mean_auc: ", scores.size(), " scores but ", labels.size(), " labels");
  MEDTL_CHECK(scores.size() % static_cast<size_t>(num_classes) == 0, "mean_auc: ", scores.size(),
              " values is not a multiple of num_classes ", num_classes, " (expected row-major (N, C))");
  MEDTL_CHECK(class_names.empty() || static_cast<int64_t>(class_names.size()) == num_classes, "mean_auc: ",
              class_names.size(), " class names for ", num_classes, " classes");
  const int64_t n = static_cast<int64_t>(scores.size()) / num_classes;
  std::vector<int64_t> wanted = classes;
  if (wanted.empty()) {
    wanted.resize(num_classes);
    std::iota(wanted.begin(), wanted.end(), int64_t{0});
  }
  MeanAuc result;
  result.per_class.assign(wanted.size(), kNaN);
  double sum = 0.0;
  std::vector<std::pair<double, int>> pairs(n);
  for (size_t w = 0; w < wanted.size(); ++w) {
    const int64_t c = wanted[w];
    MEDTL_CHECK(c >= 0 && c < num_classes, "mean_auc: class index ", c, " out of range [0, ", num_classes, ")");
    int64_t positives = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int label = labels[i * num_classes + c];
      const double score = scores[i * num_classes + c];
      MEDTL_CHECK(label == 0 || label == 1, "mean_auc: label (row ", i, ", class ", c, ") is ", label,
                  "; labels must be 0 or 1");
      MEDTL_CHECK(!std::isnan(score), "mean_auc: score (row ", i, ", class ", c, ") is NaN");
      pairs[i] = {score, label};
      positives += label;
    }
    const int64_t negatives = n - positives;
    if (positives == 0 || negatives == 0) {
      result.skipped.push_back(c);
      if (!result.note.empty()) result.note += "; ";
      result.note += str_cat("class ", c, class_names.empty() ? "" : " (" + class_names[c] + ")", ": only label ",
                             positives > 0 ? 1 : 0, " present in ", n, " samples, AUC undefined, skipped");
      continue;
    }
    result.per_class[w] = auc_ranked(pairs, positives, negatives);
    result.evaluated.push_back(c);
    sum += result.per_class[w];
  }
  MEDTL_CHECK(!result.evaluated.empty(), "mean_auc: no requested class has both labels present: ", result.note);
  result.mean = sum / static_cast<double>(result.evaluated.size());
  if (!result.skipped.empty())
    result.note = str_cat("mean over ", result.evaluated.size(), " of ", wanted.size(), " classes; ", result.note);
  return result;
}

// ---- Moments -------------------------------------------------------------------------------

double mean(const std::vector<double>& values) {
  check_values(values, "mean");
  if (std::all_of(values.begin(), values.end(), [&](double v) { return v == values[0]; })) return values[0];
  double sum = 0.0;
  for (double v : values) sum += v;
  const double n = static_cast<double>(values.size());
  double m = sum / n;
  double residual = 0.0;  // one refinement pass: exact for well-conditioned data
  for (double v : values) residual += v - m;
  return m + residual / n;
}

namespace {
double sum_squared_deviations(const std::vector<double>& values) {
  const double m = mean(values);
  double ss = 0.0;
  for (double v : values) ss += (v - m) * (v - m);
  return ss;
}
}  // namespace

double pop_std(const std::vector<double>& values) {
  check_values(values, "pop_std");
  return std::sqrt(sum_squared_deviations(values) / static_cast<double>(values.size()));
}

double sample_var(const std::vector<double>& values) {
  check_values(values, "sample_var");
  if (values.size() < 2) return kNaN;
  return sum_squared_deviations(values) / static_cast<double>(values.size() - 1);
}

double sample_std(const std::vector<double>& values) { return std::sqrt(sample_var(values)); }

// ---- Student t -----------------------------------------------------------------------------

double regularized_incomplete_beta(double a, double b, double x) {
  MEDTL_CHECK(a > 0.0 && b > 0.0, "regularized_incomplete_beta: a and b must be positive, got a=", a, ", b=", b);
  MEDTL_CHECK(x >= 0.0 && x <= 1.0, "regularized_incomplete_beta: x must be in [0, 1], got ", x);
  return ibeta(a, b, x, 1.0 - x);
}

double student_t_two_sided_p(double t, double df) {
  MEDTL_CHECK(df > 0.0, "student_t_two_sided_p: df must be positive, got ", df);
  if (std::isnan(t)) return kNaN;
  if (std::isinf(t)) return 0.0;
  if (std::isinf(df)) return std::erfc(std::fabs(t) / std::sqrt(2.0));
  const double t2 = t * t;
  // x = df / (df + t^2) and 1 - x = t^2 / (df + t^2), both without cancellation.
  return ibeta(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2));
}

double student_t_cdf(double t, double df) {
  const double p = student_t_two_sided_p(t, df);
  if (std::isnan(p)) return kNaN;
  return t > 0.0 ? 1.0 - 0.5 * p : 0.5 * p;
}

// ---- t-tests -------------------------------------------------------------------------------

const char* ttest_name(TTestKind kind) { return kind == TTestKind::Student ? "student" : "welch"; }

TTest ttest(const std::vector<double>& a, const std::vector<double>& b, TTestKind kind) {
  TTest r;
  const size_t na = a.size(), nb = b.size();
  if (na < 2 || nb < 2) {
    r.t = r.df = r.p = kNaN;
    r.note = str_cat("undefined: needs at least 2 values per group, got ", na, " and ", nb);
    return r;
  }
  const double ma = mean(a), mb = mean(b), va = sample_var(a), vb = sample_var(b);
  const double fa = static_cast<double>(na), fb = static_cast<double>(nb);
  double se2 = 0.0;
  if (kind == TTestKind::Student) {
    r.df = fa + fb - 2.0;
    const double pooled = ((fa - 1.0) * va + (fb - 1.0) * vb) / r.df;
    se2 = pooled * (1.0 / fa + 1.0 / fb);
  } else {
    const double ea = va / fa, eb = vb / fb;
    se2 = ea + eb;
    r.df = se2 * se2 / (ea * ea / (fa - 1.0) + eb * eb / (fb - 1.0));
  }
  const double diff = ma - mb;
  if (se2 == 0.0) {  // both groups constant
    if (kind == TTestKind::Welch) r.df = kNaN;
    if (diff == 0.0) {
      r.t = r.p = kNaN;
      r.note = "undefined: both groups are constant and equal (no variation)";
    } else {
      r.t = diff > 0.0 ? kInf : -kInf;
      r.p = 0.0;
      r.note = "degenerate: both groups are constant, with different values";
    }
    return r;
  }
  r.t = diff / std::sqrt(se2);
  r.p = student_t_two_sided_p(r.t, r.df);
  return r;
}

TTest student_ttest(const std::vector<double>& a, const std::vector<double>& b) {
  return ttest(a, b, TTestKind::Student);
}
TTest welch_ttest(const std::vector<double>& a, const std::vector<double>& b) { return ttest(a, b, TTestKind::Welch); }

// ---- Marks ---------------------------------------------------------------------------------

std::string significance_mark(double p) {
  if (std::isnan(p)) return "n/a";
  if (p < 0.0001) return "***";
  if (p < 0.01) return "**";
  if (p < kAlpha) return "*";
  return "n.s.";
}

std::string paper_fig2_mark(double p, double diff) {
  if (std::isnan(p)) return "n/a";
  if (p >= kAlpha) return "n.s.";
  return diff < 0.0 ? "" : significance_mark(p);
}

}  // namespace medtl::experiments::stats
