// Where the benchmark keeps its work on disk, and how: per-run result files written atomically as
// each run finishes (the unit of "never lose work"), pre-training stage weight files with
// provenance attributes, file hashes, and reading results back for reruns and --merge.
//
//   <out>/runs/<job key>.csv        the run's records (report::results_csv columns), atomic
//   <out>/runs/<job key>.json       its run manifest (experiments/manifest.h)
//   <out>/work/<job key>/           the running job's checkpoint (deleted when the result is stored)
//   <pretrained>/<stage key>-<hash>.h5    a pre-training stage's weights (+ .json provenance)
//   <out>/results.csv, summary.json, report.md, fig_*.svg    the report (experiments/report.h)
#pragma once

#include <map>
#include <string>
#include <vector>

#include "experiments/report.h"

namespace medtl::experiments::bench {

// A name made safe for a file: letters, digits, '.', '-', '_' kept; "→" becomes "-to-"; others '_'.
std::string file_safe(const std::string& name);

// SHA-256 of a file's bytes (memoised per path, size and modification time within the process).
std::string file_sha256(const std::string& path);

// ---- Run results. ----

// Writes the records of one finished (or failed) run to `path` atomically.
void write_run_records(const std::string& path, const std::vector<report::RunRecord>& records);
// Reads them back (empty when the file does not exist).
std::vector<report::RunRecord> read_run_records(const std::string& path);
// Every <dir>/runs/*.csv, keyed by file stem (the job key).
std::map<std::string, std::vector<report::RunRecord>> read_results_dir(const std::string& dir);

// ---- Stage weight files: string attributes beside models/weights.h's. ----

// Adds (or replaces) root string attributes of an existing HDF5 file.
void write_string_attributes(const std::string& path, const std::map<std::string, std::string>& attrs);
// One root string attribute, or "" when the file or the attribute does not exist.
std::string read_string_attribute(const std::string& path, const std::string& name);

}  // namespace medtl::experiments::bench
