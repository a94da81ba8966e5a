// Parsing and validating benchmark configs (INI sections, protocol defaults, overrides, seeds).
#include "experiments/benchmark_config.h"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "experiments/report.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/philox.h"

namespace medtl::experiments::bench {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// Strips a comment: '#' at the start of the line or after whitespace.
std::string strip_comment(const std::string& line) {
  for (size_t i = 0; i < line.size(); ++i)
    if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) return line.substr(0, i);
  return line;
}

const std::set<std::string>& protocol_keys() {
  static const std::set<std::string> keys = {
      "image_size", "resize", "batch", "eval_batch", "lr", "max_epochs", "patience", "lr_patience", "lr_factor",
      "cosine_epochs", "ten_crop", "augment", "augment_val", "loss", "resize_interp", "train_limit", "val_limit",
      "test_limit", "max_loss", "workers", "debug_nan_at_step"};
  return keys;
}

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string one_of(const std::string& value, const std::vector<std::string>& allowed, const std::string& what) {
  for (const auto& a : allowed)
    if (value == a) return value;
  throw Error(str_cat(what, " must be one of ", join(allowed), ", got '", value, "'"));
}

// The paper's protocol (paper-protocol.md §4.1 / §4.2) as the built-in default of each task.
Protocol paper_protocol(const std::string& task) {
  Protocol p;
  p.task = task;
  if (task == "segmentation") {
    p.batch = 32, p.eval_batch = 48, p.lr = 1e-3, p.max_epochs = 200, p.patience = 21;
  }
  p.max_loss = 20.0;
  return p;
}

void apply_protocol_key(Protocol& p, const std::string& key, const std::string& value, const std::string& where) {
  const std::string what = where + ": '" + key + "'";
  if (key == "image_size") p.image_size = parse_int(value, what, 32);
  else if (key == "resize") p.resize = parse_int(value, what, 1);
  else if (key == "batch") p.batch = parse_int(value, what, 1);
  else if (key == "eval_batch") p.eval_batch = parse_int(value, what, 1);
  else if (key == "lr") p.lr = parse_double(value, what);
  else if (key == "max_epochs") p.max_epochs = parse_int(value, what, 1);
  else if (key == "patience") p.patience = parse_int(value, what, 1);
  else if (key == "lr_patience") p.lr_patience = parse_int(value, what, 0);
  else if (key == "lr_factor") p.lr_factor = parse_double(value, what);
  else if (key == "cosine_epochs") p.cosine_epochs = parse_int(value, what, 0);
  else if (key == "ten_crop") p.ten_crop = parse_bool(value, what);
  else if (key == "augment") p.augment = one_of(value, {"paper", "none"}, what);
  else if (key == "augment_val") p.augment_val = parse_bool(value, what);
  else if (key == "loss") p.loss = one_of(value, {"dice", "bce", "bce_dice"}, what);
  else if (key == "resize_interp") p.resize_interp = one_of(value, {"nearest", "antialias"}, what);
  else if (key == "train_limit") p.train_limit = parse_int(value, what, 0);
  else if (key == "val_limit") p.val_limit = parse_int(value, what, 0);
  else if (key == "test_limit") p.test_limit = parse_int(value, what, 0);
  else if (key == "max_loss") p.max_loss = parse_double(value, what);
  else if (key == "workers") p.workers = parse_int(value, what, 0);
  else if (key == "debug_nan_at_step") p.debug_nan_at_step = parse_int(value, what, -1);
  else throw Error(str_cat(where, ": unknown key '", key, "'"));
}

void apply_section_protocol(Protocol& p, const Section* s, const std::string& origin) {
  if (s == nullptr) return;
  for (const auto& [key, value] : s->entries)
    if (protocol_keys().count(key))
      apply_protocol_key(p, key, value, str_cat(origin, ":", s->lines.at(key), " [", s->kind, "]"));
}

