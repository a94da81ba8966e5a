// bazel run //experiments:benchmark -- [flags]: the paper's transfer-learning study end to end --
// pre-training stages, fine-tuning runs on every (source, target) cell, statistics, report.
// docs/benchmark.md is the manual; experiments/configs/*.ini are the experiments.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "experiments/benchmark_config.h"
#include "experiments/benchmark_data.h"
#include "experiments/benchmark_grid.h"
#include "experiments/benchmark_progress.h"
#include "experiments/benchmark_runner.h"
#include "experiments/flags.h"
#include "experiments/segmenter.h"
#include "models/weights.h"
#include "tensor/backend.h"
#include "tensor/determinism.h"
#include "tensor/error.h"
#include "tensor/parallel.h"

namespace fs = std::filesystem;
using namespace medtl;
using namespace medtl::experiments;
using namespace medtl::experiments::bench;

namespace {

const char* const kUsage =
    "usage: bazel run //experiments:benchmark -- [--preset=default|smoke|paper | --config=FILE] [flags]\n"
    "       bazel run //experiments:benchmark -- --merge [--out=DIR] DIR...   (combine shards' results)\n"
    "Runs the transfer-learning benchmark (docs/benchmark.md) and writes results/<experiment>/report.md.\n"
    "Rerunning the same command resumes: stored runs are skipped, an interrupted run resumes.";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string workspace_dir() {
  const std::string ws = env("BUILD_WORKSPACE_DIRECTORY");
  return ws.empty() ? fs::current_path().string() : ws;
}

// A preset's config file: the workspace's copy (so edits apply without rebuilding), else runfiles.
std::string preset_path(const std::string& preset, const char* argv0) {
  const std::string rel = "experiments/configs/" + preset + ".ini";
  std::vector<std::string> candidates = {workspace_dir() + "/" + rel, rel,
                                         std::string(argv0) + ".runfiles/medtl/" + rel};
  const std::string runfiles = env("RUNFILES_DIR");
  if (!runfiles.empty()) candidates.push_back(runfiles + "/medtl/" + rel);
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c;
  }
  throw Error(str_cat("--preset=", preset, ": no ", rel, " (presets: default, smoke, paper; or --config=FILE)"));
}

// The first table of report.md (the paper's layout) and its hash line, for the terminal.
void print_report_table(const std::string& dir, const report::Summary& summary) {
  std::ifstream in(dir + "/report.md");
  std::string line, table;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) == 0) in_table = true, table += line + "\n";
    else if (in_table) break;
  }
  std::cout << "\n" << table << "\nruns: " << summary.records.size() << " records, " << summary.num_failed
            << " failed; scores SHA-256: " << summary.scores_sha256 << "\nreport: " << dir << "/report.md\n";
}

int check_only(const Grid& grid) {
  const ExperimentConfig& c = grid.config();
  std::cout << "experiment '" << c.name << "': " << c.sources.size() << " sources, " << c.targets.size()
            << " targets, " << c.runs << " runs per cell -> " << grid.runs().size() << " fine-tuning runs\n";
  int missing = 0;
  for (const auto& s : c.sources) {
    std::cout << "  source " << s.name << ": " << s.init;
    if (s.init == "weights") {
      const std::string path = grid.paths().expand(s.weights);
      std::error_code ec;
      const bool ok = fs::exists(path, ec);
      missing += !ok;
      std::cout << " " << path << (ok ? "" : "  [MISSING: get it with tools/fetch_weights.sh or a converter]");
    } else if (s.init == "pretrain") {
      std::cout << " from " << s.from << " on " << s.data.canonical() << " (" << s.protocol.canonical() << ")";
      const std::string m = missing_data_message(s.data, grid.paths());
      if (!m.empty()) std::cout << "\n    [MISSING] " << m, ++missing;
    }
    std::cout << "\n";
  }
  for (const auto& t : c.targets) {
    std::cout << "  target " << t.name << ": " << t.data.canonical() << " metric " << t.metric << " ("
              << t.protocol.canonical() << ")\n";
    const std::string m = missing_data_message(t.data, grid.paths());
    if (!m.empty()) std::cout << "    [MISSING] " << m << "\n", ++missing;
  }
  for (const auto& e : grid.excluded()) std::cout << "  excluded: " << e << "\n";
  std::cout << "config valid; " << missing << " input(s) missing on this machine\n";
  return 0;
}

