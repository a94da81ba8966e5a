// The reproducibility run: config parsing, synthetic data keyed by position, the training loop,
// checkpoint glue and the run's manifest.
#include "experiments/repro_training.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "autograd/graph.h"
#include "experiments/report.h"
#include "models/resnet.h"
#include "models/weights.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "tensor/ops/copy.h"

namespace medtl::experiments {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// Seeds for each use of randomness, derived from the run's seed (Philox block of a fixed tag).
enum class SeedUse : uint64_t { Init = 1, Data = 2, Shuffle = 3, Augment = 4, Dropout = 5 };
uint64_t derive_seed(uint64_t seed, SeedUse use) {
  const PhiloxBlock b = philox_random(seed, 0x5EEDull, static_cast<uint64_t>(use));
  return (static_cast<uint64_t>(b[0]) << 32) | b[1];
}

// An input Dropout in front of the network (state_dict keys "net.*"; the Dropout has none).
class InputDropoutNet : public nn::Module {
 public:
  InputDropoutNet(std::shared_ptr<nn::Module> net, double p, uint64_t seed) {
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(p, seed));
    net_ = register_module("net", std::move(net));
  }
  Tensor forward(const Tensor& x) override { return net_->forward(dropout_->forward(x)); }
  std::string type_name() const override { return "InputDropoutNet"; }

 private:
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::Module> net_;
};

// Visiting order of epoch e: Fisher-Yates keyed by (shuffle seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const PhiloxBlock b = philox_random(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i));
    std::swap(order[i], order[(static_cast<uint64_t>(b[0]) << 32 | b[1]) % static_cast<uint64_t>(i + 1)]);
  }
  return order;
}

}  // namespace

// ---------------------------------------------------------------- config

std::string ReproConfig::canonical_text() const {
  std::ostringstream o;
  o << "model = " << model << "\n"
    << "variant = " << variant << "\n"
    << "num_classes = " << num_classes << "\n"
    << "image_size = " << image_size << "\n"
    << "batch = " << batch << "\n"
    << "steps = " << steps << "\n"
    << "steps_per_epoch = " << steps_per_epoch << "\n"
    << "seed = " << seed << "\n"
    << "lr = " << report::format_double(lr) << "\n"
    << "optimizer = " << optimizer << "\n"
    << "momentum = " << report::format_double(momentum) << "\n"
    << "weight_decay = " << report::format_double(weight_decay) << "\n"
    << "scheduler = " << scheduler << "\n"
    << "dropout = " << report::format_double(dropout) << "\n";
  return o.str();
}