DataSpec parse_data(const Section& s, const std::string& where) {
  DataSpec d;
  const std::string* data = s.find("data");
  MEDTL_CHECK(data != nullptr, where, ": needs 'data = <kind> <path>'");
  std::vector<std::string> words = split_words(*data);
  MEDTL_CHECK(words.size() >= 2, where, ": 'data' needs a kind and a path, got '", *data, "'");
  d.kind = one_of(words[0],
                  {"folder", "medmnist", "isbi2012", "isbi2012-membrane", "dsb2018", "paired", "drive", "montgomery", "chestxray14",
                   "chexpert", "shenzhen"},
                  where + ": data kind");
  d.paths.assign(words.begin() + 1, words.end());
  static const std::map<std::string, std::vector<std::string>> default_splits = {
      {"folder", {"train", "valid", "test"}},  {"medmnist", {"train", "val", "test"}},
      {"isbi2012", {"0-19", "20-24", "25-29"}}, {"isbi2012-membrane", {"0-19", "20-24", "25-29"}},
      {"dsb2018", {"0.7", "0.15", "0.15"}},
      {"paired", {"train", "val", "test"}},    {"drive", {"train", "validate", "test"}},
      {"montgomery", {"0.7", "0.1", "0.2"}}};
  if (const std::string* splits = s.find("splits")) {
    d.splits = split_words(*splits);
  } else {
    const auto it = default_splits.find(d.kind);
    MEDTL_CHECK(it != default_splits.end(), where, ": data kind '", d.kind,
                "' needs 'splits = <train> <val> <test>' (list files or CSVs; see docs/benchmark.md)");
    d.splits = it->second;
  }
  MEDTL_CHECK(d.splits.size() == 3, where, ": 'splits' needs exactly three entries (train val test), got ",
              d.splits.size());
  if (const std::string* get = s.find("get")) d.where = *get;
  return d;
}

void check_keys(const Section& s, const std::set<std::string>& allowed, const std::string& origin) {
  for (const auto& [key, value] : s.entries) {
    if (allowed.count(key)) continue;
    std::vector<std::string> names(allowed.begin(), allowed.end());
    throw Error(str_cat(origin, ":", s.lines.at(key), ": unknown key '", key, "' in [", s.kind,
                        s.name.empty() ? "" : " " + s.name, "]; known: ", join(names)));
  }
}

std::set<std::string> with_protocol(std::set<std::string> keys) {
  keys.insert(protocol_keys().begin(), protocol_keys().end());
  return keys;
}

std::vector<Section> parse_sections(const std::string& text, const std::string& origin) {
  std::vector<Section> sections;
  std::istringstream in(text);
  std::string raw;
  int line_no = 0;
  while (std::getline(in, raw)) {
    ++line_no;
    const std::string line = trim(strip_comment(raw));
    if (line.empty()) continue;
    if (line.front() == '[') {
      MEDTL_CHECK(line.back() == ']', origin, ":", line_no, ": a section header needs a closing ']': '", line, "'");
      const std::string header = trim(line.substr(1, line.size() - 2));
      Section s;
      const size_t space = header.find(' ');
      s.kind = header.substr(0, space);
      s.name = space == std::string::npos ? "" : trim(header.substr(space + 1));
      s.line = line_no;
      one_of(s.kind, {"experiment", "classification", "segmentation", "pretraining", "source", "target"},
             str_cat(origin, ":", line_no, ": section kind"));
      const bool named = s.kind == "source" || s.kind == "target";
      MEDTL_CHECK(named == !s.name.empty(), origin, ":", line_no, ": [", s.kind, "] ",
                  named ? "needs a name: [source NAME]" : "takes no name");
      for (const Section& other : sections)
        MEDTL_CHECK(other.kind != s.kind || other.name != s.name, origin, ":", line_no, ": [", header,
                    "] was already defined on line ", other.line);
      sections.push_back(s);
      continue;
    }
    const size_t eq = line.find('=');
    MEDTL_CHECK(eq != std::string::npos, origin, ":", line_no, ": expected 'key = value', got '", line, "'");
    MEDTL_CHECK(!sections.empty(), origin, ":", line_no, ": 'key = value' before the first [section]");
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    Section& s = sections.back();
    MEDTL_CHECK(!key.empty() && !value.empty(), origin, ":", line_no, ": empty key or value in '", line, "'");
    MEDTL_CHECK(!s.lines.count(key), origin, ":", line_no, ": '", key, "' was already set on line ", s.lines[key]);
    s.entries.emplace_back(key, value);
    s.lines[key] = line_no;
  }
  return sections;
}

