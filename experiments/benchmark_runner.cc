// Executes the grid: stages with provenance, runs with stored results, reports, shard merging.
#include "experiments/benchmark_runner.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "experiments/benchmark_data.h"
#include "experiments/benchmark_progress.h"
#include "experiments/benchmark_store.h"
#include "experiments/manifest.h"
#include "experiments/train_classifier.h"
#include "experiments/train_segmenter.h"
#include "models/weights.h"
#include "tensor/error.h"
#include "tensor/backend.h"

namespace medtl::experiments::bench {
namespace {

namespace fs = std::filesystem;
using report::RunRecord;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fixed4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

LoopSettings loop_settings(const Protocol& p, const ExperimentConfig& c, const std::string& ckpt,
                           const std::string& identity) {
  LoopSettings s;
  s.max_epochs = p.max_epochs, s.patience = p.patience, s.max_loss = p.max_loss;
  s.debug_nan_at_step = p.debug_nan_at_step;
  s.checkpoint_path = ckpt, s.checkpoint_seconds = c.checkpoint_seconds, s.identity = identity;
  return s;
}

// runs/<key>.json: the run manifest (environment, seeds, hashes) plus the training history.
void write_run_json(const std::string& path, const Job& job, const LoopResult& loop, const nn::Module* model,
                    const std::string& stop_or_failure) {
  RunManifest m = collect_run_environment("benchmark");
  m.config = job.identity;
  m.config_sha256 = report::sha256_hex(job.identity);
  m.seeds = {{"run", job.seed}, {"init", derive_seed(job.seed, "init")}, {"head", derive_seed(job.seed, "head")},
             {"loader", derive_seed(job.seed, "loader")}};
  m.epochs = loop.epochs;
  m.epoch_losses = loop.train_losses;
  m.losses_sha256 = float64_sha256(loop.train_losses);
  // The weights hash (state_dict_sha256, ~2 s for a ResNet-50 here) is left out of the default
  // manifest: the scores hash already checks reproducibility. Set MEDTL_HASH_WEIGHTS=1 to add it.
  const char* hash_weights = std::getenv("MEDTL_HASH_WEIGHTS");
  m.weights_sha256 = "not computed (MEDTL_HASH_WEIGHTS=1 computes it)";
  if (model != nullptr && hash_weights != nullptr && std::string(hash_weights) == "1")
    m.weights_sha256 = state_dict_sha256(*model);
  std::string history = "{\"best_epoch\": " + std::to_string(loop.best_epoch) + ", \"stop\": \"";
  for (char ch : stop_or_failure) history += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
  history += "\", \"val_losses\": [";
  for (size_t i = 0; i < loop.val_losses.size(); ++i)
    history += (i ? ", " : "") + report::format_double(loop.val_losses[i]);
  history += "], \"lrs\": [";
  for (size_t i = 0; i < loop.lrs.size(); ++i) history += (i ? ", " : "") + report::format_double(loop.lrs[i]);
  history += "]}";
  report::write_file_atomic(path, "{\"manifest\": " + manifest_json(m) + ",\n \"history\": " + history + "}\n");
}

// The sources `source` needs trained first, itself included when it is a stage.
std::vector<std::string> stage_chain(const ExperimentConfig& c, const std::string& source) {
  std::vector<std::string> out;
  for (std::string at = source; c.source(at).init == "pretrain"; at = c.source(at).from) out.push_back(at);
  return out;
}

class Runner {
 public:
  Runner(const Grid& grid, const RunnerOptions& options) : grid_(grid), c_(grid.config()), o_(options) {}

