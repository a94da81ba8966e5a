// The benchmark report's data files: results.csv (written, and parsed back for --merge and
// reruns) and summary.json (every figure of the report, machine-readable). report.cc makes the
// Summary they are written from and report.md; see report.h for the formats.
#include "experiments/report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace medtl::experiments::report {

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string csv_field(const std::string& s) {
  const bool quote = s.find_first_of(",\"\n\r") != std::string::npos || (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// ---- a minimal JSON writer (2-space indent, deterministic) ---------------------------------

class JsonWriter {
 public:
  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(const std::string& k) {
    prefix();
    out_ += json_quote(k) + ": ";
    after_key_ = true;
  }
  void raw(const std::string& v) {
    prefix();
    out_ += v;
  }
  void string(const std::string& v) { raw(json_quote(v)); }
  void number(double v) { raw(std::isfinite(v) ? format_double(v) : "null"); }
  void integer(int64_t v) { raw(std::to_string(v)); }
  void boolean(bool v) { raw(v ? "true" : "false"); }
  template <typename T, typename F>
  void inline_array(const std::vector<T>& xs, F fmt) {
    std::string s = "[";
    for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + fmt(xs[i]);
    raw(s + "]");
  }
  // Convenience: "key": value.
  void field(const std::string& k, const std::string& v) {
    key(k);
    string(v);
  }
  void field_number(const std::string& k, double v) {
    key(k);
    number(v);
  }
  void field_int(const std::string& k, int64_t v) {
    key(k);
    integer(v);
  }
  void field_bool(const std::string& k, bool v) {
    key(k);
    boolean(v);
  }
  std::string str() const { return out_ + "\n"; }

 private:
  void open(char c) {
    prefix();
    out_ += c;
    has_items_.push_back(false);
  }
  void close(char c) {
    const bool had = has_items_.back();
    has_items_.pop_back();
    if (had) newline();
    out_ += c;
  }
  void prefix() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (has_items_.empty()) return;
    if (has_items_.back()) out_ += ',';
    has_items_.back() = true;
    newline();
  }
  void newline() {
    out_ += '\n';
    out_.append(2 * has_items_.size(), ' ');
  }
  std::string out_;
  std::vector<bool> has_items_;
  bool after_key_ = false;
};

}  // namespace

// ---- results.csv -----------------------------------------------------------------------------

namespace {
const char* const kCsvHeader = "source,target,metric,run,seed,value,status,epochs,wall_seconds,config_hash,failure";
}

std::string results_csv(const Summary& s) {
  std::string out = std::string(kCsvHeader) + "\n";
  for (const RunRecord& r : s.records) {
    const bool ok = r.failure.empty();
    out += csv_field(r.source) + "," + csv_field(r.target) + "," + csv_field(r.metric) + "," + std::to_string(r.run) +
           "," + std::to_string(r.seed) + "," + (ok ? format_double(r.value) : "") + "," + (ok ? "ok" : "failed") +
           "," + std::to_string(r.epochs) + "," + format_double(r.wall_seconds) + "," + csv_field(r.config_hash) + "," +
           csv_field(r.failure) + "\n";
  }
  return out;
}