// "section.key=value": the section is the header text ("target NIH"); the key follows the last '.'
// before the '='.
void apply_override(std::vector<Section>& sections, const std::string& item) {
  const size_t eq = item.find('=');
  MEDTL_CHECK(eq != std::string::npos, "--set '", item, "': expected section.key=value");
  const std::string lhs = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
  const size_t dot = lhs.rfind('.');
  MEDTL_CHECK(dot != std::string::npos && dot > 0, "--set '", item, "': expected section.key=value");
  const std::string header = trim(lhs.substr(0, dot)), key = trim(lhs.substr(dot + 1));
  const size_t space = header.find(' ');
  const std::string kind = header.substr(0, space);
  const std::string name = space == std::string::npos ? "" : trim(header.substr(space + 1));
  for (Section& s : sections) {
    if (s.kind != kind || s.name != name) continue;
    for (auto& [k, v] : s.entries)
      if (k == key) {
        v = value;
        return;
      }
    s.entries.emplace_back(key, value);
    s.lines[key] = 0;
    return;
  }
  std::vector<std::string> headers;
  for (const Section& s : sections) headers.push_back(s.name.empty() ? s.kind : s.kind + " " + s.name);
  throw Error(str_cat("--set '", item, "': no section [", header, "]; sections: ", join(headers)));
}

}  // namespace

const std::string* Section::find(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

std::string Paths::expand(const std::string& value) const {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '{') {
      const size_t close = value.find('}', i);
      MEDTL_CHECK(close != std::string::npos, "unterminated ${ in '", value, "'");
      const std::string var = value.substr(i + 2, close - i - 2);
      if (var == "data") out += data;
      else if (var == "weights") out += weights;
      else if (var == "workspace") out += workspace;
      else throw Error(str_cat("unknown variable ${", var, "} in '", value, "' (known: ${data}, ${weights}, ${workspace})"));
      i = close;
    } else {
      out += value[i];
    }
  }
  return out;
}

std::string DataSpec::canonical() const { return kind + " " + join(paths, " ") + " | " + join(splits, " "); }

std::string Protocol::canonical() const {
  using report::format_double;
  std::ostringstream o;
  o << "task=" << task << " image_size=" << image_size << " batch=" << batch << " lr=" << format_double(lr)
    << " max_epochs=" << max_epochs << " patience=" << patience << " augment=" << augment
    << " limits=" << train_limit << "/" << val_limit << "/" << test_limit << " max_loss=" << format_double(max_loss)
    << " debug_nan_at_step=" << debug_nan_at_step << " eval_batch=" << eval_batch;
  if (task == "classification")
    o << " resize=" << resize << " lr_patience=" << lr_patience << " lr_factor=" << format_double(lr_factor)
      << " ten_crop=" << ten_crop;
  else
    o << " cosine_epochs=" << cosine_epochs << " augment_val=" << augment_val << " loss=" << loss
      << " resize_interp=" << resize_interp;
  return o.str();
}

std::vector<std::string> TargetSpec::metric_columns() const {
  if (metric == "dice") return {"dice_global", "dice_mean"};
  return {metric};
}

const SourceSpec& ExperimentConfig::source(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& s : sources) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  throw Error(str_cat("no source named '", name, "'; sources: ", join(names)));
}

const TargetSpec& ExperimentConfig::target(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& t : targets) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  throw Error(str_cat("no target named '", name, "'; targets: ", join(names)));
}

std::string ExperimentConfig::common_canonical() const {
  // A GPU computes other bits than the CPU, so its runs are other runs (which GPU of a machine does
  // not matter); CPU identities stay as they were before devices existed, so stored results keep
  // their hashes.
  return str_cat("variant=", variant, " deterministic=", deterministic, " conv_chunk=", conv_chunk,
                 " seed=", seed, device == "cpu" ? "" : " device=" + device.substr(0, device.find(':')));
}

