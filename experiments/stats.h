// The benchmark's statistics: ROC AUC (sklearn's roc_auc_score, ties by the Mann-Whitney rank
// formula), mean AUC over classes, mean and standard deviations over runs, two-sided independent
// two-sample t-tests (Student and Welch) with p-values from our own Student t CDF, and the
// paper's significance marks. Plain std::vector<double> in, numbers out; no tensors.
//
// Conventions, all from ../shared/reference/paper-protocol.md section 6:
// - The paper reports mean ± population std (np.std, ddof 0) over 10 runs; sample std (ddof 1)
//   is given too because it is what the t-tests use.
// - Which t-test the paper ran is not recoverable from its published numbers, so both Student
//   (pooled variance, scipy.stats.ttest_ind default) and Welch (equal_var=False) are provided.
// - Fig. 2 legend: n.s. p >= 0.05, * p < 0.05, ** p < 0.01, *** p < 0.0001. There is NO separate
//   p < 0.001 level: 0.0001 <= p < 0.01 is "**". Bars significantly *below* the baseline carry no
//   mark in Fig. 2 (see paper_fig2_mark).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medtl::experiments::stats {

// ---- ROC AUC -------------------------------------------------------------------------------

// Area under the ROC curve of `scores` for binary `labels` (each 0 or 1), equal to
// sklearn.metrics.roc_auc_score: AUC = (R+ - P(P+1)/2) / (P N), where R+ is the sum of the
// positives' ranks and tied scores share their average rank (a tied positive/negative pair counts
// one half). Throws medtl::Error when the lengths differ, a label is not 0/1, a score is NaN, or
// only one class is present -- sklearn raises there too; the message names the class present.
// (An error, not NaN, because a per-class NaN would silently poison a mean; use mean_auc for
// multi-label data, which skips such classes and says so.)
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);

struct MeanAuc {
  double mean = 0.0;                       // mean over the classes that were evaluated
  std::vector<double> per_class;           // one per requested class; NaN where skipped
  std::vector<int64_t> evaluated;          // class indices averaged over
  std::vector<int64_t> skipped;            // class indices without both labels in the data
  std::string note;                        // empty, or says which classes were skipped and why
};

// Mean AUC over classes for multi-label data. `scores` and `labels` are row-major (N, C) with
// C = num_classes. `classes` picks which class indices to average (empty = all; CheXpert's test
// metric averages 5 of its 14 outputs). A class whose labels are all 0 or all 1 in the data is
// skipped, listed in `skipped`, and described in `note` (never silently); if every requested class
// is skipped this throws. `class_names`, when given (size C), are used in the note.
MeanAuc mean_auc(const std::vector<double>& scores, const std::vector<int>& labels, int64_t num_classes,
                 const std::vector<int64_t>& classes = {}, const std::vector<std::string>& class_names = {});

// ---- Moments over runs ---------------------------------------------------------------------

double mean(const std::vector<double>& values);         // throws on an empty vector
double pop_std(const std::vector<double>& values);      // ddof 0, as np.std; 0 for one value
double sample_std(const std::vector<double>& values);   // ddof 1; NaN for one value (as NumPy)
double sample_var(const std::vector<double>& values);   // ddof 1; NaN for one value

// ---- Student t distribution ----------------------------------------------------------------

// Regularized incomplete beta I_x(a, b), a, b > 0, 0 <= x <= 1. Continued fraction evaluated
// with the modified Lentz method (Numerical Recipes 6.4), using the symmetry
// I_x(a,b) = 1 - I_{1-x}(b,a) where the fraction converges faster. Relative accuracy ~1e-14.
double regularized_incomplete_beta(double a, double b, double x);

// P(T <= t) for Student's t with `df` > 0 degrees of freedom (df may be fractional, as Welch's).
double student_t_cdf(double t, double df);

// Two-sided p-value P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2), computed directly (no 1 - cdf
// cancellation), so tiny p-values keep their relative precision. t = ±inf gives 0; NaN gives NaN.
double student_t_two_sided_p(double t, double df);

// ---- Two-sample t-tests --------------------------------------------------------------------

enum class TTestKind { Student, Welch };
const char* ttest_name(TTestKind kind);  // "student" | "welch"

struct TTest {
  double t = 0.0;   // (mean(a) - mean(b)) / standard error; positive when a has the larger mean
  double df = 0.0;  // Student: na + nb - 2; Welch: Welch-Satterthwaite (fractional)
  double p = 0.0;   // two-sided
  std::string note; // empty when the test is defined; else why t/df/p are NaN or degenerate
};

// Independent two-sample, two-sided tests, matching scipy.stats.ttest_ind(a, b, equal_var=...).
// Undefined cases do not throw (a report over a 1-run smoke preset must still be written):
// - a group with fewer than 2 values: t, df, p are NaN and `note` says so;
// - zero variance in both groups: equal means give t = p = NaN ("no variation"), different means
//   give t = ±inf, p = 0 (scipy gives the same), with a note either way.
TTest student_ttest(const std::vector<double>& a, const std::vector<double>& b);
TTest welch_ttest(const std::vector<double>& a, const std::vector<double>& b);
TTest ttest(const std::vector<double>& a, const std::vector<double>& b, TTestKind kind);

// ---- Significance marks (paper, Fig. 2 legend) ---------------------------------------------

constexpr double kAlpha = 0.05;
// "***" p < 0.0001, "**" p < 0.01, "*" p < 0.05, "n.s." otherwise, "n/a" for NaN. Direction-free.
std::string significance_mark(double p);
// Fig. 2 convention: bars significantly above the baseline get stars, n.s. bars get "n.s.", bars
// significantly *below* it get no mark (""). `diff` = mean(model) - mean(baseline).
std::string paper_fig2_mark(double p, double diff);

}  // namespace medtl::experiments::stats
