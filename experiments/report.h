// The benchmark's results and reporting layer: per-run records in, a results folder out --
// results.csv (one row per run), summary.json (per-cell statistics and t-tests), report.md (the
// paper's table layout, p-value tables, marks) and one hand-written SVG bar chart per
// (target, metric) column in the paper's Fig. 2 style -- plus a SHA-256 of all scores. Every
// output is a pure function of the records and options: the same records in any order give the
// same bytes (wall times appear only in results.csv). Files are written atomically.
//
// Statistics follow experiments/stats.h and ../shared/reference/paper-protocol.md section 6:
// mean ± population std (ddof 0) in %; two-sided Student and Welch t-tests of each source against
// the baseline source and against the best source of its column; the primary test (Student by
// default, the paper's exact variant is unknown) decides the † marks and the significance marks.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "experiments/stats.h"

namespace medtl::experiments::report {

// One finished (or failed) fine-tuning run, as the benchmark driver records it.
struct RunRecord {
  std::string source;        // pretrained weights, e.g. "Scratch", "ImageNet", "ImageNet→ChestX-ray14"
  std::string target;        // target task, e.g. "DXC14"
  int64_t run = 0;           // run index within the (source, target) cell
  uint64_t seed = 0;
  std::string metric;        // e.g. "auc", "dice_global", "dice_mean"; one column per (target, metric)
  double value = 0.0;        // raw score as a fraction (AUC or Dice in [0, 1]); shown x display_scale
  int64_t epochs = 0;
  double wall_seconds = 0.0;
  std::string config_hash;
  std::string failure;       // empty: the run finished; otherwise why it failed (value is then ignored)
};

struct ReportOptions {
  std::string experiment = "benchmark";
  std::string baseline = "ImageNet";               // the source every other source is tested against
  std::vector<std::string> source_order;           // table rows; unlisted sources follow, sorted by name
  std::vector<std::string> target_order;           // table columns; unlisted targets follow, sorted
  stats::TTestKind primary_test = stats::TTestKind::Student;  // decides † and marks; both are reported
  double alpha = stats::kAlpha;                    // † threshold: "not significantly different" is p >= alpha
  double display_scale = 100.0;                    // fractions -> percent in the md table and figures
  int decimals = 2;                                // as the paper: 81.70 ± 0.15
};

// A t-test of one cell against another (the baseline or the best of its column).
struct Comparison {
  bool present = false;      // false: no such comparison (the cell is that reference, or it is missing)
  std::string against;       // the reference source
  double diff = 0.0;         // mean(cell) - mean(reference), raw units
  stats::TTest student, welch;
  double p = 0.0;            // the primary test's p
  std::string mark;          // stats::significance_mark(p): "***", "**", "*", "n.s.", "n/a"
};

struct CellSummary {
  std::string source, target, metric;
  std::vector<int64_t> runs;      // finished runs, by run index
  std::vector<uint64_t> seeds;
  std::vector<double> values;     // raw, same order as runs
  int64_t failed = 0;             // failed runs of this cell (not in values)
  int64_t n = 0;
  double mean = 0.0, std_pop = 0.0, std_sample = 0.0;  // raw units; NaN where n does not allow them
  bool is_best = false;
  bool is_baseline = false;
  // The † cells: !is_best and the primary test gives p >= alpha. A cell whose runs are all equal to
  // the best's (both constant, p undefined) counts as not different; a cell that cannot be tested
  // (fewer than 2 runs on either side) is never marked.
  bool not_different_from_best = false;
  Comparison vs_baseline, vs_best;
};

// One table column: a target scored by one metric.
struct ColumnSummary {
  std::string target, metric;
  std::vector<CellSummary> cells;  // in source order; only sources with at least one record here
  std::string best_source;         // highest mean among cells with n >= 1 (ties: first in source order)
  double best_mean = 0.0;
  bool has_baseline = false;
  double baseline_mean = 0.0;
  std::string figure;              // SVG file name, e.g. "fig_DXC14_auc.svg"
  const CellSummary* find(const std::string& source) const;
};

struct Summary {
  ReportOptions options;
  std::vector<std::string> sources;   // final row order
  std::vector<ColumnSummary> columns; // final column order
  std::vector<RunRecord> records;     // all records in canonical order (source, target, metric, run)
  int64_t num_failed = 0;
  std::string scores_sha256;          // sha256_hex(scores_canonical_text(records))
};

// Validates (no empty names, no duplicate (source, target, metric, run), finite values for runs
// that did not fail -- a non-finite value without a failure reason becomes a failed run reading
// "non-finite value", never a silent drop) and computes every statistic. Throws medtl::Error on
// an empty record list or an invalid record, naming it.
Summary summarize(const std::vector<RunRecord>& records, const ReportOptions& options = {});

// The individual outputs. All deterministic functions of the summary.
std::string results_csv(const Summary& summary);
std::string summary_json(const Summary& summary);
std::string report_markdown(const Summary& summary);
std::string bar_chart_svg(const Summary& summary, size_t column);

// Every output file: {name, content}: results.csv, summary.json, report.md, then the figures.
std::vector<std::pair<std::string, std::string>> render_report(const Summary& summary);

// summarize + render_report, then writes each file into `dir` (created if missing) atomically.
// Returns the summary (the driver can print its table or hash).
Summary write_report(const std::vector<RunRecord>& records, const ReportOptions& options, const std::string& dir);

// Writes `content` to `path` via `path.tmp` + fsync + rename (+ fsync of the folder), so a
// reader or a crash never sees a partial file. Throws medtl::Error naming the path on failure.
void write_file_atomic(const std::string& path, const std::string& content);

// Reads back what results_csv wrote (or any CSV with those columns, in any order; extra columns
// are ignored), e.g. to merge shards. Throws medtl::Error naming the line on malformed input.
std::vector<RunRecord> parse_results_csv(const std::string& text);

// The text the scores hash is taken over: one line per record in canonical order,
// "source\ttarget\tmetric\trun\tseed\tvalue\n", value in shortest round-trip decimal (as
// format_double), or "failed". Epochs, wall times and config hashes are not part of it.
std::string scores_canonical_text(const std::vector<RunRecord>& canonical_records);

// SHA-256 (FIPS 180-4) of `bytes`, as 64 lowercase hex digits.
std::string sha256_hex(const std::string& bytes);

// Shortest decimal that reads back to the same double ("0.817", not "0.81699999999999995");
// "nan", "inf", "-inf" for non-finite values.
std::string format_double(double v);

// `s` as a JSON string literal: in double quotes, with ", \ and control characters escaped.
std::string json_quote(const std::string& s);

}  // namespace medtl::experiments::report