ExperimentConfig parse_config(const std::string& text, const std::string& origin,
                              const std::vector<std::string>& overrides) {
  std::vector<Section> sections = parse_sections(text, origin);
  for (const auto& item : overrides) apply_override(sections, item);
  auto find_section = [&](const std::string& kind) -> const Section* {
    for (const Section& s : sections)
      if (s.kind == kind) return &s;
    return nullptr;
  };
  ExperimentConfig c;
  c.text = text;
  for (const auto& item : overrides) c.text += "\n# --set " + item;
  const Section* exp = find_section("experiment");
  MEDTL_CHECK(exp != nullptr, origin, ": needs an [experiment] section (name, runs, seed, ...)");
  check_keys(*exp, {"name", "description", "runs", "seed", "variant", "baseline", "deterministic", "conv_chunk",
                    "device", "checkpoint_seconds"}, origin);
  const std::string where = origin + " [experiment]";
  for (const auto& [key, value] : exp->entries) {
    if (key == "name") c.name = value;
    else if (key == "description") c.description = value;
    else if (key == "runs") c.runs = parse_int(value, where + " runs", 1);
    else if (key == "seed") c.seed = static_cast<uint64_t>(parse_int(value, where + " seed", 0));
    else if (key == "variant") c.variant = one_of(value, {"keras", "torchvision"}, where + " variant");
    else if (key == "baseline") c.baseline = value;
    else if (key == "deterministic") c.deterministic = parse_bool(value, where + " deterministic");
    else if (key == "conv_chunk") c.conv_chunk = parse_int(value, where + " conv_chunk", 1);
    else if (key == "device") c.device = parse_device(value).str();
    else if (key == "checkpoint_seconds") c.checkpoint_seconds = parse_double(value, where + " checkpoint_seconds");
  }
  for (const char* kind : {"classification", "segmentation", "pretraining"})
    if (const Section* s = find_section(kind)) check_keys(*s, protocol_keys(), origin);
  for (char ch : c.name)
    MEDTL_CHECK(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.', where,
                ": name '", c.name, "' may hold only letters, digits, '-', '_' and '.' (it names a folder)");

  for (const Section& s : sections) {
    const std::string at = str_cat(origin, ":", s.line, " [", s.kind, " ", s.name, "]");
    if (s.kind == "source") {
      SourceSpec src;
      src.name = s.name;
      const std::string* init = s.find("init");
      MEDTL_CHECK(init != nullptr, at, ": needs 'init = random | weights | pretrain'");
      src.init = one_of(*init, {"random", "weights", "pretrain"}, at + " init");
      if (src.init == "random") {
        check_keys(s, {"init", "preprocess"}, origin);
        const std::string* pre = s.find("preprocess");
        src.preprocess = one_of(pre ? *pre : "caffe", {"caffe", "imagenet", "chestxray"}, at + " preprocess");
      } else if (src.init == "weights") {
        check_keys(s, {"init", "weights"}, origin);
        const std::string* w = s.find("weights");
        MEDTL_CHECK(w != nullptr, at, ": init = weights needs 'weights = <file.h5>'");
        src.weights = *w;
      } else {
        check_keys(s, with_protocol({"init", "from", "data", "splits", "get"}), origin);
        const std::string* from = s.find("from");
        MEDTL_CHECK(from != nullptr, at, ": init = pretrain needs 'from = <source name>'");
        src.from = *from;
        src.data = parse_data(s, at);
        src.protocol = paper_protocol("classification");
        apply_section_protocol(src.protocol, find_section("classification"), origin);
        apply_section_protocol(src.protocol, find_section("pretraining"), origin);
        apply_section_protocol(src.protocol, &s, origin);
      }
      c.sources.push_back(src);
    } else if (s.kind == "target") {
      TargetSpec t;
      t.name = s.name;
      check_keys(s, with_protocol({"task", "data", "splits", "get", "metric", "eval_outputs"}), origin);
      const std::string* task = s.find("task");
      MEDTL_CHECK(task != nullptr, at, ": needs 'task = classification | segmentation'");
      one_of(*task, {"classification", "segmentation"}, at + " task");
      t.data = parse_data(s, at);
      t.protocol = paper_protocol(*task);
      apply_section_protocol(t.protocol, find_section(*task), origin);
      apply_section_protocol(t.protocol, &s, origin);
      const std::string* metric = s.find("metric");
      t.metric = metric ? *metric : (*task == "classification" ? "auc" : "dice");
      one_of(t.metric, {*task == "classification" ? "auc" : "dice"}, at + " metric (for task " + *task + ")");
      if (const std::string* outs = s.find("eval_outputs"))
        for (const auto& w : split_words(*outs)) t.eval_outputs.push_back(parse_int(w, at + " eval_outputs", 0));
      c.targets.push_back(t);
    }
  }
  // ---- Cross-checks. ----
  MEDTL_CHECK(!c.sources.empty(), origin, ": no [source NAME] section");
  MEDTL_CHECK(!c.targets.empty(), origin, ": no [target NAME] section");
  std::set<std::string> names;
  for (const auto& s : c.sources) {
    if (s.init == "pretrain") {
      bool known = false;
      for (const auto& other : c.sources) known |= other.name == s.from && other.name != s.name;
      MEDTL_CHECK(known, origin, ": [source ", s.name, "] starts from '", s.from, "', which is not another source");
    }
  }
  for (const auto& s : c.sources) {  // no cycles: follow `from` at most |sources| times
    std::string at = s.name;
    for (size_t hops = 0; c.source(at).init == "pretrain"; ++hops) {
      MEDTL_CHECK(hops < c.sources.size(), origin, ": the pre-training chain of [source ", s.name, "] has a cycle");
      at = c.source(at).from;
    }
  }
  bool has_baseline = false;
  for (const auto& s : c.sources) has_baseline |= s.name == c.baseline;
  MEDTL_CHECK(has_baseline, origin, ": baseline '", c.baseline, "' is not one of the sources");
  for (const auto& t : c.targets) {
    const Protocol& p = t.protocol;
    MEDTL_CHECK(p.task != "segmentation" || p.image_size % 32 == 0, origin, ": [target ", t.name,
                "] image_size must be a multiple of 32 for the U-Net, got ", p.image_size);
    MEDTL_CHECK(p.task != "classification" || p.resize >= p.image_size, origin, ": [target ", t.name, "] resize (",
                p.resize, ") must be >= image_size (", p.image_size, ")");
  }
  return c;
}

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  MEDTL_CHECK(in.good(), "cannot read the config file '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

std::vector<std::string> split_overrides(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ';'))
    if (!trim(item).empty()) out.push_back(trim(item));
  return out;
}