ReproConfig parse_repro_config(const std::string& text, const std::string& origin) {
  ReproConfig c;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  std::map<std::string, int> seen;
  while (std::getline(in, line)) {
    ++line_no;
    const size_t hash = line.find('#');
    const std::string content = trim(hash == std::string::npos ? line : line.substr(0, hash));
    if (content.empty()) continue;
    const size_t eq = content.find('=');
    MEDTL_CHECK(eq != std::string::npos, origin, ":", line_no, ": expected 'key = value', got '", content, "'");
    const std::string key = trim(content.substr(0, eq)), value = trim(content.substr(eq + 1));
    MEDTL_CHECK(!value.empty(), origin, ":", line_no, ": '", key, "' has no value");
    MEDTL_CHECK(!seen.count(key), origin, ":", line_no, ": '", key, "' was already set on line ", seen[key]);
    seen[key] = line_no;
    auto as_int = [&](int64_t min) {
      size_t used = 0;
      int64_t v = 0;
      try {
        v = std::stoll(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      MEDTL_CHECK(used == value.size() && v >= min, origin, ":", line_no, ": '", key, "' must be an integer >= ", min,
                  ", got '", value, "'");
      return v;
    };
    auto as_double = [&](double min) {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      MEDTL_CHECK(used == value.size() && v >= min, origin, ":", line_no, ": '", key, "' must be a number >= ", min,
                  ", got '", value, "'");
      return v;
    };
    auto one_of = [&](std::initializer_list<const char*> names) {
      std::string all;
      for (const char* n : names) {
        if (value == n) return value;
        all += std::string(all.empty() ? "" : ", ") + n;
      }
      throw Error(str_cat(origin, ":", line_no, ": '", key, "' must be one of ", all, ", got '", value, "'"));
    };
    if (key == "model") c.model = one_of({"resnet50"});
    else if (key == "variant") c.variant = one_of({"torchvision", "keras"});
    else if (key == "num_classes") c.num_classes = as_int(1);
    else if (key == "image_size") c.image_size = as_int(32);
    else if (key == "batch") c.batch = as_int(2);
    else if (key == "steps") c.steps = as_int(1);
    else if (key == "steps_per_epoch") c.steps_per_epoch = as_int(1);
    else if (key == "seed") {
      size_t used = 0;
      uint64_t v = 0;
      try {
        v = std::stoull(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      MEDTL_CHECK(used == value.size() && value[0] != '-', origin, ":", line_no,
                  ": 'seed' must be an integer in [0, 2^64), got '", value, "'");
      c.seed = v;
    } else if (key == "lr") c.lr = as_double(0.0);
    else if (key == "optimizer") c.optimizer = one_of({"sgd", "adam", "adamw"});
    else if (key == "momentum") c.momentum = as_double(0.0);
    else if (key == "weight_decay") c.weight_decay = as_double(0.0);
    else if (key == "scheduler") c.scheduler = one_of({"none", "cosine", "step"});
    else if (key == "dropout") c.dropout = as_double(0.0);
    else
      throw Error(str_cat(origin, ":", line_no, ": unknown key '", key,
                          "'; known: model, variant, num_classes, image_size, batch, steps, steps_per_epoch, seed, lr, "
                          "optimizer, momentum, weight_decay, scheduler, dropout (see experiments/repro_training.h)"));
  }
  MEDTL_CHECK(c.dropout < 1.0, origin, ": dropout must be in [0, 1), got ", c.dropout);
  return c;
}

ReproConfig load_repro_config(const std::string& path) {
  std::ifstream in(path);
  MEDTL_CHECK(in.good(), "cannot read the config file '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_repro_config(text.str(), path);
}

// ---------------------------------------------------------------- the run

ReproRun::ReproRun(const ReproConfig& config)
    : config_(config), augment_(derive_seed(config.seed, SeedUse::Augment)) {
  Generator init(derive_seed(config.seed, SeedUse::Init));
  std::shared_ptr<nn::Module> net =
      std::make_shared<models::ResNet50>(models::parse_variant(config.variant), config.num_classes, init);
  model_ = config.dropout > 0.0
               ? std::make_shared<InputDropoutNet>(net, config.dropout, derive_seed(config.seed, SeedUse::Dropout))
               : net;
  model_->train();
  const std::vector<Tensor> params = model_->parameters();
  if (config.optimizer == "sgd")
    optimizer_ = std::make_unique<nn::SGD>(params, config.lr, config.momentum, 0.0, config.weight_decay);
  else if (config.optimizer == "adam")
    optimizer_ = std::make_unique<nn::Adam>(params, config.lr, 0.9, 0.999, 1e-8, config.weight_decay);
  else
    optimizer_ = std::make_unique<nn::AdamW>(params, config.lr, 0.9, 0.999, 1e-8, config.weight_decay);
  if (config.scheduler == "cosine") {
    cosine_ = std::make_unique<nn::CosineEpoch>(*optimizer_, config.epochs());
    scheduler_ = std::make_unique<SchedulerRef>(scheduler_ref(*cosine_, "CosineEpoch"));
  } else if (config.scheduler == "step") {
    step_lr_ = std::make_unique<nn::StepLR>(*optimizer_, 1, 0.5);
    scheduler_ = std::make_unique<SchedulerRef>(scheduler_ref(*step_lr_, "StepLR"));
  }
}

ReproRun::~ReproRun() = default;

Tensor ReproRun::batch_images(int64_t epoch, int64_t step_in_epoch, Tensor* targets) {
  const int64_t B = config_.batch, S = config_.image_size, K = config_.num_classes;
  const uint64_t data_seed = derive_seed(config_.seed, SeedUse::Data);
  const std::vector<int64_t> order =
      epoch_order(config_.steps_per_epoch * B, derive_seed(config_.seed, SeedUse::Shuffle), epoch);
  Tensor images = empty({B, 3, S, S}, DType::Float32);
  *targets = empty({B, K}, DType::Float32);
  const Tensor flips = uniform({B}, augment_);  // one Generator stream per batch
  for (int64_t k = 0; k < B; ++k) {
    const uint64_t i = static_cast<uint64_t>(order[step_in_epoch * B + k]);
    const Tensor image = uniform_keyed({3, S, S}, data_seed, i, -1.0, 1.0, DType::Float32);
    const Tensor label = uniform_keyed({K}, data_seed, (uint64_t{1} << 40) + i, 0.0, 1.0, DType::Float32);
    const float* src = image.data<float>();
    float* dst = images.data<float>() + k * 3 * S * S;
    const bool flip = flips.data<float>()[k] < 0.5f;
    for (int64_t row = 0; row < 3 * S; ++row)
      for (int64_t col = 0; col < S; ++col) dst[row * S + col] = src[row * S + (flip ? S - 1 - col : col)];
    for (int64_t c = 0; c < K; ++c) targets->data<float>()[k * K + c] = label.data<float>()[c] < 0.5f ? 0.0f : 1.0f;
  }
  return images;
}

int64_t ReproRun::train_until(int64_t until) {
  until = std::min(until, config_.steps);
  int64_t trained = 0;
  while (global_step_ < until) {
    Tensor targets;
    const Tensor images = batch_images(epoch_, step_in_epoch_, &targets);
    const Tensor loss = nn::binary_cross_entropy_with_logits(model_->forward(images), targets);
    ag::backward(loss);
    optimizer_->step();
    optimizer_->zero_grad();
    step_losses_.push_back(loss.item());
    ++global_step_;
    ++trained;
    if (++step_in_epoch_ == config_.steps_per_epoch) {
      if (cosine_) cosine_->step();
      if (step_lr_) step_lr_->step();
      ++epoch_;
      step_in_epoch_ = 0;
    }
  }
  return trained;
}

std::vector<double> ReproRun::epoch_losses() const {
  std::vector<double> out;
  const int64_t n = static_cast<int64_t>(step_losses_.size());
  for (int64_t first = 0; first < n; first += config_.steps_per_epoch) {
    const int64_t last = std::min(n, first + config_.steps_per_epoch);
    double sum = 0.0;
    for (int64_t i = first; i < last; ++i) sum += step_losses_[i];
    out.push_back(sum / static_cast<double>(last - first));
  }
  return out;
}

CheckpointState ReproRun::checkpoint_state() const {
  CheckpointState s;
  s.config = config_.canonical_text();
  s.epoch = epoch_;
  s.step_in_epoch = step_in_epoch_;
  s.global_step = global_step_;
  s.generators = {{"augment", augment_}};
  s.series = {{"step_losses", step_losses_}};
  return s;
}

TrainingObjects ReproRun::objects() const { return {model_.get(), optimizer_.get(), scheduler_.get()}; }

void ReproRun::save(const std::string& path) const { save_checkpoint(path, objects(), checkpoint_state()); }

void ReproRun::check_checkpoint_config(const std::string& path, const ReproConfig& config) {
  std::error_code ec;
  MEDTL_CHECK(std::filesystem::is_regular_file(path, ec), "resume: checkpoint not found: '", path, "'");
  const std::string file_config = models::read_hdf5_attributes(path).strings["config"];
  MEDTL_CHECK(file_config == config.canonical_text(), "resume: checkpoint '", path,
              "' was written by a run with another config.\n--- checkpoint:\n", file_config, "--- this run:\n",
              config.canonical_text());
}

void ReproRun::resume(const std::string& path) {
  check_checkpoint_config(path, config_);  // before touching anything: load_checkpoint changes the objects
  const CheckpointState s = load_checkpoint(path, objects());
  epoch_ = s.epoch;
  step_in_epoch_ = s.step_in_epoch;
  global_step_ = s.global_step;
  bool have_augment = false;
  for (const auto& [name, gen] : s.generators)
    if (name == "augment") augment_ = gen, have_augment = true;
  MEDTL_CHECK(have_augment, "resume: checkpoint '", path, "' has no 'augment' generator");
  step_losses_.clear();
  for (const auto& [name, values] : s.series)
    if (name == "step_losses") step_losses_ = values;
  MEDTL_CHECK(static_cast<int64_t>(step_losses_.size()) == global_step_, "resume: checkpoint '", path, "' has ",
              step_losses_.size(), " step losses for ", global_step_, " steps");
}

RunManifest ReproRun::manifest(const std::string& program) const {
  RunManifest m = collect_run_environment(program);
  m.config = config_.canonical_text();
  m.config_sha256 = sha256_hex(m.config);
  m.seeds = {{"seed", config_.seed},
             {"init", derive_seed(config_.seed, SeedUse::Init)},
             {"data", derive_seed(config_.seed, SeedUse::Data)},
             {"shuffle", derive_seed(config_.seed, SeedUse::Shuffle)},
             {"augment", derive_seed(config_.seed, SeedUse::Augment)},
             {"dropout", derive_seed(config_.seed, SeedUse::Dropout)}};
  m.steps = global_step_;
  m.step_losses = step_losses_;
  m.epoch_losses = epoch_losses();
  m.epochs = static_cast<int64_t>(m.epoch_losses.size());
  m.losses_sha256 = float64_sha256(m.epoch_losses);
  m.weights_sha256 = state_dict_sha256(*model_);
  return m;
}

}  // namespace medtl::experiments
