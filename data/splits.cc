// Splits by list, by seeded ratio and by patient; patient overlap between splits.
#include "data/splits.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <regex>
#include <set>

#include "data/files.h"
#include "tensor/philox.h"

namespace medtl::data {
namespace {

std::vector<int64_t> part_sizes(int64_t n, const std::vector<double>& ratios, const std::string& what) {
  MEDTL_CHECK(!ratios.empty(), what, ": no ratios given");
  double sum = 0;
  for (double r : ratios) {
    MEDTL_CHECK(r > 0, what, ": ratio ", r, " must be positive");
    sum += r;
  }
  MEDTL_CHECK(std::abs(sum - 1.0) < 1e-6, what, ": ratios sum to ", sum, ", not 1");
  std::vector<int64_t> sizes;
  int64_t used = 0;
  for (size_t k = 0; k + 1 < ratios.size(); ++k) {
    sizes.push_back(static_cast<int64_t>(std::llround(ratios[k] * static_cast<double>(n))));
    used += sizes.back();
  }
  sizes.push_back(n - used);
  return sizes;
}

std::string part_name(const Dataset& d, const std::vector<std::string>& names, size_t k) {
  return d.name() + "/" + (k < names.size() ? names[k] : "part" + std::to_string(k));
}

}  // namespace

std::string sample_file_name(const Dataset& dataset, int64_t i) {
  const std::string source = dataset.source(i);
  return file_name(source.substr(0, source.find(';')));
}

std::shared_ptr<Subset> split_by_list(std::shared_ptr<const Dataset> dataset, const std::vector<std::string>& names,
                                      const std::string& split_name, OnBadSample policy, BadSampleLog* log) {
  std::map<std::string, std::vector<int64_t>> by_name;
  for (int64_t i = 0; i < dataset->size(); ++i) by_name[sample_file_name(*dataset, i)].push_back(i);
  std::vector<int64_t> indices;
  for (const auto& line : names) {
    const auto tokens = split_whitespace(line);
    if (tokens.empty()) continue;
    const std::string name = file_name(tokens[0]);
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      const std::string problem = "listed in split '" + split_name + "' but not in dataset '" + dataset->name() + "'";
      MEDTL_CHECK(policy == OnBadSample::Skip, name, ": ", problem);
      if (log != nullptr) log->add(name, problem);
      continue;
    }
    indices.insert(indices.end(), it->second.begin(), it->second.end());
  }
  MEDTL_CHECK(!indices.empty(), "split '", split_name, "' of dataset '", dataset->name(), "' is empty (",
              names.size(), " names listed, none found)");
  const std::string name = dataset->name() + "/" + split_name;
  return std::make_shared<Subset>(std::move(dataset), std::move(indices), name);
}

std::shared_ptr<Subset> split_by_list_file(std::shared_ptr<const Dataset> dataset, const std::string& list_file,
                                           OnBadSample policy, BadSampleLog* log) {
  return split_by_list(std::move(dataset), read_lines(list_file), file_stem(list_file), policy, log);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<std::pair<uint64_t, int64_t>> keyed(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const PhiloxBlock r = philox_random(seed, /*stream=*/0x73706c6974 /* "split" */, static_cast<uint64_t>(i));
    keyed[i] = {(static_cast<uint64_t>(r[0]) << 32) | r[1], i};
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = keyed[i].second;
  return out;
}

std::vector<std::shared_ptr<Subset>> split_by_ratio(std::shared_ptr<const Dataset> dataset,
                                                    const std::vector<double>& ratios, uint64_t seed,
                                                    const std::vector<std::string>& names) {
  const int64_t n = dataset->size();
  const std::vector<int64_t> sizes = part_sizes(n, ratios, "split_by_ratio of '" + dataset->name() + "'");
  const std::vector<int64_t> order = seeded_permutation(n, seed);
  std::vector<std::shared_ptr<Subset>> parts;
  int64_t at = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    MEDTL_CHECK(sizes[k] > 0, "split_by_ratio of '", dataset->name(), "' (", n, " samples): part ", k,
                " would be empty; use fewer parts or larger ratios");
    std::vector<int64_t> indices(order.begin() + at, order.begin() + at + sizes[k]);
    std::sort(indices.begin(), indices.end());  // dataset order inside a part
    at += sizes[k];
    parts.push_back(std::make_shared<Subset>(dataset, std::move(indices), part_name(*dataset, names, k)));
  }
  return parts;
}