namespace {

// Splits CSV text into rows of fields (RFC 4180: quoted fields, "" escapes, newlines in quotes).
std::vector<std::vector<std::string>> parse_csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool in_quotes = false, field_started = false;
  int64_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      MEDTL_CHECK(field.empty(), "results csv line ", line, ": a quote in the middle of an unquoted field");
      in_quotes = field_started = true;
    } else if (c == ',') {
      row.push_back(field), field.clear(), field_started = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (field_started || !field.empty() || !row.empty()) row.push_back(field);
      if (!row.empty()) rows.push_back(row);
      row.clear(), field.clear(), field_started = false;
      ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  MEDTL_CHECK(!in_quotes, "results csv: unterminated quoted field at the end of the text");
  if (field_started || !field.empty() || !row.empty()) {
    row.push_back(field);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

std::vector<RunRecord> parse_results_csv(const std::string& text) {
  const auto rows = parse_csv_rows(text);
  MEDTL_CHECK(!rows.empty(), "results csv: empty text (expected the header ", kCsvHeader, ")");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = i;
  for (const char* required : {"source", "target", "metric", "run", "seed", "value"})
    MEDTL_CHECK(col.count(required), "results csv: the header has no '", required, "' column (header: ",
                str_cat(rows[0].size()), " columns)");
  std::vector<RunRecord> out;
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& row = rows[i];
    MEDTL_CHECK(row.size() == rows[0].size(), "results csv row ", i + 1, ": ", row.size(), " fields, the header has ",
                rows[0].size());
    auto get = [&](const char* name) -> std::string { return col.count(name) ? row[col[name]] : std::string(); };
    auto parse_number = [&](const char* name, bool integer) -> double {
      const std::string v = get(name);
      if (v.empty() && std::string(name) != "run" && std::string(name) != "seed") return 0.0;
      char* end = nullptr;
      errno = 0;
      const double d = integer ? static_cast<double>(std::strtoll(v.c_str(), &end, 10)) : std::strtod(v.c_str(), &end);
      MEDTL_CHECK(!v.empty() && end == v.c_str() + v.size() && errno == 0, "results csv row ", i + 1, ": ", name,
                  " '", v, "' is not a ", integer ? "integer" : "number");
      return d;
    };
    RunRecord r;
    r.source = get("source"), r.target = get("target"), r.metric = get("metric");
    r.run = static_cast<int64_t>(parse_number("run", true));
    {
      const std::string v = get("seed");
      char* end = nullptr;
      errno = 0;
      r.seed = std::strtoull(v.c_str(), &end, 10);
      MEDTL_CHECK(!v.empty() && v[0] != '-' && end == v.c_str() + v.size() && errno == 0, "results csv row ", i + 1,
                  ": seed '", v, "' is not an unsigned integer");
    }
    r.epochs = static_cast<int64_t>(parse_number("epochs", true));
    r.wall_seconds = parse_number("wall_seconds", false);
    r.config_hash = get("config_hash");
    const std::string status = get("status");
    MEDTL_CHECK(status.empty() || status == "ok" || status == "failed", "results csv row ", i + 1, ": status '",
                status, "' is neither 'ok' nor 'failed'");
    if (status == "failed") {
      r.failure = get("failure").empty() ? "failed" : get("failure");
      r.value = kNaN;
    } else {
      r.value = parse_number("value", false);
      MEDTL_CHECK(!get("value").empty(), "results csv row ", i + 1, ": a finished run without a value");
    }
    out.push_back(std::move(r));
  }
  return out;
}

// ---- summary.json ----------------------------------------------------------------------------

namespace {
void write_ttest(JsonWriter& j, const char* name, const stats::TTest& t) {
  j.key(name);
  j.begin_object();
  j.field_number("t", t.t);
  j.field_number("df", t.df);
  j.field_number("p", t.p);
  if (!t.note.empty()) j.field("note", t.note);
  j.end_object();
}

void write_comparison(JsonWriter& j, const char* name, const Comparison& c) {
  j.key(name);
  if (!c.present) {
    j.raw("null");
    return;
  }
  j.begin_object();
  j.field("against", c.against);
  j.field_number("diff", c.diff);
  write_ttest(j, "student", c.student);
  write_ttest(j, "welch", c.welch);
  j.field("mark", c.mark);
  j.field("direction", c.diff > 0 ? "above" : c.diff < 0 ? "below" : "equal");
  j.end_object();
}
}  // namespace

std::string summary_json(const Summary& s) {
  JsonWriter j;
  j.begin_object();
  j.field("format", "medtl-benchmark-summary/1");
  j.field("experiment", s.options.experiment);
  j.field("baseline", s.options.baseline);
  j.field("primary_test", stats::ttest_name(s.options.primary_test));
  j.field_number("alpha", s.options.alpha);
  j.field("std", "cells give std_pop (ddof 0, as the paper's np.std) and std_sample (ddof 1)");
  j.field("marks", "*** p<0.0001, ** p<0.01, * p<0.05, n.s. otherwise (two-sided; paper Fig. 2 legend)");
  j.field("scores_sha256", s.scores_sha256);
  j.field_int("num_records", static_cast<int64_t>(s.records.size()));
  j.field_int("num_failed", s.num_failed);
  j.key("sources");
  j.inline_array(s.sources, json_quote);
  j.key("targets");
  j.begin_array();
  for (const ColumnSummary& col : s.columns) {
    j.begin_object();
    j.field("target", col.target);
    j.field("metric", col.metric);
    j.field("best_source", col.best_source);
    j.field_number("best_mean", col.best_source.empty() ? kNaN : col.best_mean);
    j.key("baseline_mean");
    j.number(col.has_baseline ? col.baseline_mean : kNaN);
    j.field("figure", col.figure);
    j.key("cells");
    j.begin_array();
    for (const CellSummary& c : col.cells) {
      j.begin_object();
      j.field("source", c.source);
      j.field_int("n", c.n);
      j.field_int("failed", c.failed);
      j.field_number("mean", c.mean);
      j.field_number("std_pop", c.std_pop);
      j.field_number("std_sample", c.std_sample);
      j.key("values");
      j.inline_array(c.values, [](double v) { return std::isfinite(v) ? format_double(v) : std::string("null"); });
      j.key("runs");
      j.inline_array(c.runs, [](int64_t v) { return std::to_string(v); });
      j.key("seeds");
      j.inline_array(c.seeds, [](uint64_t v) { return std::to_string(v); });
      j.field_bool("is_best", c.is_best);
      j.field_bool("is_baseline", c.is_baseline);
      j.field_bool("not_significantly_different_from_best", c.not_different_from_best);
      write_comparison(j, "vs_baseline", c.vs_baseline);
      write_comparison(j, "vs_best", c.vs_best);
      j.end_object();
    }
    j.end_array();
    j.end_object();
  }
  j.end_array();
  j.key("failures");
  j.begin_array();
  for (const RunRecord& r : s.records) {
    if (r.failure.empty()) continue;
    j.begin_object();
    j.field("source", r.source);
    j.field("target", r.target);
    j.field("metric", r.metric);
    j.field_int("run", r.run);
    j.key("seed");
    j.raw(std::to_string(r.seed));
    j.field("failure", r.failure);
    j.end_object();
  }
  j.end_array();
  j.end_object();
  return j.str();
}

}  // namespace medtl::experiments::report
