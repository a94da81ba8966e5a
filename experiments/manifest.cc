// Run manifests: environment probing (git, library versions, CPU flags, GPU), the two result
// hashes, and the JSON file.
#include "experiments/manifest.h"

#include <hdf5.h>
#include <oneapi/dnnl/dnnl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "experiments/report.h"
#include "tensor/determinism.h"
#include "tensor/parallel.h"

#ifdef MEDTL_WITH_CUDA
#include "tensor/cuda/device_info.h"
#endif

namespace medtl::experiments {
namespace {

// Runs a shell command; its stdout with trailing whitespace removed, or "" if it failed.
std::string command_output(const std::string& command, bool* ok) {
  *ok = false;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  const int status = ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
  *ok = status == 0;
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

const char* onednn_isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "unknown";
  }
}

std::string json_string(const std::string& s) { return report::json_quote(s); }

std::string json_number(double v) {
  const std::string s = report::format_double(v);  // shortest round-trip decimal
  return (s == "nan" || s == "inf" || s == "-inf") ? json_string(s) : s;  // JSON has no NaN
}

std::string json_doubles(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + json_number(values[i]);
  return out + "]";
}

}  // namespace

std::string sha256_hex(const std::string& bytes) { return report::sha256_hex(bytes); }

std::string state_dict_sha256(const nn::Module& model) {
  std::string bytes;
  for (const auto& [name, t] : model.state_dict()) {
    const Tensor c = t.contiguous();
    bytes.append(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel() * dtype_size(c.dtype())));
  }
  return sha256_hex(bytes);
}

std::string float64_sha256(const std::vector<double>& values) {
  std::string bytes(values.size() * sizeof(double), '\0');
  if (!values.empty()) std::memcpy(&bytes[0], values.data(), bytes.size());  // x86-64: little-endian already
  return sha256_hex(bytes);
}

std::string git_commit_at_runtime(std::string* dirty) {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");  // set by `bazel run`
  const std::string dir = workspace != nullptr && workspace[0] != '\0' ? workspace : ".";
  bool ok = false;
  const std::string commit = command_output("git -C " + shell_quote(dir) + " rev-parse HEAD 2>/dev/null", &ok);
  if (!ok || commit.size() != 40) {
    if (dirty != nullptr) *dirty = "unknown";
    return "unknown";
  }
  if (dirty != nullptr) {
    const std::string status =
        command_output("git -C " + shell_quote(dir) + " status --porcelain --untracked-files=no 2>/dev/null", &ok);
    *dirty = !ok ? "unknown" : status.empty() ? "no" : "yes";
  }
  return commit;
}

std::vector<std::string> cpu_isa_flags(std::string* model) {
  static const char* kInteresting[] = {"sse4_2",      "avx",         "avx2",     "fma",      "avx512f",
                                       "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"};
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags_line;
  if (model != nullptr) *model = "unknown";
  while (std::getline(cpuinfo, line)) {
    if (model != nullptr && *model == "unknown" && line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) *model = line.substr(line.find_first_not_of(" \t", colon + 1));
    }
    if (flags_line.empty() && line.rfind("flags", 0) == 0) flags_line = line.substr(line.find(':') + 1);
  }
  std::set<std::string> flags;
  std::istringstream words(flags_line);
  for (std::string w; words >> w;) flags.insert(w);
  std::vector<std::string> out;
  for (const char* f : kInteresting)
    if (flags.count(f)) out.emplace_back(f);
  return out;
}