std::string patient_id(const std::string& name, const std::string& pattern) {
  const std::regex re(pattern);
  std::smatch m;
  MEDTL_CHECK(std::regex_match(name, m, re) && m.size() >= 2, "file name '", name, "' does not match the patient-id pattern '",
              pattern, "' (whose first group is the id)");
  return m[1].str();
}

namespace {
// Patient id per sample, with one compiled regex.
std::vector<std::string> patient_ids(const Dataset& dataset, const std::string& pattern) {
  const std::regex re(pattern);
  std::vector<std::string> ids;
  ids.reserve(static_cast<size_t>(dataset.size()));
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const std::string name = sample_file_name(dataset, i);
    std::smatch m;
    MEDTL_CHECK(std::regex_match(name, m, re) && m.size() >= 2, "dataset '", dataset.name(), "': file name '", name,
                "' does not match the patient-id pattern '", pattern, "' (whose first group is the id)");
    ids.push_back(m[1].str());
  }
  return ids;
}
}  // namespace

std::vector<std::shared_ptr<Subset>> split_patient_disjoint(std::shared_ptr<const Dataset> dataset,
                                                            const std::vector<double>& ratios, uint64_t seed,
                                                            const std::string& pattern,
                                                            const std::vector<std::string>& names) {
  const int64_t n = dataset->size();
  const std::vector<int64_t> sizes = part_sizes(n, ratios, "split_patient_disjoint of '" + dataset->name() + "'");
  const std::vector<std::string> ids = patient_ids(*dataset, pattern);
  // Patients in first-appearance order, then shuffled by the seed.
  std::vector<std::string> patients;
  std::map<std::string, std::vector<int64_t>> members;
  for (int64_t i = 0; i < n; ++i) {
    auto& list = members[ids[i]];
    if (list.empty()) patients.push_back(ids[i]);
    list.push_back(i);
  }
  const std::vector<int64_t> order = seeded_permutation(static_cast<int64_t>(patients.size()), seed);
  std::vector<std::vector<int64_t>> parts(sizes.size());
  size_t part = 0;
  int64_t target = sizes[0];
  for (int64_t p : order) {
    // Move to the next part once this one has reached its share (the last part takes the rest).
    while (part + 1 < parts.size() && static_cast<int64_t>(parts[part].size()) >= target) target = sizes[++part];
    const auto& list = members[patients[p]];
    parts[part].insert(parts[part].end(), list.begin(), list.end());
  }
  std::vector<std::shared_ptr<Subset>> out;
  for (size_t k = 0; k < parts.size(); ++k) {
    MEDTL_CHECK(!parts[k].empty(), "split_patient_disjoint of '", dataset->name(), "' (", n, " samples, ",
                patients.size(), " patients): part ", k, " is empty; too few patients for these ratios");
    std::sort(parts[k].begin(), parts[k].end());
    out.push_back(std::make_shared<Subset>(dataset, std::move(parts[k]), part_name(*dataset, names, k)));
  }
  return out;
}

std::vector<std::string> shared_patients(const Dataset& a, const Dataset& b, const std::string& pattern) {
  const auto ia = patient_ids(a, pattern), ib = patient_ids(b, pattern);
  const std::set<std::string> sa(ia.begin(), ia.end()), sb(ib.begin(), ib.end());
  std::vector<std::string> out;
  std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(out));
  return out;
}

int64_t count_patients(const Dataset& dataset, const std::string& pattern) {
  const auto ids = patient_ids(dataset, pattern);
  return static_cast<int64_t>(std::set<std::string>(ids.begin(), ids.end()).size());
}

}  // namespace medtl::data