  GridOutcome run() {
    GridOutcome out;
    std::vector<Job> runs = grid_.shard(o_.shard_index, o_.shard_count);
    const auto stored = read_results_dir(o_.out_dir);
    std::vector<Job> todo;
    for (Job& job : runs) {
      grid_.identify(job);
      const auto it = stored.find(job.key);
      if (it != stored.end() && !it->second.empty() && it->second[0].config_hash == job.hash) {
        const bool failed = !it->second[0].failure.empty();
        if (!(failed && o_.retry_failed) && !o_.stages_only) {
          ++out.reused;
          continue;
        }
      } else if (it != stored.end()) {
        std::cerr << "note: " << job.key << ": the stored result was made with another config; rerunning it\n";
      }
      todo.push_back(job);
    }
    std::vector<Job> stages;
    for (const Job& stage : grid_.stages_for(todo)) {
      if (read_string_attribute(grid_.stage_path(stage.source, o_.pretrained_dir), "medtl_stage_hash") == stage.hash) {
        ++out.stages_reused;
        std::cerr << "reusing pre-trained " << stage.source << ": "
                  << grid_.stage_path(stage.source, o_.pretrained_dir) << "\n";
      } else {
        stages.push_back(stage);
      }
    }
    if (o_.stages_only) todo.clear();
    std::vector<std::string> kinds;
    for (size_t i = 0; i < stages.size(); ++i) kinds.push_back("stage");
    for (const Job& j : todo) kinds.push_back(j.target);
    std::cerr << "grid: " << grid_.runs().size() << " runs in all; this invocation: " << todo.size() << " to run, "
              << out.reused << " already stored, " << stages.size() << " pre-training stage(s) to make\n";
    GridProgress progress(kinds);
    for (const Job& stage : stages) {
      progress.begin_job(stage.label());
      try {
        const std::string summary = run_stage(stage, progress);
        ++out.stages_trained;
        progress.end_job(summary);
      } catch (const TrainingDiverged& e) {
        failed_stages_[stage.source] = e.what();
        progress.end_job(std::string("FAILED: ") + e.what());
      }
    }
    for (const Job& job : todo) {
      progress.begin_job(job.label());
      const bool ok = run_job(job, progress);
      ok ? ++out.ran : ++out.failed;
      out.have_report = write_experiment_report(grid_, o_.out_dir, &out.summary);
    }
    if (!out.have_report) out.have_report = write_experiment_report(grid_, o_.out_dir, &out.summary);
    std::error_code ec;
    fs::remove(o_.out_dir + "/work", ec);  // only when empty: no job is half done
    return out;
  }

 private:
  // Trains a pre-training stage and stores its weights with provenance; returns a summary line.
  std::string run_stage(const Job& stage, GridProgress& progress) {
    const SourceSpec& s = c_.source(stage.source);
    for (const std::string& up : stage_chain(c_, s.from))
      MEDTL_CHECK(!failed_stages_.count(up), "stage ", up, " failed");
    ClassifierJob job;
    job.protocol = s.protocol;
    job.data = load_split_data(s.data, grid_.paths(), s.protocol);
    job.init = grid_.model_init(s.from, o_.pretrained_dir);
    job.seed = stage.seed;
    job.device = parse_device(c_.device);
    const std::string path = grid_.stage_path(stage.source, o_.pretrained_dir);
    const std::string work = o_.pretrained_dir + "/work-" + file_safe(stage.source);
    fs::create_directories(work);
    std::cerr << "  data: " << job.data.describe() << "\n";
    const ClassifierResult r =
        train_classifier(job, loop_settings(s.protocol, c_, work + "/checkpoint.h5", stage.identity), progress.callback());
    models::WeightFileInfo info = job.init.info;  // the start's input preprocessing carries over
    info.architecture = "resnet50";
    info.variant = c_.variant;
    info.num_classes = job.data.outputs;
    info.bn_eps = c_.variant == "keras" ? 1e-3 : 1e-5;
    info.class_names_file = "";
    info.source = str_cat("medtl benchmark pre-training: ", s.from, " -> ", s.data.canonical(), " (", stage.source, ")");
    const std::string partial = path + ".partial.h5";
    models::save_weights(partial, *r.model, info);
    const std::map<std::string, std::string> provenance = {
        {"medtl_stage", stage.source},
        {"medtl_stage_hash", stage.hash},
        {"medtl_stage_identity", stage.identity},
        {"medtl_from", s.from},
        {"medtl_from_identity", grid_.source_identity(s.from)},
        {"medtl_from_weights", job.init.weights_path.empty() ? "random initialisation" : job.init.weights_path},
        {"medtl_data", s.data.canonical()},
        {"medtl_data_expanded", grid_.paths().expand(s.data.paths.at(0))},
        {"medtl_config_sha256", report::sha256_hex(c_.text)},
        {"medtl_experiment", c_.name},
        {"medtl_best_epoch", std::to_string(r.loop.best_epoch + 1)},
        {"medtl_epochs", std::to_string(r.loop.epochs)},
        {"medtl_best_val_loss", report::format_double(r.loop.best_val)},
        {"medtl_test_auc", report::format_double(r.auc.mean)}};
    write_string_attributes(partial, provenance);
    fs::rename(partial, path);
    std::string json = "{";
    for (const auto& [k, v] : provenance) {
      std::string esc;
      for (char ch : v) esc += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
      json += (json.size() > 1 ? ",\n " : "\n ") + ("\"" + k + "\": \"" + esc + "\"");
    }
    report::write_file_atomic(path + ".json", json + "\n}\n");
    fs::remove_all(work);
    return str_cat("saved ", path, " (best epoch ", r.loop.best_epoch + 1, "/", r.loop.epochs, ", val loss ",
                   fixed4(r.loop.best_val), ", test AUC ", fixed4(r.auc.mean), ")");
  }

