// The grid of jobs: identities and hashes, exclusions, shards, stage order, model inits.
#include "experiments/benchmark_grid.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "experiments/benchmark_data.h"
#include "experiments/benchmark_store.h"
#include "experiments/report.h"
#include "models/weights.h"
#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

std::string short_hash(const std::string& text) { return report::sha256_hex(text).substr(0, 16); }

// The data a source was pre-trained on, through its whole `from` chain.
std::vector<const DataSpec*> pretraining_data(const ExperimentConfig& c, const std::string& source) {
  std::vector<const DataSpec*> out;
  for (const SourceSpec* s = &c.source(source); s->init == "pretrain"; s = &c.source(s->from)) out.push_back(&s->data);
  return out;
}

}  // namespace

std::string Job::label() const {
  if (kind == Kind::Stage) return "pre-training " + source;
  return str_cat(source, " \xE2\x86\x92 ", target, " run ", run + 1);
}

models::WeightFileInfo preprocess_info(const std::string& preprocess, const std::string& variant) {
  models::WeightFileInfo info = models::WeightFileInfo::torchvision("resnet50", 0, "random initialisation");
  info.variant = variant;
  info.bn_eps = variant == "keras" ? 1e-3 : 1e-5;
  if (preprocess == "caffe") {
    info.channel_order = "BGR", info.value_scale = 255.0;
    info.mean = {103.939, 116.779, 123.68}, info.std = {1.0, 1.0, 1.0};
  } else if (preprocess == "chestxray") {
    info.mean = {0.5056, 0.5056, 0.5056}, info.std = {0.252, 0.252, 0.252};
  } else {
    MEDTL_CHECK(preprocess == "imagenet", "unknown preprocess '", preprocess, "' (caffe, imagenet, chestxray)");
  }
  return info;
}

void parse_shard(const std::string& text, int64_t* i, int64_t* n) {
  const size_t slash = text.find('/');
  MEDTL_CHECK(slash != std::string::npos, "--shard=", text, ": expected i/n, e.g. --shard=0/4");
  *i = parse_int(text.substr(0, slash), "--shard index", 0);
  *n = parse_int(text.substr(slash + 1), "--shard count", 1);
  MEDTL_CHECK(*i < *n, "--shard=", text, ": the index must be below the count (0-based: 0/4 .. 3/4)");
}

Grid::Grid(const ExperimentConfig& config, const Paths& paths) : config_(config), paths_(paths) {
  for (int64_t r = 0; r < config_.runs; ++r) {
    for (const TargetSpec& t : config_.targets) {
      for (const SourceSpec& s : config_.sources) {
        bool excluded = false;
        for (const DataSpec* d : pretraining_data(config_, s.name)) excluded |= same_dataset(*d, t.data);
        if (excluded) {
          if (r == 0)
            excluded_.push_back(str_cat(s.name, " \xC3\x97 ", t.name, ": not evaluated (", s.name,
                                        " was pre-trained on ", t.name, "'s data)"));
          continue;
        }
        Job job;
        job.kind = Job::Kind::Run;
        job.source = s.name, job.target = t.name, job.run = r;
        job.seed = run_seed(config_.seed, r);
        job.key = str_cat(file_safe(s.name), "__", file_safe(t.name), "__r", r);
        runs_.push_back(job);
      }
    }
  }
}

std::vector<Job> Grid::shard(int64_t i, int64_t n) const {
  std::vector<Job> out;
  for (size_t k = 0; k < runs_.size(); ++k)
    if (static_cast<int64_t>(k % static_cast<size_t>(n)) == i) out.push_back(runs_[k]);
  return out;
}

void Grid::identify(Job& job) const {
  if (job.kind == Job::Kind::Stage || !job.hash.empty()) return;
  const TargetSpec& t = config_.target(job.target);
  std::string outputs;
  for (int64_t o : t.eval_outputs) outputs += str_cat(outputs.empty() ? "" : ",", o);
  job.identity = str_cat("run {", source_identity(job.source), "} target=", t.name, " data=", t.data.canonical(),
                         " protocol=", t.protocol.canonical(), " metric=", t.metric, " eval_outputs=", outputs,
                         " run=", job.run, " seed=", job.seed, " ", config_.common_canonical());
  job.hash = short_hash(job.identity);
}

std::string Grid::source_identity(const std::string& name) const {
  const SourceSpec& s = config_.source(name);
  if (s.init == "random") return str_cat("random preprocess=", s.preprocess);
  if (s.init == "weights") {
    const std::string path = paths_.expand(s.weights);
    std::error_code ec;
    MEDTL_CHECK(std::filesystem::exists(path, ec), "source '", name, "': weight file not found: ", path,
                path.find("resnet50_keras_imagenet.h5") != std::string::npos
                    ? "\nGet it with tools/fetch_weights.sh (the real Keras ImageNet ResNet-50, docs/weights.md)"
                    : "\nConvert a checkpoint with tools/convert_torch_checkpoint.py (docs/weights.md)");
    return str_cat("weights sha256=", file_sha256(path));
  }
  return stage_job(name).identity;
}

Job Grid::stage_job(const std::string& name) const {
  const SourceSpec& s = config_.source(name);
  MEDTL_CHECK(s.init == "pretrain", "source '", name, "' is not pre-trained by the benchmark");
  Job job;
  job.kind = Job::Kind::Stage;
  job.source = name;
  job.seed = derive_seed(config_.seed, "stage " + name);
  job.identity = str_cat("pretrain {", source_identity(s.from), "} data=", s.data.canonical(),
                         " protocol=", s.protocol.canonical(), " seed=", job.seed, " ", config_.common_canonical());
  job.hash = short_hash(job.identity);
  job.key = "stage-" + file_safe(name);
  return job;
}

std::vector<Job> Grid::stages_for(const std::vector<Job>& runs) const {
  std::vector<std::string> order;  // dependency order: a chain's first stage first
  std::set<std::string> seen;
  for (const Job& run : runs) {
    std::vector<std::string> chain;
    for (std::string at = run.source; config_.source(at).init == "pretrain"; at = config_.source(at).from)
      chain.push_back(at);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
      if (seen.insert(*it).second) order.push_back(*it);
  }
  std::vector<Job> out;
  for (const auto& name : order) out.push_back(stage_job(name));
  return out;
}

std::string Grid::stage_path(const std::string& source, const std::string& pretrained_dir) const {
  const Job job = stage_job(source);
  return str_cat(pretrained_dir, "/", file_safe(source), "-", job.hash, ".h5");
}

ModelInit Grid::model_init(const std::string& name, const std::string& pretrained_dir) const {
  const SourceSpec& s = config_.source(name);
  ModelInit init;
  init.variant = config_.variant;
  if (s.init == "random") {
    init.info = preprocess_info(s.preprocess, config_.variant);
  } else {
    init.weights_path = s.init == "weights" ? paths_.expand(s.weights) : stage_path(name, pretrained_dir);
    init.info = models::read_weight_info(init.weights_path);
  }
  return init;
}

}  // namespace medtl::experiments::bench
