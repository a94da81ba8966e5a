// The benchmark report's statistics and text: the Summary (per-cell statistics, t-tests),
// report.md and atomic file writes (see report.h). results.csv and summary.json are written in
// report_files.cc, the SVG bar charts in report_svg.cc, SHA-256 in sha256.cc.
#include "experiments/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "experiments/report_svg.h"
#include "experiments/sha256.h"
#include "tensor/error.h"

namespace medtl::experiments::report {

// ---- helpers shared with the SVG writer (declared in report_svg.h) -------------------------

namespace internal {

std::string fixed(double v, int decimals) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  // "-0.00" reads as a sign that is not there.
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

// Direction-aware mark for the text and figures: stars get an arrow when the source is
// significantly *below* the reference (the paper's Fig. 2 leaves those bars unmarked).
std::string directional_mark(const Comparison& c) {
  if (!c.present) return "";
  if (c.mark == "n.s." || c.mark == "n/a") return c.mark;
  return c.diff < 0.0 ? "↓" + c.mark : c.mark;
}

}  // namespace internal

namespace {

using internal::directional_mark;
using internal::fixed;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- small formatting helpers --------------------------------------------------------------

std::string printf_str(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string signed_fixed(double v, int decimals) {
  const std::string s = fixed(v, decimals);
  return (s[0] == '-' || s == "nan" || s.find_first_not_of("0.") == std::string::npos) ? s : "+" + s;
}

// p-values: 3 significant digits down to 0.001 ("0.0495" stays below 0.05 on the page), then
// scientific ("1.70e-05"); "0" only for an exact zero; "n/a" for NaN.
std::string format_p(double p) {
  if (std::isnan(p)) return "n/a";
  if (p == 0.0) return "0";
  if (p >= 0.001) return printf_str("%.3g", p);
  return printf_str("%.2e", p);
}


std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|' || c == '*' || c == '_' || c == '`' || c == '\\') out += '\\';
    out += (c == '\n') ? ' ' : c;
  }
  return out;
}


std::string column_title(const ColumnSummary& c) { return c.target + " (" + c.metric + ")"; }


// ---- record ordering -------------------------------------------------------------------------

// Rank of `name` in `order`, else after all listed names (ties broken by the name itself).
std::vector<std::string> ordered_names(const std::set<std::string>& present, const std::vector<std::string>& order) {
  std::vector<std::string> out;
  for (const std::string& name : order)
    if (present.count(name) && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  for (const std::string& name : present)  // std::set iterates sorted
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  return out;
}

std::string sanitize_file_part(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    if (ok) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "x" : out;
}

Comparison compare(const CellSummary& cell, const CellSummary& ref, stats::TTestKind primary) {
  Comparison c;
  c.present = true;
  c.against = ref.source;
  c.diff = cell.mean - ref.mean;
  c.student = stats::student_ttest(cell.values, ref.values);
  c.welch = stats::welch_ttest(cell.values, ref.values);
  c.p = (primary == stats::TTestKind::Student ? c.student : c.welch).p;
  c.mark = stats::significance_mark(c.p);
  return c;
}

}  // namespace

// ---- public helpers --------------------------------------------------------------------------

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string sha256_hex(const std::string& bytes) { return sha256::hex(bytes); }

std::string scores_canonical_text(const std::vector<RunRecord>& records) {
  std::string out;
  for (const RunRecord& r : records)
    out += r.source + "\t" + r.target + "\t" + r.metric + "\t" + std::to_string(r.run) + "\t" + std::to_string(r.seed) +
           "\t" + (r.failure.empty() ? format_double(r.value) : "failed") + "\n";
  return out;
}

const CellSummary* ColumnSummary::find(const std::string& source) const {
  for (const CellSummary& c : cells)
    if (c.source == source) return &c;
  return nullptr;
}

// ---- summarize -------------------------------------------------------------------------------

Summary summarize(const std::vector<RunRecord>& records_in, const ReportOptions& options) {
  MEDTL_CHECK(!records_in.empty(), "report: no run records to summarize");
  MEDTL_CHECK(options.decimals >= 0 && options.decimals <= 10, "report: decimals must be in [0, 10], got ",
              options.decimals);
  MEDTL_CHECK(options.display_scale > 0.0, "report: display_scale must be positive");
  Summary s;
  s.options = options;
  std::set<std::string> sources, targets;
  std::vector<RunRecord> records = records_in;
  for (RunRecord& r : records) {
    MEDTL_CHECK(!r.source.empty() && !r.target.empty() && !r.metric.empty(), "report: record (source '", r.source,
                "', target '", r.target, "', metric '", r.metric, "', run ", r.run, ") has an empty name");
    if (r.failure.empty() && !std::isfinite(r.value)) r.failure = "non-finite value " + format_double(r.value);
    sources.insert(r.source);
    targets.insert(r.target);
  }
  s.sources = ordered_names(sources, options.source_order);
  const std::vector<std::string> target_names = ordered_names(targets, options.target_order);
  auto rank = [](const std::vector<std::string>& names, const std::string& n) {
    return std::find(names.begin(), names.end(), n) - names.begin();
  };
  std::sort(records.begin(), records.end(), [&](const RunRecord& a, const RunRecord& b) {
    return std::make_tuple(rank(s.sources, a.source), rank(target_names, a.target), a.metric, a.run) <
           std::make_tuple(rank(s.sources, b.source), rank(target_names, b.target), b.metric, b.run);
  });
  for (size_t i = 1; i < records.size(); ++i) {
    const RunRecord &a = records[i - 1], &b = records[i];
    MEDTL_CHECK(!(a.source == b.source && a.target == b.target && a.metric == b.metric && a.run == b.run),
                "report: duplicate record for source '", a.source, "', target '", a.target, "', metric '", a.metric,
                "', run ", a.run, " (merging the same shard twice?)");
  }
  // Columns: (target, metric) pairs in target order, metrics sorted by name.
  std::map<std::pair<std::string, std::string>, std::map<std::string, CellSummary>> cells;
  std::set<std::pair<int64_t, std::string>> column_keys;
  for (const RunRecord& r : records) {
    column_keys.insert({rank(target_names, r.target), r.metric});
    CellSummary& c = cells[{r.target, r.metric}][r.source];
    c.source = r.source, c.target = r.target, c.metric = r.metric;
    if (!r.failure.empty()) {
      ++c.failed;
      ++s.num_failed;
      continue;
    }
    c.runs.push_back(r.run);
    c.seeds.push_back(r.seed);
    c.values.push_back(r.value);
  }
  std::set<std::string> figure_names;
  for (const auto& key : column_keys) {
    ColumnSummary col;
    col.target = target_names[key.first];
    col.metric = key.second;
    auto& by_source = cells[{col.target, col.metric}];
    for (const std::string& src : s.sources) {
      auto it = by_source.find(src);
      if (it == by_source.end()) continue;
      CellSummary c = it->second;
      c.n = static_cast<int64_t>(c.values.size());
      c.mean = c.n ? stats::mean(c.values) : kNaN;
      c.std_pop = c.n ? stats::pop_std(c.values) : kNaN;
      c.std_sample = c.n ? stats::sample_std(c.values) : kNaN;
      c.is_baseline = src == options.baseline;
      col.cells.push_back(c);
    }
    const CellSummary* best = nullptr;
    for (const CellSummary& c : col.cells)
      if (c.n > 0 && (!best || c.mean > best->mean)) best = &c;
    const CellSummary* base = col.find(options.baseline);
    col.has_baseline = base && base->n > 0;
    if (col.has_baseline) col.baseline_mean = base->mean;
    if (best) {
      col.best_source = best->source;
      col.best_mean = best->mean;
    }
    for (CellSummary& c : col.cells) {
      if (c.n == 0) continue;
      c.is_best = best && c.source == best->source;
      if (col.has_baseline && !c.is_baseline) c.vs_baseline = compare(c, *base, options.primary_test);
      if (best && !c.is_best) {
        c.vs_best = compare(c, *best, options.primary_test);
        const bool tied_constant = std::isnan(c.vs_best.p) && c.n >= 2 && best->n >= 2 && c.mean == best->mean;
        c.not_different_from_best = (!std::isnan(c.vs_best.p) && c.vs_best.p >= options.alpha) || tied_constant;
      }
    }
    std::string fig = "fig_" + sanitize_file_part(col.target) + "_" + sanitize_file_part(col.metric);
    std::string unique = fig;
    for (int k = 2; figure_names.count(unique); ++k) unique = fig + "_" + std::to_string(k);
    figure_names.insert(unique);
    col.figure = unique + ".svg";
    s.columns.push_back(std::move(col));
  }
  s.records = std::move(records);
  s.scores_sha256 = sha256_hex(scores_canonical_text(s.records));
  return s;
}


// ---- report.md -------------------------------------------------------------------------------

std::string report_markdown(const Summary& s) {
  const ReportOptions& o = s.options;
  const double k = o.display_scale;
  const int d = o.decimals;
  const std::string unit = k == 100.0 ? " (%)" : k == 1.0 ? "" : " (x" + format_double(k) + ")";
  const std::string test = o.primary_test == stats::TTestKind::Student ? "Student" : "Welch";
  const std::string alpha = format_double(o.alpha);
  std::string m;
  m += "# Benchmark report: " + md_escape(o.experiment) + "\n\n";
  m += std::to_string(s.records.size()) + " runs recorded, " + std::to_string(s.records.size() - s.num_failed) +
       " finished, " + std::to_string(s.num_failed) + " failed.\n\n";
  m += "Scores SHA-256: `" + s.scores_sha256 + "`  \n";
  m += "(SHA-256 of one line per run, in results.csv order: source, target, metric, run, seed and value separated by "
       "tabs, value as in results.csv or `failed`, each line ending in a newline. Equal hashes mean bit-identical "
       "scores; epochs and wall times are not included.)\n\n";

  // The main table, the paper's layout.
  m += "## Results\n\n";
  m += "Mean ± std over the finished runs" + unit + "; std is the population std (ddof 0, the paper's `np.std`). ";
  m += "**Bold**: best mean of the column. †: not significantly different from the best (two-sided " + test +
       " t-test, p ≥ " + alpha + "; the paper shades these cells green, markdown has no shading). ";
  m += "–: not evaluated (a source is not evaluated on the data it was pre-trained on).\n\n";
  m += "| Initialization |";
  for (const ColumnSummary& col : s.columns) m += " " + md_escape(column_title(col)) + " |";
  m += "\n|---|";
  for (size_t i = 0; i < s.columns.size(); ++i) m += "---|";
  m += "\n";
  std::set<int64_t> ns;
  for (const std::string& src : s.sources) {
    m += "| " + md_escape(src) + " |";
    for (const ColumnSummary& col : s.columns) {
      const CellSummary* c = col.find(src);
      std::string cell;
      if (!c) {
        cell = "–";
      } else if (c->n == 0) {
        cell = "all " + std::to_string(c->failed) + " runs failed";
      } else {
        ns.insert(c->n);
        cell = fixed(c->mean * k, d) + " ± " + fixed(c->std_pop * k, d);
        if (c->is_best) cell = "**" + cell + "**";
        if (c->not_different_from_best) cell += " †";
        if (c->failed) cell += " (" + std::to_string(c->failed) + " failed)";
      }
      m += " " + cell + " |";
    }
    m += "\n";
  }
  if (ns.size() == 1) {
    m += "\nRuns per cell: " + std::to_string(*ns.begin()) + ".\n";
  } else if (!ns.empty()) {
    m += "\nRuns per cell differ (n ranges from " + std::to_string(*ns.begin()) + " to " +
         std::to_string(*ns.rbegin()) + "); the per-target tables give each n.\n";
  }

  // Marks against the baseline, the paper's Fig. 2 convention.
  m += "\n## Against the baseline (" + md_escape(o.baseline) + ")\n\n";
  m += "Two-sided " + test +
       " t-test of each source against " + md_escape(o.baseline) +
       ". Marks (the paper's Fig. 2 legend): n.s. p ≥ 0.05, \\* p < 0.05, \\*\\* p < 0.01, \\*\\*\\* p < 0.0001 "
       "(there is no separate p < 0.001 level). ↓: significantly *below* the baseline; the paper's figure leaves "
       "such bars unmarked, here they are marked so nothing is hidden. n/a: not testable (fewer than 2 runs, or no "
       "variation).\n\n";
  m += "| Initialization |";
  for (const ColumnSummary& col : s.columns) m += " " + md_escape(column_title(col)) + " |";
  m += "\n|---|";
  for (size_t i = 0; i < s.columns.size(); ++i) m += "---|";
  m += "\n";
  for (const std::string& src : s.sources) {
    m += "| " + md_escape(src) + " |";
    for (const ColumnSummary& col : s.columns) {
      const CellSummary* c = col.find(src);
      std::string cell = "–";
      if (c && c->n > 0) {
        if (c->is_baseline) cell = "baseline";
        else if (!col.has_baseline) cell = "no baseline";
        else cell = md_escape(directional_mark(c->vs_baseline)) + " (p " + format_p(c->vs_baseline.p) + ")";
      }
      m += " " + cell + " |";
    }
    m += "\n";
  }

  // Per-target details: both tests, against the baseline and the best.
  m += "\n## Per target\n\n";
  m += "Δ in points" + unit + ". p: two-sided, Student (pooled variance) / Welch (Welch–Satterthwaite df); the "
       "paper's exact test variant is unknown, so both are given. The mark and † use " + test + ".\n";
  for (const ColumnSummary& col : s.columns) {
    m += "\n### " + md_escape(column_title(col)) + "\n\n";
    m += "Best: **" + md_escape(col.best_source.empty() ? "none" : col.best_source) + "**";
    if (col.has_baseline) m += ". Baseline " + md_escape(o.baseline) + ": " + fixed(col.baseline_mean * k, d);
    else m += ". " + md_escape(o.baseline) + " was not evaluated here: no baseline comparison";
    m += ". Figure: [" + col.figure + "](" + col.figure + ")\n\n";
    m += "| Initialization | n | mean ± std | sample std | Δ vs " + md_escape(o.baseline) +
         " | p Student | p Welch | mark | Δ vs best | p vs best (Student / Welch) |\n";
    m += "|---|---|---|---|---|---|---|---|---|---|\n";
    for (const CellSummary& c : col.cells) {
      m += "| " + md_escape(c.source) + (c.is_best ? " (best)" : "") + " | " + std::to_string(c.n) +
           (c.failed ? " (+" + std::to_string(c.failed) + " failed)" : "") + " | ";
      if (c.n == 0) {
        m += "– | – | – | – | – | – | – | – |\n";
        continue;
      }
      m += fixed(c.mean * k, d) + " ± " + fixed(c.std_pop * k, d) + " | " + fixed(c.std_sample * k, d) + " | ";
      const Comparison& b = c.vs_baseline;
      if (b.present)
        m += signed_fixed(b.diff * k, d) + " | " + format_p(b.student.p) + " | " + format_p(b.welch.p) + " | " +
             md_escape(directional_mark(b)) + " | ";
      else
        m += std::string(c.is_baseline ? "baseline" : "–") + " | | | | ";
      const Comparison& w = c.vs_best;
      if (w.present)
        m += signed_fixed(w.diff * k, d) + " | " + format_p(w.student.p) + " / " + format_p(w.welch.p) +
             (c.not_different_from_best ? " †" : "") + " |\n";
      else
        m += std::string(c.is_best ? "best" : "–") + " | |\n";
    }
    m += "\n![" + md_escape(column_title(col)) + "](" + col.figure + ")\n";
  }

  if (s.num_failed) {
    m += "\n## Failed runs\n\nNot part of any statistic above.\n\n| source | target | metric | run | seed | reason |\n";
    m += "|---|---|---|---|---|---|\n";
    for (const RunRecord& r : s.records)
      if (!r.failure.empty())
        m += "| " + md_escape(r.source) + " | " + md_escape(r.target) + " | " + md_escape(r.metric) + " | " +
             std::to_string(r.run) + " | " + std::to_string(r.seed) + " | " + md_escape(r.failure) + " |\n";
  }
  m += "\n## Files\n\n`results.csv` (one row per run), `summary.json` (every number above, unrounded), and one "
       "figure per column.\n";
  return m;
}

// ---- files -----------------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> render_report(const Summary& s) {
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("results.csv", results_csv(s));
  files.emplace_back("summary.json", summary_json(s));
  files.emplace_back("report.md", report_markdown(s));
  for (size_t i = 0; i < s.columns.size(); ++i) files.emplace_back(s.columns[i].figure, bar_chart_svg(s, i));
  return files;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MEDTL_CHECK(fd >= 0, "cannot create ", tmp, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      MEDTL_CHECK(false, "cannot write ", tmp, ": ", why, " (disk full?)");
    }
    done += static_cast<size_t>(w);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    ::unlink(tmp.c_str());
    MEDTL_CHECK(false, "cannot flush ", tmp, ": ", std::strerror(synced ? errno : sync_errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    MEDTL_CHECK(false, "cannot rename ", tmp, " to ", path, ": ", why);
  }
  // Make the rename itself durable; best effort (some file systems refuse fsync on folders).
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

Summary write_report(const std::vector<RunRecord>& records, const ReportOptions& options, const std::string& dir) {
  Summary s = summarize(records, options);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  MEDTL_CHECK(!ec, "cannot create the report folder ", dir, ": ", ec.message());
  for (const auto& [name, content] : render_report(s)) write_file_atomic((std::filesystem::path(dir) / name).string(), content);
  return s;
}

}  // namespace medtl::experiments::report
