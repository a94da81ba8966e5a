// A small command-line parser for the experiment programs: --name=value flags and positionals.
// Unknown flags are errors (a typo must never be silently ignored).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace medtl::experiments {

class Flags {
 public:
  // `known`: flag names (without --) this program accepts, each with a one-line help text.
  Flags(int argc, char** argv, const std::map<std::string, std::string>& known, const std::string& usage);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
  bool get_bool(const std::string& name) const;  // "--x" or "--x=true|1"; absent = false
  const std::vector<std::string>& positionals() const { return positionals_; }
  std::string help() const;
  // --device (default cpu): parsed, and checked to be usable here (an error saying why not: a
  // CPU-only build, no GPU, no such GPU).
  Device device() const;

 private:
  std::map<std::string, std::string> known_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
  std::string usage_;
};

}  // namespace medtl::experiments
