// Benchmark files: run records (atomic CSV), file hashes, HDF5 string attributes of stage files.
#include "experiments/benchmark_store.h"

#include <hdf5.h>
#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEDTL_CHECK(in.good(), "cannot read '", path, "'");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Closes an HDF5 handle on scope exit.
struct H5Closer {
  hid_t id;
  herr_t (*close)(hid_t);
  ~H5Closer() {
    if (id >= 0) close(id);
  }
};

}  // namespace

std::string file_safe(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      out += static_cast<char>(c);
    } else if (name.compare(i, 3, "\xE2\x86\x92") == 0) {  // "→"
      out += "-to-";
      i += 2;
    } else if (c >= 0x80) {
      out += '_';
      while (i + 1 < name.size() && (static_cast<unsigned char>(name[i + 1]) & 0xC0) == 0x80) ++i;
    } else {
      out += '_';
    }
  }
  return out;
}

std::string file_sha256(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::string> memo;
  struct stat st {};
  MEDTL_CHECK(::stat(path.c_str(), &st) == 0, "cannot read '", path, "'");
  const std::string key = str_cat(path, "|", st.st_size, "|", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = memo.find(key);
  if (it == memo.end()) it = memo.emplace(key, report::sha256_hex(read_text(path))).first;
  return it->second;
}

void write_run_records(const std::string& path, const std::vector<report::RunRecord>& records) {
  report::ReportOptions options;
  options.baseline = records.at(0).source;
  report::write_file_atomic(path, report::results_csv(report::summarize(records, options)));
}

std::vector<report::RunRecord> read_run_records(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  return report::parse_results_csv(read_text(path));
}

std::map<std::string, std::vector<report::RunRecord>> read_results_dir(const std::string& dir) {
  std::map<std::string, std::vector<report::RunRecord>> out;
  std::error_code ec;
  const std::string runs = dir + "/runs";
  if (!fs::is_directory(runs, ec)) return out;
  for (const auto& entry : fs::directory_iterator(runs)) {
    const fs::path p = entry.path();
    if (p.extension() != ".csv") continue;
    try {
      out[p.stem().string()] = read_run_records(p.string());
    } catch (const std::exception& e) {
      throw Error(str_cat("unreadable result file '", p.string(), "': ", e.what(),
                          "\n(delete it to rerun that job)"));
    }
  }
  return out;
}

void write_string_attributes(const std::string& path, const std::map<std::string, std::string>& attrs) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Closer file{H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose};
  MEDTL_CHECK(file.id >= 0, "cannot open '", path, "' to add attributes");
  H5Closer type{H5Tcopy(H5T_C_S1), H5Tclose};
  MEDTL_CHECK(type.id >= 0 && H5Tset_size(type.id, H5T_VARIABLE) >= 0 && H5Tset_cset(type.id, H5T_CSET_UTF8) >= 0,
              "HDF5 string type for '", path, "'");
  H5Closer space{H5Screate(H5S_SCALAR), H5Sclose};
  for (const auto& [name, value] : attrs) {
    if (H5Aexists(file.id, name.c_str()) > 0) H5Adelete(file.id, name.c_str());
    H5Closer attr{H5Acreate2(file.id, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
    const char* data = value.c_str();
    MEDTL_CHECK(attr.id >= 0 && H5Awrite(attr.id, type.id, &data) >= 0, "cannot write attribute '", name, "' to '",
                path, "'");
  }
  MEDTL_CHECK(H5Fflush(file.id, H5F_SCOPE_GLOBAL) >= 0, "cannot flush '", path, "'");
}

std::string read_string_attribute(const std::string& path, const std::string& name) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return "";
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Closer file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0 || H5Aexists(file.id, name.c_str()) <= 0) return "";
  H5Closer attr{H5Aopen(file.id, name.c_str(), H5P_DEFAULT), H5Aclose};
  H5Closer type{H5Aget_type(attr.id), H5Tclose};
  if (attr.id < 0 || type.id < 0 || H5Tget_class(type.id) != H5T_STRING || H5Tis_variable_str(type.id) <= 0) return "";
  H5Closer mem{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(mem.id, H5T_VARIABLE);
  H5Tset_cset(mem.id, H5T_CSET_UTF8);
  char* data = nullptr;
  if (H5Aread(attr.id, mem.id, &data) < 0 || data == nullptr) return "";
  std::string out(data);
  H5free_memory(data);
  return out;
}

}  // namespace medtl::experiments::bench