uint64_t derive_seed(uint64_t seed, const std::string& purpose) {
  // A stable 64-bit hash of the purpose (FNV-1a), then one Philox block keyed by the seed.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : purpose) h = (h ^ ch) * 1099511628211ull;
  const PhiloxBlock b = philox_random(seed, 0xBE7Cull, h);
  return (static_cast<uint64_t>(b[0]) << 32 | b[1]) >> 1;  // < 2^63: prints the same signed or unsigned
}

uint64_t run_seed(uint64_t experiment_seed, int64_t run) { return derive_seed(experiment_seed, str_cat("run ", run)); }

bool parse_bool(const std::string& value, const std::string& what) {
  if (value == "true" || value == "1" || value == "yes") return true;
  if (value == "false" || value == "0" || value == "no") return false;
  throw Error(str_cat(what, ": expected true or false, got '", value, "'"));
}

int64_t parse_int(const std::string& value, const std::string& what, int64_t min) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MEDTL_CHECK(used == value.size() && v >= min, what, ": expected an integer >= ", min, ", got '", value, "'");
  return v;
}

double parse_double(const std::string& value, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MEDTL_CHECK(used == value.size() && v >= 0.0, what, ": expected a number >= 0, got '", value, "'");
  return v;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

}  // namespace medtl::experiments::bench