  // One fine-tuning run; stores its records (or its failure). Returns false when it failed.
  bool run_job(const Job& job, GridProgress& progress) {
    const TargetSpec& t = c_.target(job.target);
    const std::string work = o_.out_dir + "/work/" + job.key;
    const std::string result_path = o_.out_dir + "/runs/" + job.key + ".csv";
    std::vector<RunRecord> records;
    auto record = [&](const std::string& metric, double value) {
      RunRecord r;
      r.source = job.source, r.target = job.target, r.run = job.run, r.seed = job.seed;
      r.metric = metric, r.value = value, r.config_hash = job.hash;
      records.push_back(r);
    };
    const double t0 = now_seconds();
    std::string outcome, failure;
    LoopResult loop;
    std::shared_ptr<nn::Module> model;
    for (const std::string& up : stage_chain(c_, job.source))
      if (failed_stages_.count(up)) failure = "pre-training stage " + up + " failed: " + failed_stages_[up];
    if (failure.empty()) {
      try {
        fs::create_directories(work);
        const LoopSettings settings = loop_settings(t.protocol, c_, work + "/checkpoint.h5", job.identity);
        const ModelInit init = grid_.model_init(job.source, o_.pretrained_dir);
        const SplitData data = load_split_data(t.data, grid_.paths(), t.protocol);
        if (t.protocol.task == "classification") {
          ClassifierJob cj{t.protocol, data, init, job.seed, t.eval_outputs, true, parse_device(c_.device)};
          ClassifierResult r = train_classifier(cj, settings, progress.callback());
          for (const std::string& col : t.metric_columns()) record(col, r.auc.mean);
          if (!r.auc.note.empty()) std::cerr << "  note: " << r.auc.note << "\n";
          loop = r.loop, model = r.model;
          outcome = "AUC " + fixed4(r.auc.mean);
        } else {
          SegmenterJob sj{t.protocol, data, init, job.seed, parse_device(c_.device)};
          SegmenterResult r = train_segmenter(sj, settings, progress.callback());
          record("dice_global", r.dice_global);
          record("dice_mean", r.dice_mean);
          loop = r.loop, model = r.model;
          outcome = "Dice " + fixed4(r.dice_global) + " global, " + fixed4(r.dice_mean) + " per-image mean";
        }
      } catch (const TrainingDiverged& e) {
        failure = e.what();
      }
    }
    if (!failure.empty()) {
      records.clear();
      for (const std::string& col : t.metric_columns()) record(col, 0.0);
      for (RunRecord& r : records) r.failure = failure;
      outcome = "FAILED (recorded, the grid goes on): " + failure;
    }
    const double wall = loop.resumed_seconds + (now_seconds() - t0);  // this process + before a resume
    for (RunRecord& r : records) r.epochs = loop.epochs, r.wall_seconds = wall;
    fs::create_directories(o_.out_dir + "/runs");
    write_run_json(o_.out_dir + "/runs/" + job.key + ".json", job, loop, model.get(),
                   failure.empty() ? loop.stop_reason : "failed: " + failure);
    write_run_records(result_path, records);  // the moment the run counts as done
    std::error_code ec;
    fs::remove_all(work, ec);
    if (failure.empty())
      outcome += str_cat(" (best epoch ", loop.best_epoch + 1, "/", loop.epochs, ", ", loop.stop_reason, ")");
    progress.end_job(outcome);
    return failure.empty();
  }

