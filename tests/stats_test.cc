// Tests of experiments/stats: ROC AUC with ties against hand-computed cases and a brute-force
// pair count, mean AUC with skipped classes, moments, the incomplete beta and Student t
// distribution against published table values and scipy, t-tests against scipy.stats.ttest_ind,
// and the paper's significance marks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "experiments/stats.h"
#include "tensor/error.h"

namespace medtl {
namespace {

namespace st = experiments::stats;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- ROC AUC --------------------------------------------------------------------------------

TEST(RocAuc, HandCaseWithoutTies) {
  // Sorted: 0.1(-) 0.35(+) 0.4(-) 0.8(+): positive ranks 2 + 4 = 6; (6 - 3) / (2 * 2) = 0.75.
  EXPECT_DOUBLE_EQ(st::roc_auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75);
}

TEST(RocAuc, PerfectAndInverted) {
  EXPECT_DOUBLE_EQ(st::roc_auc({0.1, 0.2, 0.8, 0.9}, {0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(st::roc_auc({0.9, 0.8, 0.2, 0.1}, {0, 0, 1, 1}), 0.0);
}

TEST(RocAuc, AllTiedScoresGiveOneHalf) {
  EXPECT_DOUBLE_EQ(st::roc_auc({0.3, 0.3, 0.3, 0.3, 0.3}, {0, 1, 0, 1, 1}), 0.5);
}

TEST(RocAuc, TiesAcrossClassesCountOneHalf) {
  // Scores [0.5(+), 0.5(-), 0.2(-), 0.9(+)]. Pairs (pos, neg): (0.5,0.5) tie = 0.5, (0.5,0.2) = 1,
  // (0.9,0.5) = 1, (0.9,0.2) = 1 -> 3.5 / 4 = 0.875. Ranks: 0.2 -> 1, 0.5 x2 -> 2.5, 0.9 -> 4;
  // positives 2.5 + 4 = 6.5; (6.5 - 3) / 4 = 0.875.
  EXPECT_DOUBLE_EQ(st::roc_auc({0.5, 0.5, 0.2, 0.9}, {1, 0, 0, 1}), 0.875);
  // sklearn.metrics.roc_auc_score([0,0,1,1,1], [0.1,0.4,0.4,0.4,0.9]): pairs: 0.4 vs 0.1 = 1 (x2),
  // 0.4 vs 0.4 = 0.5 (x2), 0.9 vs both = 2 -> 5 / 6.
  EXPECT_DOUBLE_EQ(st::roc_auc({0.1, 0.4, 0.4, 0.4, 0.9}, {0, 0, 1, 1, 1}), 5.0 / 6.0);
}

// Independent oracle: P(score+ > score-) + 0.5 P(tie) over all pairs.
double pair_count_auc(const std::vector<double>& s, const std::vector<int>& y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (size_t j = 0; j < s.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        den += 1;
        num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return num / den;
}

TEST(RocAuc, MatchesPairCountingOnDataWithManyTies) {
  uint64_t state = 12345;
  auto next = [&]() {  // a small LCG: deterministic test data
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 5 + static_cast<int>(next() % 200);
    std::vector<double> s(n);
    std::vector<int> y(n);
    for (int i = 0; i < n; ++i) {
      s[i] = static_cast<double>(next() % 7) / 7.0;  // only 7 distinct scores: ties everywhere
      y[i] = static_cast<int>(next() % 3 == 0);
    }
    y[0] = 0, y[1] = 1;
    EXPECT_NEAR(st::roc_auc(s, y), pair_count_auc(s, y), 1e-12) << "trial " << trial;
  }
}

TEST(RocAuc, SingleClassIsAnErrorNamingTheClass) {
  try {
    st::roc_auc({0.1, 0.2, 0.3}, {1, 1, 1});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only one class present in the labels (class 1"), std::string::npos)
        << e.what();
  }
  try {
    st::roc_auc({0.1, 0.2}, {0, 0});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(class 0"), std::string::npos) << e.what();
  }
}

TEST(RocAuc, RejectsBadInput) {
  EXPECT_THROW(st::roc_auc({0.1, 0.2}, {0, 1, 1}), Error);
  EXPECT_THROW(st::roc_auc({0.1, 0.2}, {0, 2}), Error);
  EXPECT_THROW(st::roc_auc({0.1, kNaN}, {0, 1}), Error);
}

TEST(MeanAuc, AveragesClassesAndReportsSkippedOnes) {
  // 4 samples x 3 classes, row-major. Class 0: the 0.75 case; class 1: all labels 0 (skipped);
  // class 2: perfect.
  const std::vector<double> scores = {0.1, 0.5, 0.1,  //
                                      0.4, 0.5, 0.2,  //
                                      0.35, 0.5, 0.8,  //
                                      0.8, 0.5, 0.9};
  const std::vector<int> labels = {0, 0, 0,  //
                                   0, 0, 0,  //
                                   1, 0, 1,  //
                                   1, 0, 1};
  const st::MeanAuc r = st::mean_auc(scores, labels, 3, {}, {"Atelectasis", "Hernia", "Edema"});
  EXPECT_DOUBLE_EQ(r.mean, (0.75 + 1.0) / 2);
  ASSERT_EQ(r.per_class.size(), 3u);
  EXPECT_DOUBLE_EQ(r.per_class[0], 0.75);
  EXPECT_TRUE(std::isnan(r.per_class[1]));
  EXPECT_DOUBLE_EQ(r.per_class[2], 1.0);
  EXPECT_EQ(r.evaluated, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(r.skipped, (std::vector<int64_t>{1}));
  EXPECT_NE(r.note.find("mean over 2 of 3 classes"), std::string::npos) << r.note;
  EXPECT_NE(r.note.find("class 1 (Hernia): only label 0 present"), std::string::npos) << r.note;

  // A subset of classes (CheXpert evaluates 5 of its 14 outputs).
  const st::MeanAuc sub = st::mean_auc(scores, labels, 3, {2});
  EXPECT_DOUBLE_EQ(sub.mean, 1.0);
  EXPECT_TRUE(sub.note.empty());
  // Nothing left to average: an error.
  EXPECT_THROW(st::mean_auc(scores, labels, 3, {1}), Error);
  EXPECT_THROW(st::mean_auc(scores, labels, 3, {3}), Error);
  EXPECT_THROW(st::mean_auc(scores, labels, 5), Error);  // 12 values is not (N, 5)
}

// ---- Moments --------------------------------------------------------------------------------

TEST(Moments, PopulationAndSampleStd) {
  // np.mean([1,2,3,4,5]) = 3, np.std = sqrt(2), np.std(ddof=1) = sqrt(2.5).
  const std::vector<double> v = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(st::mean(v), 3.0);
  EXPECT_DOUBLE_EQ(st::pop_std(v), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(st::sample_std(v), std::sqrt(2.5));
  EXPECT_DOUBLE_EQ(st::sample_var(v), 2.5);
}

TEST(Moments, SingleValueAndConstants) {
  EXPECT_DOUBLE_EQ(st::pop_std({0.7}), 0.0);
  EXPECT_TRUE(std::isnan(st::sample_std({0.7})));
  // Constant values give exactly that mean and exactly zero spread, for any count.
  for (int n = 1; n < 12; ++n) {
    const std::vector<double> v(n, 0.8170000000000001);
    EXPECT_EQ(st::mean(v), 0.8170000000000001);
    EXPECT_EQ(st::pop_std(v), 0.0);
  }
  EXPECT_THROW(st::mean({}), Error);
}

// ---- Incomplete beta and the t distribution -------------------------------------------------

TEST(IncompleteBeta, ClosedForms) {
  for (double x : {0.0, 0.1, 0.37, 0.5, 0.9, 1.0}) {
    EXPECT_NEAR(st::regularized_incomplete_beta(1, 1, x), x, 1e-14);                         // uniform
    EXPECT_NEAR(st::regularized_incomplete_beta(3, 1, x), x * x * x, 1e-14);                 // x^a
    EXPECT_NEAR(st::regularized_incomplete_beta(1, 4, x), 1 - std::pow(1 - x, 4), 1e-14);    // 1-(1-x)^b
    EXPECT_NEAR(st::regularized_incomplete_beta(0.5, 0.5, x), 2 / M_PI * std::asin(std::sqrt(x)), 1e-13);
  }
  EXPECT_NEAR(st::regularized_incomplete_beta(7.5, 7.5, 0.5), 0.5, 1e-14);  // symmetry
}

TEST(IncompleteBeta, MatchesScipyBetainc) {
  // scipy.special.betainc(a, b, x), scipy 1.10.1.
  EXPECT_NEAR(st::regularized_incomplete_beta(2.5, 3.5, 0.3), 0.2967529892956661, 1e-13);
  EXPECT_NEAR(st::regularized_incomplete_beta(0.5, 0.5, 0.2), 0.29516723530086664, 1e-13);
  EXPECT_NEAR(st::regularized_incomplete_beta(100, 200, 0.33), 0.45661816333401317, 1e-11);
  const double tiny = st::regularized_incomplete_beta(5e5, 0.5, 0.999);
  EXPECT_NEAR(tiny / 1.3983637691220634e-219, 1.0, 1e-6);
}

TEST(IncompleteBeta, RejectsBadArguments) {
  EXPECT_THROW(st::regularized_incomplete_beta(0, 1, 0.5), Error);
  EXPECT_THROW(st::regularized_incomplete_beta(1, 1, 1.5), Error);
}

TEST(StudentT, PublishedTableValues) {
  // Critical values from standard t tables (two-sided): t_{0.975,10} = 2.228, t_{0.995,10} = 3.169,
  // t_{0.975,18} = 2.101, and the Cauchy case df = 1: P(|T| >= 1) = 0.5 exactly.
  EXPECT_NEAR(st::student_t_two_sided_p(2.228, 10), 0.05, 1e-4);
  EXPECT_NEAR(st::student_t_two_sided_p(3.169, 10), 0.01, 1e-5);
  EXPECT_NEAR(st::student_t_two_sided_p(2.101, 18), 0.05, 1e-4);
  EXPECT_NEAR(st::student_t_two_sided_p(1.0, 1), 0.5, 1e-14);
  EXPECT_NEAR(st::student_t_two_sided_p(-1.0, 1), 0.5, 1e-14);
  // Large df approaches the normal: P(|Z| >= 1.96) = 0.04999579.
  EXPECT_NEAR(st::student_t_two_sided_p(1.96, 1e6), 0.05, 1e-4);
  EXPECT_NEAR(st::student_t_two_sided_p(1.96, kInf), std::erfc(1.96 / std::sqrt(2.0)), 1e-15);
  EXPECT_DOUBLE_EQ(st::student_t_two_sided_p(0.0, 5), 1.0);
}

TEST(StudentT, MatchesScipyToManyDigits) {
  // 2 * scipy.stats.t.sf(t, df), scipy 1.10.1.
  struct Case {
    double t, df, p;
  };
  const Case cases[] = {
      {2.228, 10, 0.05001177181711133}, {3.169, 10, 0.010004633364384848}, {2.101, 18, 0.04999236287796352},
      {1.96, 1e6, 0.04999606758526978}, {10, 3, 0.0021283990584141494},    {1.5, 2.5, 0.24783645308629604},
      {4.0, 7.3, 0.0047623671643271075},
  };
  for (const Case& c : cases) {
    EXPECT_NEAR(st::student_t_two_sided_p(c.t, c.df) / c.p, 1.0, 1e-9) << "t=" << c.t << " df=" << c.df;
    EXPECT_NEAR(st::student_t_two_sided_p(-c.t, c.df) / c.p, 1.0, 1e-9) << "t=" << -c.t << " df=" << c.df;
  }
  // Tiny p keeps its relative precision: 2 * t.sf(50, 30) = 1.8715417659222844e-30.
  EXPECT_NEAR(st::student_t_two_sided_p(50, 30) / 1.8715417659222844e-30, 1.0, 1e-9);
  // CDF: scipy.stats.t.cdf(2.228, 10) = 0.9749941140914443, cdf(-2.228, 10) = 0.025005885908555667.
  EXPECT_NEAR(st::student_t_cdf(2.228, 10), 0.9749941140914443, 1e-13);
  EXPECT_NEAR(st::student_t_cdf(-2.228, 10), 0.025005885908555667, 1e-13);
  EXPECT_DOUBLE_EQ(st::student_t_cdf(0.0, 3), 0.5);
}

TEST(StudentT, NonFiniteInputs) {
  EXPECT_EQ(st::student_t_two_sided_p(kInf, 4), 0.0);
  EXPECT_TRUE(std::isnan(st::student_t_two_sided_p(kNaN, 4)));
  EXPECT_THROW(st::student_t_two_sided_p(1.0, 0.0), Error);
}

// ---- t-tests --------------------------------------------------------------------------------

TEST(TTest, HandComputedCase) {
  // a = [1..5]: mean 3, var 2.5; b = [2,4,...,12]: mean 7, var 14.
  // Student: df 9, pooled var (4*2.5 + 5*14)/9 = 80/9, se = sqrt(80/9 * (1/5 + 1/6)) = 1.805342,
  //   t = -4 / 1.805342 = -2.2156468; scipy.stats.ttest_ind(a, b) -> (-2.215646837627989, 0.05394592050940708).
  // Welch: se^2 = 2.5/5 + 14/6 = 17/6, t = -4 / sqrt(17/6) = -2.3763541,
  //   df = (17/6)^2 / ((1/2)^2/4 + (7/3)^2/5) = 6.972256; scipy (equal_var=False) p = 0.04928433820673049.
  const std::vector<double> a = {1, 2, 3, 4, 5}, b = {2, 4, 6, 8, 10, 12};
  const st::TTest s = st::student_ttest(a, b);
  EXPECT_NEAR(s.t, -2.215646837627989, 1e-12);
  EXPECT_DOUBLE_EQ(s.df, 9.0);
  EXPECT_NEAR(s.p, 0.05394592050940708, 1e-12);
  EXPECT_TRUE(s.note.empty());
  const st::TTest w = st::welch_ttest(a, b);
  EXPECT_NEAR(w.t, -2.3763541031440183, 1e-12);
  EXPECT_NEAR(w.df, (17.0 / 6) * (17.0 / 6) / (0.25 / 4 + (7.0 / 3) * (7.0 / 3) / 5), 1e-12);
  EXPECT_NEAR(w.df, 6.972256, 1e-6);
  EXPECT_NEAR(w.p, 0.04928433820673049, 1e-12);
  // Swapping the groups flips t and keeps p.
  EXPECT_NEAR(st::student_ttest(b, a).t, 2.215646837627989, 1e-12);
  EXPECT_NEAR(st::welch_ttest(b, a).p, 0.04928433820673049, 1e-12);
}

TEST(TTest, AucLikeScoresMatchScipy) {
  // scipy.stats.ttest_ind(a, b): Student t = 2.76083723211312, p = 0.028062100501881657;
  // Welch t = 2.940588176458783, p = 0.02353917311876209, df (by hand) = 6.5187969924812155.
  const std::vector<double> a = {0.81, 0.82, 0.80, 0.83, 0.815}, b = {0.79, 0.80, 0.795, 0.805};
  const st::TTest s = st::ttest(a, b, st::TTestKind::Student);
  EXPECT_NEAR(s.t, 2.76083723211312, 1e-10);
  EXPECT_DOUBLE_EQ(s.df, 7.0);
  EXPECT_NEAR(s.p, 0.028062100501881657, 1e-11);
  const st::TTest w = st::ttest(a, b, st::TTestKind::Welch);
  EXPECT_NEAR(w.t, 2.940588176458783, 1e-10);
  EXPECT_NEAR(w.df, 6.5187969924812155, 1e-9);
  EXPECT_NEAR(w.p, 0.02353917311876209, 1e-11);
}

// Ten values with mean m and population std s exactly: five at m + s, five at m - s.
std::vector<double> ten_runs(double m, double s) {
  std::vector<double> v;
  for (int i = 0; i < 10; ++i) v.push_back(i % 2 == 0 ? m + s : m - s);
  return v;
}

TEST(TTest, ReproducesTheProtocolCaveatFromPublishedMeanStd) {
  // paper-protocol.md section 6: the table's LXS ImageNet 98.19±0.13 vs best 98.31±0.05 (n = 10)
  // gives p ~ 0.02 although the paper shades it as not significant. scipy on these samples:
  // Student p = 0.01869251142435433, Welch p = 0.024444722401709126 (t = -2.5846493710243585).
  const auto imagenet = ten_runs(98.19, 0.13), best = ten_runs(98.31, 0.05);
  EXPECT_NEAR(st::pop_std(imagenet), 0.13, 1e-12);
  const st::TTest s = st::student_ttest(imagenet, best), w = st::welch_ttest(imagenet, best);
  EXPECT_NEAR(s.t, -2.5846493710243585, 1e-8);
  EXPECT_NEAR(s.p, 0.01869251142435433, 1e-9);
  EXPECT_NEAR(w.p, 0.024444722401709126, 1e-9);
  EXPECT_NEAR(w.df, 11.605701363667402, 1e-6);
  // Fig. 1 DXC14: 81.70±0.15 vs 81.66±0.19 gives p ~ 0.63 (the figure prints 5.8e-2).
  EXPECT_NEAR(st::student_ttest(ten_runs(81.70, 0.15), ten_runs(81.66, 0.19)).p, 0.6260931479817955, 1e-8);
}

TEST(TTest, UndefinedAndDegenerateCases) {
  const st::TTest one = st::student_ttest({0.8}, {0.7, 0.75});
  EXPECT_TRUE(std::isnan(one.t) && std::isnan(one.df) && std::isnan(one.p));
  EXPECT_NE(one.note.find("at least 2 values per group, got 1 and 2"), std::string::npos) << one.note;
  const st::TTest equal = st::welch_ttest({0.8, 0.8, 0.8}, {0.8, 0.8});
  EXPECT_TRUE(std::isnan(equal.p));
  EXPECT_NE(equal.note.find("constant and equal"), std::string::npos);
  const st::TTest differ = st::student_ttest({0.9, 0.9}, {0.8, 0.8, 0.8});
  EXPECT_EQ(differ.t, kInf);
  EXPECT_EQ(differ.p, 0.0);
  EXPECT_DOUBLE_EQ(differ.df, 3.0);
  EXPECT_FALSE(differ.note.empty());
  // One constant group is fine for Welch: df = n - 1 of the other group.
  const st::TTest half = st::welch_ttest({0.8, 0.8, 0.8}, {0.7, 0.75, 0.72, 0.71});
  EXPECT_NEAR(half.df, 3.0, 1e-12);
  EXPECT_TRUE(half.note.empty());
  EXPECT_STREQ(st::ttest_name(st::TTestKind::Welch), "welch");
}

// ---- Marks ----------------------------------------------------------------------------------

TEST(Marks, PaperLegendThresholds) {
  // Fig. 2: n.s., * p<0.05, ** p<0.01, *** p<0.0001 -- no separate p<0.001 level.
  EXPECT_EQ(st::significance_mark(0.5), "n.s.");
  EXPECT_EQ(st::significance_mark(0.05), "n.s.");
  EXPECT_EQ(st::significance_mark(0.0499), "*");
  EXPECT_EQ(st::significance_mark(0.01), "*");
  EXPECT_EQ(st::significance_mark(0.0099), "**");
  EXPECT_EQ(st::significance_mark(0.0005), "**");  // would be *** under the p<0.001 convention
  EXPECT_EQ(st::significance_mark(0.0001), "**");
  EXPECT_EQ(st::significance_mark(0.00009), "***");
  EXPECT_EQ(st::significance_mark(0.0), "***");
  EXPECT_EQ(st::significance_mark(kNaN), "n/a");
}

TEST(Marks, Fig2LeavesSignificantlyWorseBarsBlank) {
  EXPECT_EQ(st::paper_fig2_mark(0.001, +0.5), "**");
  EXPECT_EQ(st::paper_fig2_mark(0.001, -0.5), "");
  EXPECT_EQ(st::paper_fig2_mark(0.3, -0.5), "n.s.");
  EXPECT_EQ(st::paper_fig2_mark(kNaN, 0.1), "n/a");
}

}  // namespace
}  // namespace medtl
