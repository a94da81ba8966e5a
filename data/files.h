// File-system and text helpers the datasets share: the data cache folder, sorted directory
// listings, path pieces, text lines and CSV tables. Errors name the path and the problem.
#pragma once

#include <string>
#include <vector>

namespace medtl::data {

// $MEDTL_CACHE, else $HOME/.cache/medtl (where setup.sh's fetch scripts put downloaded samples;
// the same rule as models::weights_cache_dir, which data/ cannot depend on).
std::string cache_dir();

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);
std::string file_name(const std::string& path);   // "a/b/c.png" -> "c.png"
std::string file_stem(const std::string& path);   // "a/b/c.png" -> "c"
std::string lower(std::string s);

// Regular files (not folders) directly inside `dir`, full paths, sorted by name. `extensions`
// (lower-case, with the dot, e.g. {".png", ".jpg"}) filters by extension, case-insensitively;
// empty keeps every file. Hidden files (".*") are skipped. A missing folder throws.
std::vector<std::string> list_files(const std::string& dir, const std::vector<std::string>& extensions = {});
// Sub-folders directly inside `dir`, full paths, sorted by name; hidden ones skipped.
std::vector<std::string> list_dirs(const std::string& dir);
// Files anywhere below `dir` (recursively), full paths, sorted.
std::vector<std::string> list_files_recursive(const std::string& dir, const std::vector<std::string>& extensions = {});

// The file's lines without '\n' / '\r\n'; blank lines and lines starting with '#' are dropped.
std::vector<std::string> read_lines(const std::string& path);
// Splits on runs of spaces/tabs.
std::vector<std::string> split_whitespace(const std::string& line);
std::string trim(const std::string& s);

// A CSV file (RFC 4180: commas, double-quoted fields with "" escapes, CRLF or LF), header row
// first. Header names are trimmed (SIIM's train-rle.csv writes " EncodedPixels").
struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each row padded/checked to header.size()
  // Index of a header column; throws naming the file and the columns it has.
  int column(const std::string& name) const;
};
CsvTable read_csv(const std::string& path);

}  // namespace medtl::data