  const Grid& grid_;
  const ExperimentConfig& c_;
  RunnerOptions o_;
  std::map<std::string, std::string> failed_stages_;
};

}  // namespace

report::ReportOptions report_options(const ExperimentConfig& config) {
  report::ReportOptions o;
  o.experiment = config.name;
  o.baseline = config.baseline;
  for (const auto& s : config.sources) o.source_order.push_back(s.name);
  for (const auto& t : config.targets) o.target_order.push_back(t.name);
  return o;
}

GridOutcome run_grid(const Grid& grid, const RunnerOptions& options) {
  RunnerOptions o = options;
  if (o.pretrained_dir.empty()) o.pretrained_dir = o.out_dir + "/pretrained";
  fs::create_directories(o.out_dir);
  fs::create_directories(o.pretrained_dir);
  return Runner(grid, o).run();
}

bool write_experiment_report(const Grid& grid, const std::string& dir, report::Summary* summary) {
  const auto stored = read_results_dir(dir);
  std::vector<RunRecord> records;
  for (Job job : grid.runs()) {
    const auto it = stored.find(job.key);
    if (it == stored.end()) continue;
    grid.identify(job);
    for (const RunRecord& r : it->second)
      if (r.config_hash == job.hash) records.push_back(r);
  }
  if (records.empty()) return false;
  *summary = report::write_report(records, report_options(grid.config()), dir);
  return true;
}

report::Summary merge_results(const Grid& grid, const std::vector<std::string>& dirs, const std::string& out) {
  MEDTL_CHECK(!dirs.empty(), "--merge needs at least one results folder");
  std::map<std::string, std::pair<std::string, std::vector<RunRecord>>> all;  // key -> (dir, records)
  std::map<std::string, Job> jobs;
  for (const Job& j : grid.runs()) jobs[j.key] = j;
  for (const std::string& dir : dirs) {
    const auto stored = read_results_dir(dir);
    MEDTL_CHECK(!stored.empty(), "--merge: '", dir, "' holds no stored runs (", dir, "/runs/*.csv)");
    for (const auto& [key, records] : stored) {
      auto job = jobs.find(key);
      if (job == jobs.end()) {
        std::cerr << "note: --merge: " << dir << "/runs/" << key << ".csv is not part of this experiment; skipped\n";
        continue;
      }
      try {
        grid.identify(job->second);
        MEDTL_CHECK(records.at(0).config_hash == job->second.hash, "--merge: ", dir, "/runs/", key,
                    ".csv was made with another config (hash ", records.at(0).config_hash, ", this config ",
                    job->second.hash, "); merge shards of the same --config/--preset");
      } catch (const Error& e) {
        if (std::string(e.what()).rfind("--merge", 0) == 0) throw;  // weights missing here: cannot check identities
      }
      const auto prev = all.find(key);
      if (prev != all.end()) {
        MEDTL_CHECK(report::scores_canonical_text(prev->second.second) == report::scores_canonical_text(records),
                    "--merge: ", key, " has different scores in ", prev->second.first, " and ", dir);
        continue;
      }
      all[key] = {dir, records};
    }
  }
  std::vector<RunRecord> merged;
  fs::create_directories(out + "/runs");
  for (const auto& [key, entry] : all) {
    const std::string target = out + "/runs/" + key + ".csv";
    if (fs::weakly_canonical(entry.first) != fs::weakly_canonical(out)) write_run_records(target, entry.second);
    merged.insert(merged.end(), entry.second.begin(), entry.second.end());
  }
  MEDTL_CHECK(!merged.empty(), "--merge: no run of this experiment in ", dirs.size(), " folder(s)");
  return report::write_report(merged, report_options(grid.config()), out);
}

}  // namespace medtl::experiments::bench