RunManifest collect_run_environment(const std::string& program) {
  RunManifest m;
  m.program = program;
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  m.created_utc = when;
  m.git_commit = git_commit_at_runtime(&m.git_dirty);
  const dnnl_version_t* v = dnnl_version();
  m.onednn_version = str_cat(v->major, ".", v->minor, ".", v->patch, " (", v->hash, ")");
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  m.hdf5_version = str_cat(major, ".", minor, ".", release);
#if defined(__clang__)
  m.compiler = str_cat("clang ", __clang_version__);
#elif defined(__GNUC__)
  m.compiler = str_cat("gcc ", __VERSION__);
#else
  m.compiler = "unknown";
#endif
#ifdef MEDTL_WITH_CUDA
  m.cuda = cuda::version_summary();
  m.cudnn = str_cat(cuda::cudnn_version());
  m.gpu = cuda::device_count() > 0 ? cuda::device_name(0) : "none (" + cuda::no_device_reason() + ")";
#else
  m.cuda = "not built (CPU-only build; --config=cuda adds it)";
  m.cudnn = "not built";
#endif
  m.cpu_isa = cpu_isa_flags(&m.cpu_model);
  m.onednn_isa = onednn_isa_name(dnnl_get_effective_cpu_isa());
  m.threads = get_num_threads();
  m.deterministic = deterministic();
  m.conv_chunk = deterministic_conv_chunk();
  m.gemm_tile = kGemmTile;
  return m;
}

std::string manifest_json(const RunManifest& m) {
  std::ostringstream j;
  j << "{\n";
  auto str = [&](const char* key, const std::string& value, bool last = false) {
    j << "  " << json_string(key) << ": " << json_string(value) << (last ? "\n" : ",\n");
  };
  auto raw = [&](const char* key, const std::string& value, bool last = false) {
    j << "  " << json_string(key) << ": " << value << (last ? "\n" : ",\n");
  };
  str("program", m.program);
  str("created_utc", m.created_utc);
  str("config", m.config);
  str("config_sha256", m.config_sha256);
  std::string seeds = "{";
  for (size_t i = 0; i < m.seeds.size(); ++i)
    seeds += (i ? ", " : "") + json_string(m.seeds[i].first) + ": " + std::to_string(m.seeds[i].second);
  raw("seeds", seeds + "}");
  str("git_commit", m.git_commit);
  str("git_dirty", m.git_dirty);
  raw("versions", "{" + json_string("onednn") + ": " + json_string(m.onednn_version) + ", " + json_string("hdf5") +
                      ": " + json_string(m.hdf5_version) + ", " + json_string("compiler") + ": " +
                      json_string(m.compiler) + ", " + json_string("cuda") + ": " + json_string(m.cuda) + ", " +
                      json_string("cudnn") + ": " + json_string(m.cudnn) + "}");
  std::string isa = "[";
  for (size_t i = 0; i < m.cpu_isa.size(); ++i) isa += (i ? ", " : "") + json_string(m.cpu_isa[i]);
  raw("cpu", "{" + json_string("model") + ": " + json_string(m.cpu_model) + ", " + json_string("isa") + ": " + isa +
                 "], " + json_string("onednn_isa") + ": " + json_string(m.onednn_isa) + "}");
  str("gpu", m.gpu);
  raw("threads", std::to_string(m.threads));
  raw("deterministic", m.deterministic ? "true" : "false");
  raw("conv_chunk", std::to_string(m.conv_chunk));
  raw("gemm_tile", std::to_string(m.gemm_tile));
  raw("steps", std::to_string(m.steps));
  raw("epochs", std::to_string(m.epochs));
  raw("epoch_losses", json_doubles(m.epoch_losses));
  raw("step_losses", json_doubles(m.step_losses));
  str("losses_sha256", m.losses_sha256);
  str("weights_sha256", m.weights_sha256, true);
  j << "}\n";
  return j.str();
}

void write_manifest(const std::string& path, const RunManifest& manifest) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    MEDTL_CHECK(out.good(), "write_manifest: cannot create '", tmp, "': ", std::strerror(errno));
    out << manifest_json(manifest);
    out.flush();
    MEDTL_CHECK(out.good(), "write_manifest: writing '", tmp, "' failed: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(str_cat("write_manifest: renaming '", tmp, "' to '", path, "' failed: ", reason));
  }
}

}  // namespace medtl::experiments
