// Checkpoint save and load: the model, optimizer, scheduler, RNG and loader position of a run in
// one HDF5 file (models/weights.h's generic files), restored bit for bit.
#include "experiments/checkpoint.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "experiments/report.h"
#include "models/weights.h"
#include "nn/layers.h"
#include "tensor/determinism.h"
#include "tensor/ops/copy.h"

namespace medtl::experiments {
namespace {

constexpr const char* kFormat = "medtl-checkpoint";
constexpr int64_t kFormatVersion = 1;

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void collect_dropouts(nn::Module& module, const std::string& path,
                      std::vector<std::pair<std::string, nn::Module*>>* out) {
  if (dynamic_cast<nn::Dropout*>(&module) != nullptr) out->emplace_back(path, &module);
  for (const auto& [name, child] : module.children())
    collect_dropouts(*child, path.empty() ? name : path + "." + name, out);
}

// "dropout.<path>." for a module path ("" -> "dropout..").
std::string dropout_prefix(const std::string& path) { return "dropout." + path + "."; }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

}  // namespace

std::vector<std::pair<std::string, nn::Module*>> dropout_modules(nn::Module& model) {
  std::vector<std::pair<std::string, nn::Module*>> out;
  collect_dropouts(model, "", &out);
  return out;
}

void save_checkpoint(const std::string& path, const TrainingObjects& objects, const CheckpointState& state) {
  MEDTL_CHECK(objects.model != nullptr, "save_checkpoint('", path, "'): no model given");
  nn::NamedTensors tensors;
  for (const auto& [key, t] : objects.model->state_dict()) tensors.emplace_back("model." + key, t);
  if (objects.optimizer != nullptr)
    for (auto& [key, t] : objects.optimizer->export_state()) tensors.emplace_back("optimizer." + key, t);
  for (const auto& [name, values] : state.series) {
    Tensor t = empty({static_cast<int64_t>(values.size())}, DType::Float64);
    for (size_t i = 0; i < values.size(); ++i) t.data<double>()[i] = values[i];
    tensors.emplace_back("series." + name, t);
  }

  models::Hdf5Attributes attrs;
  attrs.strings["format"] = kFormat;
  attrs.ints["format_version"] = kFormatVersion;
  attrs.strings["config"] = state.config;
  attrs.strings["config_sha256"] = report::sha256_hex(state.config);
  attrs.ints["epoch"] = state.epoch;
  attrs.ints["step_in_epoch"] = state.step_in_epoch;
  attrs.ints["global_step"] = state.global_step;
  attrs.strings["optimizer"] = objects.optimizer != nullptr ? objects.optimizer->name() : "none";
  attrs.strings["scheduler"] = objects.scheduler != nullptr ? objects.scheduler->type : "none";
  if (objects.scheduler != nullptr)
    for (const auto& [key, value] : objects.scheduler->export_state()) attrs.doubles["scheduler." + key] = value;
  for (const auto& [name, gen] : state.generators) {
    MEDTL_CHECK(!name.empty() && name.find('.') == std::string::npos, "save_checkpoint: generator name '", name,
                "' must be non-empty and contain no '.'");
    MEDTL_CHECK(!attrs.uints.count("rng." + name + ".seed"), "save_checkpoint: two generators are named '", name, "'");
    attrs.uints["rng." + name + ".seed"] = gen.seed();
    attrs.uints["rng." + name + ".next_stream"] = gen.next_stream();
  }
  for (const auto& [mpath, module] : dropout_modules(*objects.model)) {
    const auto* dropout = static_cast<const nn::Dropout*>(module);
    attrs.uints[dropout_prefix(mpath) + "seed"] = dropout->seed();
    attrs.uints[dropout_prefix(mpath) + "stream"] = dropout->stream();
  }
  // How the bits were computed (the thread count is left out on purpose: in deterministic mode it
  // changes no bit, and leaving it out keeps the file itself identical for any thread count).
  attrs.ints["deterministic"] = deterministic() ? 1 : 0;
  attrs.ints["conv_chunk"] = deterministic_conv_chunk();
  models::write_hdf5_file(path, tensors, attrs);
}

CheckpointState load_checkpoint(const std::string& path, const TrainingObjects& objects) {
  MEDTL_CHECK(objects.model != nullptr, "load_checkpoint('", path, "'): no model given");
  std::error_code ec;
  MEDTL_CHECK(std::filesystem::is_regular_file(path, ec), "checkpoint not found: '", path,
              "' (checkpoints are written by save_checkpoint, e.g. verify_reproducible --save=PATH)");
  models::Hdf5Attributes attrs;
  try {
    attrs = models::read_hdf5_attributes(path);
  } catch (const Error& e) {
    throw Error(str_cat("'", path, "' is not a medtl checkpoint, or cannot be read: ", e.what()));
  }
  auto str_attr = [&](const std::string& name) {
    const auto it = attrs.strings.find(name);
    MEDTL_CHECK(it != attrs.strings.end(), "checkpoint '", path, "' lacks the string attribute '", name, "'");
    return it->second;
  };
  auto int_attr = [&](const std::string& name) {
    const auto it = attrs.ints.find(name);
    MEDTL_CHECK(it != attrs.ints.end(), "checkpoint '", path, "' lacks the integer attribute '", name, "'");
    return it->second;
  };
  auto uint_attr = [&](const std::string& name) {
    const auto it = attrs.uints.find(name);
    MEDTL_CHECK(it != attrs.uints.end(), "checkpoint '", path, "' lacks the attribute '", name, "'");
    return it->second;
  };
  MEDTL_CHECK(attrs.strings.count("format") && attrs.strings.at("format") == kFormat, "'", path,
              "' is not a medtl checkpoint (root attribute format != \"", kFormat, "\")");
  const int64_t version = int_attr("format_version");
  MEDTL_CHECK(version == kFormatVersion, "checkpoint '", path, "' has format_version ", version, "; this build reads ",
              kFormatVersion);

  // ---- Read and check everything before changing anything. ----
  std::map<std::string, Tensor> model_file;
  nn::NamedTensors optimizer_state;
  CheckpointState state;
  for (auto& [key, t] : models::read_hdf5_tensors(path)) {
    if (starts_with(key, "model.")) {
      model_file[key.substr(6)] = t;
    } else if (starts_with(key, "optimizer.")) {
      optimizer_state.emplace_back(key.substr(10), t);
    } else if (starts_with(key, "series.")) {
      MEDTL_CHECK(t.dtype() == DType::Float64 && t.dim() == 1, "checkpoint '", path, "': '", key,
                  "' should be a 1-D float64 series, is ", t.str());
      state.series.emplace_back(key.substr(7), t.to_vector<double>());
    } else {
      throw Error(str_cat("checkpoint '", path, "' holds an unexpected dataset '", key, "'"));
    }
  }
  const nn::NamedTensors model_state = objects.model->state_dict();
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> module_keys;
  for (const auto& [key, t] : model_state) {
    module_keys.insert(key);
    const auto it = model_file.find(key);
    if (it == model_file.end()) missing.push_back(key);
    else if (it->second.shape() != t.shape() || it->second.dtype() != t.dtype())
      mismatched.push_back(str_cat(key, ": file ", it->second.str(), " vs model ", t.str()));
  }
  for (const auto& [key, t] : model_file)
    if (!module_keys.count(key)) unexpected.push_back(key);
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::ostringstream msg;
    msg << "load_checkpoint: '" << path << "' does not match the " << objects.model->type_name() << " model ("
        << missing.size() << " missing, " << unexpected.size() << " unexpected, " << mismatched.size()
        << " shape/dtype-mismatched); nothing was loaded.";
    if (!missing.empty()) msg << "\n  missing: " << join(missing);
    if (!unexpected.empty()) msg << "\n  unexpected: " << join(unexpected);
    if (!mismatched.empty()) msg << "\n  mismatched: " << join(mismatched);
    msg << "\nWas it written for a different config (model, classes, dropout)?";
    throw Error(msg.str());
  }
  const std::string file_optimizer = str_attr("optimizer");
  const std::string want_optimizer = objects.optimizer != nullptr ? objects.optimizer->name() : "none";
  MEDTL_CHECK(file_optimizer == want_optimizer, "load_checkpoint: '", path, "' holds ", file_optimizer,
              " state but the run uses ", want_optimizer);
  const std::string file_scheduler = str_attr("scheduler");
  const std::string want_scheduler = objects.scheduler != nullptr ? objects.scheduler->type : "none";
  MEDTL_CHECK(file_scheduler == want_scheduler, "load_checkpoint: '", path, "' holds scheduler ", file_scheduler,
              " but the run uses ", want_scheduler);
  nn::ScalarState scheduler_state;
  for (const auto& [name, value] : attrs.doubles)
    if (starts_with(name, "scheduler.")) scheduler_state.emplace_back(name.substr(10), value);
  if (objects.scheduler != nullptr) {
    std::set<std::string> have, want;
    for (const auto& entry : scheduler_state) have.insert(entry.first);
    for (const auto& entry : objects.scheduler->export_state()) want.insert(entry.first);
    MEDTL_CHECK(have == want, "load_checkpoint: '", path, "': the ", want_scheduler,
                " state in the file has other entries than the run's scheduler");
  }
  const auto dropouts = dropout_modules(*objects.model);
  std::set<std::string> dropout_paths;
  for (const auto& [mpath, module] : dropouts) {
    dropout_paths.insert(mpath);
    const auto* dropout = static_cast<const nn::Dropout*>(module);
    const uint64_t seed = uint_attr(dropout_prefix(mpath) + "seed");
    MEDTL_CHECK(seed == dropout->seed(), "load_checkpoint: Dropout '", mpath, "' has seed ", dropout->seed(),
                " but the checkpoint's has seed ", seed, "; the run's config differs from the checkpoint's");
  }
  for (const auto& [name, value] : attrs.uints) {
    if (starts_with(name, "dropout.") && ends_with(name, ".stream")) {
      const std::string mpath = name.substr(8, name.size() - 8 - 7);
      MEDTL_CHECK(dropout_paths.count(mpath), "load_checkpoint: '", path, "' has a Dropout at '", mpath,
                  "' that the model lacks");
    }
    if (starts_with(name, "rng.") && ends_with(name, ".seed")) {
      const std::string gen_name = name.substr(4, name.size() - 4 - 5);
      state.generators.emplace_back(gen_name, Generator(value, uint_attr("rng." + gen_name + ".next_stream")));
    }
  }
  state.config = str_attr("config");
  state.epoch = int_attr("epoch");
  state.step_in_epoch = int_attr("step_in_epoch");
  state.global_step = int_attr("global_step");

  // ---- Apply. The optimizer and schedulers validate their whole state before assigning it. ----
  if (objects.optimizer != nullptr) objects.optimizer->load_state(optimizer_state);
  if (objects.scheduler != nullptr) objects.scheduler->load_state(scheduler_state);
  for (const auto& [key, t] : model_state) ops::copy_(t, model_file.at(key));
  for (const auto& [mpath, module] : dropouts)
    static_cast<nn::Dropout*>(module)->set_stream(uint_attr(dropout_prefix(mpath) + "stream"));
  return state;
}

}  // namespace medtl::experiments