int run_main(int argc, char** argv) {
  Flags flags(argc, argv,
              {{"preset", "default (about 20 min on 2 CPU cores), smoke (< 3 min, every stage), paper (GPU scale)"},
               {"config", "an experiment config file (experiments/configs/*.ini documents the format)"},
               {"set", "config overrides 'section.key=value;...', e.g. 'classification.max_epochs=2'"},
               {"runs", "fine-tuning runs per (source, target) cell (overrides [experiment] runs)"},
               {"threads", "CPU threads (default: all cores)"},
               {"device", "cpu (default), cuda or cuda:N: where models train (overrides [experiment] device; "
                          "cuda needs a --config=cuda build and a GPU)"},
               {"data-root", "where the datasets lie (${data}); default $MEDTL_DATA, else <workspace>/../shared/data"},
               {"weights-dir", "where weight files lie (${weights}); default $MEDTL_CACHE or ~/.cache/medtl"},
               {"out", "results folder (default <workspace>/results/<experiment name>)"},
               {"pretrained-dir", "pre-training stage files (default <out>/pretrained); share it between shards"},
               {"shard", "i/n: run only shard i of n of the grid (0-based), e.g. a Slurm array task"},
               {"merge", "combine the results of the folders given as arguments into --out"},
               {"retry-failed", "rerun runs stored as failed (diverged)"},
               {"stages-only", "only make the pre-training stages"},
               {"check", "validate the config, list the grid and missing inputs, run nothing"}},
              kUsage);
  if (flags.has("help")) {
    std::cout << flags.help();
    return 0;
  }
  MEDTL_CHECK(!(flags.has("preset") && flags.has("config")), "give --preset or --config, not both");
  const std::string config_path =
      flags.has("config") ? user_path(flags.get("config")) : preset_path(flags.get("preset", "default"), argv[0]);
  std::vector<std::string> overrides = split_overrides(flags.get("set"));
  if (flags.has("runs")) overrides.push_back("experiment.runs=" + flags.get("runs"));
  if (flags.has("device")) overrides.push_back("experiment.device=" + parse_device(flags.get("device")).str());
  const ExperimentConfig config = load_config(config_path, overrides);

  Paths paths;
  paths.workspace = workspace_dir();
  paths.data = flags.has("data-root") ? user_path(flags.get("data-root"))
               : !env("MEDTL_DATA").empty() ? env("MEDTL_DATA")
                                           : fs::weakly_canonical(paths.workspace + "/../shared/data").string();
  paths.weights = flags.has("weights-dir") ? user_path(flags.get("weights-dir")) : models::weights_cache_dir();
  const std::string out = flags.has("out") ? user_path(flags.get("out")) : paths.workspace + "/results/" + config.name;
  const Grid grid(config, paths);
  if (flags.get_bool("check")) return check_only(grid);

  std::string why_not;
  MEDTL_CHECK(device_available(parse_device(config.device), &why_not), "device ", config.device, ": ", why_not);
  const int threads = static_cast<int>(
      flags.get_int("threads", std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()))));
  set_num_threads(threads);
  set_deterministic(config.deterministic);
  set_deterministic_conv_chunk(config.conv_chunk);

  if (flags.get_bool("merge")) {
    std::vector<std::string> dirs;
    for (const auto& d : flags.positionals()) dirs.push_back(user_path(d));
    const std::string merged_out = flags.has("out") ? out : out + "-merged";
    const report::Summary s = merge_results(grid, dirs, merged_out);
    print_report_table(merged_out, s);
    return 0;
  }
  MEDTL_CHECK(flags.positionals().empty(), "unexpected argument '", flags.positionals()[0],
              "' (folders are only taken with --merge)");
  RunnerOptions options;
  options.out_dir = out;
  options.pretrained_dir = flags.has("pretrained-dir") ? user_path(flags.get("pretrained-dir")) : "";
  if (flags.has("shard")) parse_shard(flags.get("shard"), &options.shard_index, &options.shard_count);
  options.retry_failed = flags.get_bool("retry-failed");
  options.stages_only = flags.get_bool("stages-only");
  // Fail early, before any training, on missing data or weights.
  for (const auto& t : config.targets) MEDTL_CHECK(missing_data_message(t.data, paths).empty(),
                                                   missing_data_message(t.data, paths));
  for (const auto& s : config.sources) {
    if (s.init == "pretrain") MEDTL_CHECK(missing_data_message(s.data, paths).empty(), missing_data_message(s.data, paths));
    (void)grid.source_identity(s.name);  // hashes weight files; a missing one stops here with where to get it
  }
  std::cerr << "experiment '" << config.name << "' from " << config_path << "\n  data root " << paths.data
            << "\n  results " << out << "\n  device " << config.device << ", threads " << threads << ", deterministic "
            << (config.deterministic ? "on" : "off") << " (conv chunk " << config.conv_chunk << ")"
            << (options.shard_count > 1 ? str_cat(", shard ", options.shard_index, "/", options.shard_count) : "")
            << "\n";
  for (const auto& e : grid.excluded()) std::cerr << "  " << e << "\n";
  const auto t0 = std::chrono::steady_clock::now();
  const GridOutcome o = run_grid(grid, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "done in " << GridProgress::format_seconds(seconds) << ": " << o.ran << " runs trained, " << o.failed
            << " failed, " << o.reused << " reused; stages: " << o.stages_trained << " trained, " << o.stages_reused
            << " reused\n";
  if (o.have_report) print_report_table(out, o.summary);
  if (o.failed > 0) std::cerr << o.failed << " run(s) failed; they are recorded (see report.md); --retry-failed reruns them\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads that wait for work spin by default (libgomp's active wait policy). On a machine
  // shared with other processes a spinning thread burns the core its partner needs: the smoke
  // preset took 5m36s with spinning and 1m12s without, at the same load, with identical scores.
  // libgomp reads OMP_WAIT_POLICY when the program loads, so set it and start over once; a value the
  // user set is kept (OMP_WAIT_POLICY=active restores spinning on a dedicated machine).
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);  // returns only if it failed: then run as we are
  }
  try {
    return run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "\nbenchmark: " << e.what() << "\n";
    return 1;
  }
}
