// Splitting a dataset into train/val/test: by given lists of names, by ratio with a seed, and
// patient-disjoint by an id pattern in the file name; and counting patients that two splits share.
// Every split is a Subset (data/dataset.h) of the dataset it was cut from.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace medtl::data {

// A sample's name for matching: the file name of the first file in source(i) ("a/b/c.png;mask" -> "c.png").
std::string sample_file_name(const Dataset& dataset, int64_t i);

// The samples whose file name (or path ending) matches a line of `names` (one name per entry; the
// first whitespace-separated token is used, so label lists work too). A name not found is an
// error under Throw, listed in `log` under Skip. An empty result throws (empty split).
std::shared_ptr<Subset> split_by_list(std::shared_ptr<const Dataset> dataset, const std::vector<std::string>& names,
                                      const std::string& split_name, OnBadSample policy = OnBadSample::Throw,
                                      BadSampleLog* log = nullptr);
// Same, reading the names from a text file (read_lines).
std::shared_ptr<Subset> split_by_list_file(std::shared_ptr<const Dataset> dataset, const std::string& list_file,
                                           OnBadSample policy = OnBadSample::Throw, BadSampleLog* log = nullptr);

// A permutation of [0, n) that depends only on (n, seed): the Philox value of each index, sorted.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// Cuts a seeded permutation into parts of sizes round(ratio * n) (the last part takes the rest).
// Ratios must be positive and sum to 1 (within 1e-6). Every part must be non-empty.
std::vector<std::shared_ptr<Subset>> split_by_ratio(std::shared_ptr<const Dataset> dataset,
                                                    const std::vector<double>& ratios, uint64_t seed,
                                                    const std::vector<std::string>& names = {});

// The patient id of a file name: the first capture group of `pattern` (ECMAScript regex, whole
// name). NIH ChestX-ray14: R"((\d+)_\d+\.png)". A name that does not match throws naming it.
std::string patient_id(const std::string& file_name, const std::string& pattern);
// Built-in patterns.
inline constexpr char kNihPatientPattern[] = R"((\d+)_\d+\.png)";

// Groups samples by patient, shuffles the patients with `seed`, and fills the parts in order until
// each holds about ratio * n samples; no patient is in two parts. Deterministic in (dataset, seed).
std::vector<std::shared_ptr<Subset>> split_patient_disjoint(std::shared_ptr<const Dataset> dataset,
                                                            const std::vector<double>& ratios, uint64_t seed,
                                                            const std::string& pattern,
                                                            const std::vector<std::string>& names = {});

// Patient ids present in both datasets, sorted.
std::vector<std::string> shared_patients(const Dataset& a, const Dataset& b, const std::string& pattern);
// Number of distinct patients in a dataset.
int64_t count_patients(const Dataset& dataset, const std::string& pattern);

}  // namespace medtl::data
