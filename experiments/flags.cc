// Command-line flag parsing for experiment programs.
#include "experiments/flags.h"

#include <sstream>

#include "tensor/backend.h"
#include "tensor/error.h"

namespace medtl::experiments {

Flags::Flags(int argc, char** argv, const std::map<std::string, std::string>& known, const std::string& usage)
    : known_(known), usage_(usage) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      positionals_.push_back(arg);
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    MEDTL_CHECK(name == "help" || known_.count(name), "unknown flag --", name, "\n", help());
    values_[name] = eq == std::string::npos ? "true" : arg.substr(eq + 1);
  }
}

std::string Flags::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int64_t Flags::get_int(const std::string& name, int64_t fallback) const {
  if (!has(name)) return fallback;
  try {
    size_t used = 0;
    const int64_t v = std::stoll(get(name), &used);
    if (used == get(name).size()) return v;
  } catch (const std::exception&) {
  }
  MEDTL_CHECK(false, "--", name, "=", get(name), ": expected an integer");
  return fallback;
}

double Flags::get_double(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  try {
    size_t used = 0;
    const double v = std::stod(get(name), &used);
    if (used == get(name).size()) return v;
  } catch (const std::exception&) {
  }
  MEDTL_CHECK(false, "--", name, "=", get(name), ": expected a number");
  return fallback;
}

bool Flags::get_bool(const std::string& name) const {
  if (!has(name)) return false;
  const std::string v = get(name);
  MEDTL_CHECK(v == "true" || v == "1" || v == "false" || v == "0", "--", name, "=", v, ": expected true or false");
  return v == "true" || v == "1";
}

std::string Flags::help() const {
  std::ostringstream out;
  out << usage_ << "\nflags:\n";
  for (const auto& [name, text] : known_) out << "  --" << name << "  " << text << "\n";
  return out.str();
}

Device Flags::device() const {
  const Device device = parse_device(get("device", "cpu"));
  std::string why_not;
  MEDTL_CHECK(device_available(device, &why_not), "--device=", device.str(), ": ", why_not);
  return device;
}

}  // namespace medtl::experiments
