// Tests of experiments/report: SHA-256 test vectors, number formatting, the summary of a small
// synthetic benchmark (best, † cells, marks, failures) with p-values from scipy, the content of
// results.csv / summary.json / report.md, SVG well-formedness, CSV round trip, byte-identical
// output for identical (and reordered) input, and atomic writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "experiments/report.h"
#include "tensor/error.h"

namespace medtl {
namespace {

namespace rp = experiments::report;
namespace fs = std::filesystem;

// ---- SHA-256 --------------------------------------------------------------------------------

TEST(Sha256, StandardTestVectors) {
  // FIPS 180-2 appendix B and the NIST "one million a" vector.
  EXPECT_EQ(rp::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(rp::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(rp::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(rp::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // Python hashlib.sha256(b"x" * n): lengths around the 55/56/64-byte padding edges.
  EXPECT_EQ(rp::sha256_hex(std::string(55, 'x')), "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  EXPECT_EQ(rp::sha256_hex(std::string(56, 'x')), "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  EXPECT_EQ(rp::sha256_hex(std::string(63, 'x')), "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2");
  EXPECT_EQ(rp::sha256_hex(std::string(64, 'x')), "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
  EXPECT_EQ(rp::sha256_hex(std::string(119, 'x')), "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c");
  EXPECT_EQ(rp::sha256_hex(std::string(120, 'x')), "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98");
}

TEST(FormatDouble, ShortestRoundTrip) {
  EXPECT_EQ(rp::format_double(0.817), "0.817");
  EXPECT_EQ(rp::format_double(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(rp::format_double(1.0), "1");
  EXPECT_EQ(rp::format_double(1e-300), "1e-300");
  EXPECT_EQ(rp::format_double(std::numeric_limits<double>::quiet_NaN()), "nan");
  for (double v : {0.123456789012345678, 98.33333333333333, 3e22, -7.25e-9})
    EXPECT_EQ(std::stod(rp::format_double(v)), v);
}

// ---- a synthetic benchmark ------------------------------------------------------------------

const char* const kInDomain = "InDomain";
const char* const kAdapted = "ImageNet→CXR";

void add_cell(std::vector<rp::RunRecord>& out, const std::string& source, const std::string& target,
              const std::string& metric, const std::vector<double>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    rp::RunRecord r;
    r.source = source, r.target = target, r.metric = metric;
    r.run = static_cast<int64_t>(i);
    r.seed = 1000 + 17 * i;
    r.value = values[i];
    r.epochs = 12 + static_cast<int64_t>(i);
    r.wall_seconds = 3.25 * (i + 1);
    r.config_hash = "cfg0123";
    out.push_back(r);
  }
}

// Three targets, four sources, three runs per cell. InDomain is not evaluated on DXC14 (its
// pre-training data) and its third LXS run failed.
std::vector<rp::RunRecord> synthetic_records() {
  std::vector<rp::RunRecord> r;
  add_cell(r, "Scratch", "DXC14", "auc", {0.80, 0.81, 0.79});
  add_cell(r, "ImageNet", "DXC14", "auc", {0.816, 0.817, 0.818});
  add_cell(r, kAdapted, "DXC14", "auc", {0.822, 0.823, 0.824});
  add_cell(r, "Scratch", "TXC", "auc", {0.89, 0.90, 0.88});
  add_cell(r, "ImageNet", "TXC", "auc", {0.95, 0.96, 0.955});
  add_cell(r, kInDomain, "TXC", "auc", {0.96, 0.97, 0.95});
  add_cell(r, kAdapted, "TXC", "auc", {0.98, 0.985, 0.99});
  add_cell(r, "Scratch", "LXS", "dice", {0.970, 0.975, 0.980});
  add_cell(r, "ImageNet", "LXS", "dice", {0.975, 0.990, 0.985});
  add_cell(r, kInDomain, "LXS", "dice", {0.982, 0.984, 0.0});
  r.back().failure = "loss became NaN at epoch 3";
  add_cell(r, kAdapted, "LXS", "dice", {0.984, 0.986, 0.985});
  return r;
}

rp::ReportOptions synthetic_options() {
  rp::ReportOptions o;
  o.experiment = "synthetic";
  o.source_order = {"Scratch", "ImageNet", kInDomain, kAdapted};
  o.target_order = {"DXC14", "TXC", "LXS"};
  return o;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}
size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

TEST(Summarize, CellsBestMarksAndFailures) {
  const rp::Summary s = rp::summarize(synthetic_records(), synthetic_options());
  EXPECT_EQ(s.sources, (std::vector<std::string>{"Scratch", "ImageNet", kInDomain, kAdapted}));
  ASSERT_EQ(s.columns.size(), 3u);
  EXPECT_EQ(s.columns[0].target, "DXC14");
  EXPECT_EQ(s.columns[2].target, "LXS");
  EXPECT_EQ(s.num_failed, 1);
  EXPECT_EQ(s.records.size(), 33u);

  const rp::ColumnSummary& dxc = s.columns[0];
  EXPECT_EQ(dxc.best_source, kAdapted);
  EXPECT_EQ(dxc.find(kInDomain), nullptr);  // not evaluated
  EXPECT_NEAR(dxc.baseline_mean, 0.817, 1e-15);
  const rp::CellSummary* scratch = dxc.find("Scratch");
  ASSERT_NE(scratch, nullptr);
  EXPECT_NEAR(scratch->mean, 0.80, 1e-15);
  EXPECT_NEAR(scratch->std_pop, std::sqrt(2.0 / 3.0) * 0.01, 1e-15);
  EXPECT_NEAR(scratch->std_sample, 0.01, 1e-15);
  // scipy.stats.ttest_ind(Scratch, ImageNet): Student p = 0.04281921940992026 (*), Welch p =
  // 0.0971405535992152 (n.s.): the primary (Student) test decides the mark.
  EXPECT_NEAR(scratch->vs_baseline.student.p, 0.04281921940992026, 1e-10);
  EXPECT_NEAR(scratch->vs_baseline.welch.p, 0.0971405535992152, 1e-10);
  EXPECT_EQ(scratch->vs_baseline.mark, "*");
  EXPECT_LT(scratch->vs_baseline.diff, 0);
  // vs the best: Student p = 0.01662264096164609, Welch p = 0.05628475481940211.
  EXPECT_NEAR(scratch->vs_best.student.p, 0.01662264096164609, 1e-10);
  EXPECT_NEAR(scratch->vs_best.welch.p, 0.05628475481940211, 1e-10);
  EXPECT_FALSE(scratch->not_different_from_best);
  const rp::CellSummary* imagenet = dxc.find("ImageNet");
  EXPECT_TRUE(imagenet->is_baseline);
  EXPECT_FALSE(imagenet->vs_baseline.present);
  EXPECT_NEAR(imagenet->vs_best.p, 0.0018262606682601108, 1e-10);
  EXPECT_TRUE(dxc.find(kAdapted)->is_best);
  EXPECT_FALSE(dxc.find(kAdapted)->vs_best.present);

  // TXC Scratch vs ImageNet: p = 0.0005470768064699723 -> "**" (the paper has no p<0.001 level).
  const rp::CellSummary* txc_scratch = s.columns[1].find("Scratch");
  EXPECT_NEAR(txc_scratch->vs_baseline.p, 0.0005470768064699723, 1e-11);
  EXPECT_EQ(txc_scratch->vs_baseline.mark, "**");

  // LXS: the best's neighbours are within noise (†); InDomain has 2 runs and 1 failure.
  const rp::ColumnSummary& lxs = s.columns[2];
  EXPECT_EQ(lxs.best_source, kAdapted);
  EXPECT_TRUE(lxs.find("ImageNet")->not_different_from_best);  // p = 0.7268577173434995
  EXPECT_NEAR(lxs.find("ImageNet")->vs_best.p, 0.7268577173434995, 1e-10);
  const rp::CellSummary* indomain = lxs.find(kInDomain);
  EXPECT_EQ(indomain->n, 2);
  EXPECT_EQ(indomain->failed, 1);
  EXPECT_EQ(indomain->runs, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(indomain->not_different_from_best);  // Student p = 0.15403090300093614
  EXPECT_NEAR(indomain->vs_best.student.p, 0.15403090300093614, 1e-10);
  EXPECT_NEAR(indomain->vs_best.welch.p, 0.2481885380840121, 1e-10);
  EXPECT_FALSE(lxs.find("Scratch")->not_different_from_best);  // p = 0.02735709677956573
  EXPECT_EQ(lxs.figure, "fig_LXS_dice.svg");
}

TEST(Summarize, WelchAsPrimaryTestChangesMarksAndDaggers) {
  rp::ReportOptions o = synthetic_options();
  o.primary_test = experiments::stats::TTestKind::Welch;
  const rp::Summary s = rp::summarize(synthetic_records(), o);
  const rp::CellSummary* scratch = s.columns[0].find("Scratch");
  EXPECT_EQ(scratch->vs_baseline.mark, "n.s.");                // Welch p = 0.097
  EXPECT_TRUE(scratch->not_different_from_best);               // Welch p = 0.056 vs best
}

TEST(Summarize, RejectsBadRecordsAndFlagsNonFiniteValues) {
  EXPECT_THROW(rp::summarize({}, {}), Error);
  auto dup = synthetic_records();
  dup.push_back(dup[4]);
  try {
    rp::summarize(dup, synthetic_options());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "duplicate record for source 'ImageNet', target 'DXC14', metric 'auc', run 1"))
        << e.what();
  }
  auto unnamed = synthetic_records();
  unnamed[0].metric.clear();
  EXPECT_THROW(rp::summarize(unnamed, {}), Error);
  auto nan = synthetic_records();
  nan[0].value = std::numeric_limits<double>::quiet_NaN();
  const rp::Summary s = rp::summarize(nan, synthetic_options());
  EXPECT_EQ(s.num_failed, 2);
  EXPECT_EQ(s.columns[0].find("Scratch")->n, 2);
  EXPECT_TRUE(contains(rp::report_markdown(s), "non-finite value nan"));
}

TEST(Summarize, SingleRunCellsAreReportedNotTested) {
  std::vector<rp::RunRecord> r;
  add_cell(r, "ImageNet", "T", "auc", {0.9});
  add_cell(r, "Scratch", "T", "auc", {0.8});
  const rp::Summary s = rp::summarize(r, {});
  const rp::CellSummary* scratch = s.columns[0].find("Scratch");
  EXPECT_TRUE(std::isnan(scratch->vs_baseline.p));
  EXPECT_EQ(scratch->vs_baseline.mark, "n/a");
  EXPECT_FALSE(scratch->not_different_from_best);
  EXPECT_TRUE(std::isnan(scratch->std_sample));
  for (const auto& [name, content] : rp::render_report(s)) EXPECT_FALSE(content.empty()) << name;
  EXPECT_TRUE(contains(rp::summary_json(s), "\"note\": \"undefined: needs at least 2 values per group, got 1 and 1\""));
}

// ---- results.csv ----------------------------------------------------------------------------

TEST(ResultsCsv, OneRowPerRunInCanonicalOrder) {
  const rp::Summary s = rp::summarize(synthetic_records(), synthetic_options());
  const std::string csv = rp::results_csv(s);
  EXPECT_EQ(count(csv, "\n"), 34u);  // header + 33 runs
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "source,target,metric,run,seed,value,status,epochs,wall_seconds,config_hash,failure");
  // Rows follow source order, then target order: the first is Scratch/DXC14 run 0.
  EXPECT_TRUE(contains(csv, "\nScratch,DXC14,auc,0,1000,0.8,ok,12,3.25,cfg0123,\n"));
  EXPECT_TRUE(contains(csv, "\nInDomain,LXS,dice,2,1034,,failed,14,9.75,cfg0123,loss became NaN at epoch 3\n"));
  EXPECT_LT(csv.find("Scratch,LXS"), csv.find("ImageNet,DXC14"));
}

TEST(ResultsCsv, RoundTripsThroughTheParser) {
  auto records = synthetic_records();
  records[0].config_hash = "has, a comma and \"quotes\"";
  const rp::Summary s = rp::summarize(records, synthetic_options());
  const std::string csv = rp::results_csv(s);
  const auto parsed = rp::parse_results_csv(csv);
  ASSERT_EQ(parsed.size(), 33u);
  const rp::Summary again = rp::summarize(parsed, synthetic_options());
  EXPECT_EQ(rp::results_csv(again), csv);
  EXPECT_EQ(again.scores_sha256, s.scores_sha256);
  EXPECT_EQ(rp::report_markdown(again), rp::report_markdown(s));
  EXPECT_THROW(rp::parse_results_csv("source,target\nA,B\n"), Error);  // missing columns
  EXPECT_THROW(rp::parse_results_csv("source,target,metric,run,seed,value\nA,B,auc,x,1,0.5\n"), Error);
  EXPECT_THROW(rp::parse_results_csv("source,target,metric,run,seed,value\nA,B,auc,1,1\n"), Error);
}

// ---- summary.json ---------------------------------------------------------------------------

TEST(SummaryJson, HoldsEveryCellWithBothTests) {
  const rp::Summary s = rp::summarize(synthetic_records(), synthetic_options());
  const std::string j = rp::summary_json(s);
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.substr(j.size() - 2), "}\n");
  EXPECT_EQ(count(j, "{"), count(j, "}"));
  EXPECT_EQ(count(j, "["), count(j, "]"));
  EXPECT_TRUE(contains(j, "\"baseline\": \"ImageNet\""));
  EXPECT_TRUE(contains(j, "\"scores_sha256\": \"" + s.scores_sha256 + "\""));
  EXPECT_TRUE(contains(j, "\"best_source\": \"ImageNet→CXR\""));
  EXPECT_TRUE(contains(j, "\"values\": [0.8, 0.81, 0.79]"));
  EXPECT_TRUE(contains(j, "\"seeds\": [1000, 1017, 1034]"));
  EXPECT_TRUE(contains(j, "\"n\": 2,\n"));
  EXPECT_TRUE(contains(j, "\"failed\": 1,"));
  EXPECT_TRUE(contains(j, "\"mark\": \"**\""));
  EXPECT_TRUE(contains(j, "\"direction\": \"below\""));
  EXPECT_TRUE(contains(j, "\"vs_baseline\": null"));  // the baseline itself
  EXPECT_TRUE(contains(j, "\"failure\": \"loss became NaN at epoch 3\""));
  // 11 cells, each with a Student and a Welch entry per present comparison.
  EXPECT_EQ(count(j, "\"source\": "), 11u + 1u);  // + the failure entry
  EXPECT_EQ(count(j, "\"student\": {"), count(j, "\"welch\": {"));
  EXPECT_FALSE(contains(j, "nan"));  // NaN is written as null
}

// ---- report.md ------------------------------------------------------------------------------

TEST(ReportMarkdown, PaperTableWithBoldBestAndDaggers) {
  const rp::Summary s = rp::summarize(synthetic_records(), synthetic_options());
  const std::string m = rp::report_markdown(s);
  EXPECT_TRUE(contains(m, "# Benchmark report: synthetic"));
  EXPECT_TRUE(contains(m, "Scores SHA-256: `" + s.scores_sha256 + "`"));
  EXPECT_TRUE(contains(m, "| Initialization | DXC14 (auc) | TXC (auc) | LXS (dice) |"));
  EXPECT_TRUE(contains(m, "| Scratch | 80.00 ± 0.82 | 89.00 ± 0.82 | 97.50 ± 0.41 |"));
  EXPECT_TRUE(contains(m, "| ImageNet | 81.70 ± 0.08 | 95.50 ± 0.41 | 98.33 ± 0.62 † |"));
  EXPECT_TRUE(contains(m, "| InDomain | – | 96.00 ± 0.82 | 98.30 ± 0.10 † (1 failed) |"));
  EXPECT_TRUE(contains(m, "| ImageNet→CXR | **82.30 ± 0.08** | **98.50 ± 0.41** | **98.50 ± 0.08** |"));
  // Marks against the baseline, direction shown.
  EXPECT_TRUE(contains(m, "| Scratch | ↓\\* (p 0.0428) | ↓\\*\\* (p 5.47e-04) | n.s. (p 0.189) |"));
  EXPECT_TRUE(contains(m, "| ImageNet | baseline | baseline | baseline |"));
  // Per-target details: both p-values.
  EXPECT_TRUE(contains(m, "| Scratch | 3 | 80.00 ± 0.82 | 1.00 | -1.70 | 0.0428 | 0.0971 | ↓\\* | -2.30 | 0.0166 / 0.0563 |"));
  EXPECT_TRUE(contains(m, "| InDomain | 2 (+1 failed) | 98.30 ± 0.10 |"));
  EXPECT_TRUE(contains(m, "\\*\\*\\* p < 0.0001"));
  EXPECT_TRUE(contains(m, "## Failed runs"));
  EXPECT_TRUE(contains(m, "| InDomain | LXS | dice | 2 | 1034 | loss became NaN at epoch 3 |"));
  EXPECT_TRUE(contains(m, "![DXC14 (auc)](fig_DXC14_auc.svg)"));
  EXPECT_TRUE(contains(m, "Runs per cell differ"));
}

// ---- SVG ------------------------------------------------------------------------------------

// A small well-formedness check: tags nest and close, attributes are quoted, no stray '<' or
// '&' in text. Returns an empty string when the document is fine.
std::string xml_problem(const std::string& x) {
  std::vector<std::string> stack;
  size_t i = 0;
  while (i < x.size()) {
    if (x[i] == '&') {
      const size_t semi = x.find(';', i);
      const std::string ent = x.substr(i, semi - i + 1);
      if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
        return "bad entity at " + std::to_string(i);
      i = semi + 1;
      continue;
    }
    if (x[i] != '<') {
      if (x[i] == '>') return "stray '>' at " + std::to_string(i);
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool in_quote = false;
    while (j < x.size() && (in_quote || x[j] != '>')) {
      if (x[j] == '"') in_quote = !in_quote;
      if (!in_quote && x[j] == '<') return "'<' inside a tag at " + std::to_string(j);
      ++j;
    }
    if (j >= x.size()) return "unterminated tag at " + std::to_string(i);
    const std::string tag = x.substr(i + 1, j - i - 1);
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
    i = j + 1;
  }
  return stack.empty() ? "" : "unclosed <" + stack.back() + ">";
}

TEST(BarChartSvg, WellFormedWithBarsDotsMarksAndBaseline) {
  const rp::Summary s = rp::summarize(synthetic_records(), synthetic_options());
  for (size_t c = 0; c < s.columns.size(); ++c) {
    const std::string svg = rp::bar_chart_svg(s, c);
    EXPECT_EQ(xml_problem(svg), "") << s.columns[c].figure;
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
    EXPECT_TRUE(contains(svg, "stroke-dasharray"));   // the baseline line
    EXPECT_TRUE(contains(svg, "ImageNet mean "));      // its legend
    EXPECT_TRUE(contains(svg, "<title>"));
  }
  const std::string txc = rp::bar_chart_svg(s, 1);
  EXPECT_EQ(count(txc, "<circle"), 12u);                    // one dot per run
  EXPECT_EQ(count(txc, "<rect"), 1u + 1u + 4u + 1u);  // background, baseline band, 4 bars, legend swatch
  EXPECT_TRUE(contains(txc, ">TXC — auc (%)</text>"));
  EXPECT_TRUE(contains(txc, ">↓**</text>"));                 // Scratch, significantly below
  EXPECT_TRUE(contains(txc, ">n.s.</text>"));                // InDomain vs ImageNet
  EXPECT_TRUE(contains(txc, ">**</text>"));                  // ImageNet→CXR above
  EXPECT_TRUE(contains(txc, ">ImageNet mean 95.50, band: ± std</text>"));
  EXPECT_TRUE(contains(txc, ">n=3</text>"));
  EXPECT_TRUE(contains(txc, ">ImageNet→CXR</text>"));
  const std::string lxs = rp::bar_chart_svg(s, 2);
  EXPECT_EQ(count(lxs, "<circle"), 11u);                    // the failed run has no dot
  EXPECT_TRUE(contains(lxs, "2–3 runs"));
  EXPECT_TRUE(contains(lxs, ">n=2 · 1 failed</text>"));
}

TEST(BarChartSvg, EscapesNames) {
  std::vector<rp::RunRecord> r;
  add_cell(r, "ImageNet", "A&B <1>", "auc", {0.9, 0.91});
  add_cell(r, "X \"quoted\" & <odd>", "A&B <1>", "auc", {0.8, 0.85});
  const rp::Summary s = rp::summarize(r, {});
  const std::string svg = rp::bar_chart_svg(s, 0);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_TRUE(contains(svg, "X &quot;quoted&quot; &amp; &lt;odd&gt;"));
  EXPECT_EQ(s.columns[0].figure, "fig_A_B_1_auc.svg");
}

// ---- determinism and files ------------------------------------------------------------------

TEST(Report, IdenticalInputsGiveIdenticalBytesInAnyOrder) {
  const auto records = synthetic_records();
  auto shuffled = records;
  std::reverse(shuffled.begin(), shuffled.end());
  std::rotate(shuffled.begin(), shuffled.begin() + 7, shuffled.end());
  const auto a = rp::render_report(rp::summarize(records, synthetic_options()));
  const auto b = rp::render_report(rp::summarize(records, synthetic_options()));
  const auto c = rp::render_report(rp::summarize(shuffled, synthetic_options()));
  ASSERT_EQ(a.size(), 6u);  // csv, json, md, 3 figures
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  // The hash covers the scores, not wall times; a changed score changes it.
  auto slower = records;
  slower[3].wall_seconds += 100;
  EXPECT_EQ(rp::summarize(slower, {}).scores_sha256, rp::summarize(records, {}).scores_sha256);
  auto changed = records;
  changed[3].value = std::nextafter(changed[3].value, 1.0);
  EXPECT_NE(rp::summarize(changed, {}).scores_sha256, rp::summarize(records, {}).scores_sha256);
  EXPECT_EQ(rp::summarize(records, {}).scores_sha256,
            rp::sha256_hex(rp::scores_canonical_text(rp::summarize(records, {}).records)));
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Report, WritesEveryFileAtomicallyAndReproducibly) {
  const char* tmp_env = std::getenv("TEST_TMPDIR");
  const fs::path root = fs::path(tmp_env ? tmp_env : "/tmp") / "report_test";
  fs::remove_all(root);
  const auto records = synthetic_records();
  rp::write_report(records, synthetic_options(), (root / "a" / "nested").string());
  rp::write_report(records, synthetic_options(), (root / "b").string());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root / "b")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"fig_DXC14_auc.svg", "fig_LXS_dice.svg", "fig_TXC_auc.svg", "report.md",
                                             "results.csv", "summary.json"}));  // no temporary files left
  for (const std::string& n : names) {
    const std::string x = read_file(root / "a" / "nested" / n), y = read_file(root / "b" / n);
    EXPECT_FALSE(x.empty()) << n;
    EXPECT_EQ(x, y) << n;
  }
  // Overwriting replaces the file whole.
  rp::write_file_atomic((root / "b" / "report.md").string(), "new");
  EXPECT_EQ(read_file(root / "b" / "report.md"), "new");
  EXPECT_THROW(rp::write_file_atomic((root / "missing" / "x.txt").string(), "x"), Error);
  fs::remove_all(root);
}

}  // namespace
}  // namespace medtl
