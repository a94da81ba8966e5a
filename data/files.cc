// File-system listings, text lines and CSV parsing for the datasets.
#include "data/files.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tensor/error.h"

namespace medtl::data {
namespace fs = std::filesystem;

namespace {
bool wanted(const fs::path& p, const std::vector<std::string>& extensions) {
  if (extensions.empty()) return true;
  const std::string ext = lower(p.extension().string());
  return std::find(extensions.begin(), extensions.end(), ext) != extensions.end();
}
}  // namespace

std::string cache_dir() {
  if (const char* cache = std::getenv("MEDTL_CACHE"); cache != nullptr && cache[0] != '\0') return cache;
  const char* home = std::getenv("HOME");
  MEDTL_CHECK(home != nullptr && home[0] != '\0', "cache_dir: neither MEDTL_CACHE nor HOME is set");
  return std::string(home) + "/.cache/medtl";
}

bool path_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  if (b.front() == '/') return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }
std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> list_files(const std::string& dir, const std::vector<std::string>& extensions) {
  MEDTL_CHECK(is_directory(dir), "folder '", dir, "' does not exist (or is not a folder)");
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (entry.is_regular_file() && wanted(entry.path(), extensions)) out.push_back(entry.path().string());
  }
  MEDTL_CHECK(!ec, "cannot list folder '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_dirs(const std::string& dir) {
  MEDTL_CHECK(is_directory(dir), "folder '", dir, "' does not exist (or is not a folder)");
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_directory()) out.push_back(entry.path().string());
  }
  MEDTL_CHECK(!ec, "cannot list folder '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_files_recursive(const std::string& dir, const std::vector<std::string>& extensions) {
  MEDTL_CHECK(is_directory(dir), "folder '", dir, "' does not exist (or is not a folder)");
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && wanted(it->path(), extensions)) out.push_back(it->path().string());
  }
  MEDTL_CHECK(!ec, "cannot list folder '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  MEDTL_CHECK(in.good(), "cannot open '", path, "': no such file or no permission");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    lines.push_back(t);
  }
  return lines;
}

std::vector<std::string> split_whitespace(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  std::string token;
  while (in >> token) out.push_back(token);
  return out;
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  std::string have;
  for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
  MEDTL_CHECK(false, "CSV '", path, "' has no column '", name, "'; its columns: ", have);
  return -1;
}

CsvTable read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEDTL_CHECK(in.good(), "cannot open CSV '", path, "': no such file or no permission");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  CsvTable table;
  table.path = path;
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, any = false;
  int64_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') { field += '"'; ++i; }
      else if (c == '"') quoted = false;
      else { if (c == '\n') ++line; field += c; }
      continue;
    }
    if (c == '"') { quoted = true; any = true; }
    else if (c == ',') { record.push_back(field); field.clear(); any = true; }
    else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) { record.push_back(field); records.push_back(record); }
      record.clear(); field.clear(); any = false; ++line;
    } else { field += c; any = true; }
  }
  MEDTL_CHECK(!quoted, "CSV '", path, "': a quoted field is not closed (line ", line, ")");
  if (any || !field.empty()) { record.push_back(field); records.push_back(record); }
  MEDTL_CHECK(!records.empty(), "CSV '", path, "' is empty (no header row)");
  for (const auto& h : records[0]) table.header.push_back(trim(h));
  for (size_t r = 1; r < records.size(); ++r) {
    auto& row = records[r];
    // Trailing empty fields may be left out by some writers; more fields than the header is an error.
    MEDTL_CHECK(row.size() <= table.header.size(), "CSV '", path, "': row ", r + 1, " has ", row.size(),
                " fields, the header has ", table.header.size());
    row.resize(table.header.size());
    table.rows.push_back(std::move(row));
  }
  return table;
}

}  // namespace medtl::data
