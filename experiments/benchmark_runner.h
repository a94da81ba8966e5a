// Running the grid: pre-training stages first (or reusing their stored weights), then every
// fine-tuning run of this shard that has no stored result of the same identity -- each stored
// atomically the moment it finishes, the report rewritten after it -- and merging shards.
//
// Failure policy: a run whose loss diverges (TrainingDiverged) is stored as a failed run with the
// message and the grid goes on (a diverged stage fails the runs that need it, likewise). Any other
// error (missing data, unreadable files, a bug) stops the grid with its message; the running
// job's checkpoint stays, so the next invocation resumes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/benchmark_grid.h"
#include "experiments/report.h"

namespace medtl::experiments::bench {

struct RunnerOptions {
  std::string out_dir;         // results/<experiment>
  std::string pretrained_dir;  // stage weight files (default <out_dir>/pretrained)
  int64_t shard_index = 0, shard_count = 1;
  bool retry_failed = false;   // rerun runs stored as failed (default: keep them)
  bool stages_only = false;    // only make the pre-training stages (e.g. before a Slurm array)
};

struct GridOutcome {
  int64_t ran = 0, reused = 0, failed = 0;  // runs of this invocation
  int64_t stages_trained = 0, stages_reused = 0;
  bool have_report = false;
  report::Summary summary;  // when have_report
};

GridOutcome run_grid(const Grid& grid, const RunnerOptions& options);

// Reads every stored run of the whole grid (all shards) under `dir` whose identity matches and
// writes the report into `dir`. Returns false (writing nothing) when no run is stored yet.
bool write_experiment_report(const Grid& grid, const std::string& dir, report::Summary* summary);

// Combines the stored runs of several result folders (shards) into `out` (runs/ and the report).
// The same run found twice must have the same scores; a run whose identity differs from this
// grid's is an error (the shards ran another config).
report::Summary merge_results(const Grid& grid, const std::vector<std::string>& dirs, const std::string& out);

// The report options of a grid: experiment name, baseline, row and column order.
report::ReportOptions report_options(const ExperimentConfig& config);

}  // namespace medtl::experiments::bench
