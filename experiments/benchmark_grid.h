// The benchmark's grid: every fine-tuning run (source x target x run) and pre-training stage as a
// job with a stable key and an identity hash, the cells left out because the source was
// pre-trained on the target's data, the deterministic shard of a --shard=i/n machine, and how each
// source's weights start (ModelInit).
//
// Identity: a job's canonical text holds everything its numbers depend on -- the experiment's seed,
// variant and numerics, the source's identity (random init settings; a weight file's SHA-256; a
// stage's identity, recursively through `from`), the data spec and limits, the protocol, the run
// index and seed -- and nothing that does not (paths of the data root, thread count, shard).
// Its SHA-256 (16 hex digits) is the run's config_hash; a stored result is reused only when it
// matches, and a stage's weights only when their file says the same.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/benchmark_config.h"
#include "experiments/train_common.h"

namespace medtl::experiments::bench {

struct Job {
  enum class Kind { Stage, Run };
  Kind kind = Kind::Run;
  std::string source;   // Stage: the pre-trained source it produces; Run: the source fine-tuned
  std::string target;   // Run only
  int64_t run = 0;      // Run only
  uint64_t seed = 0;
  std::string key;      // file-safe: "ImageNet__NIH__r0", "stage-ImageNet-to-PneumoniaMNIST"
  std::string identity; // canonical text
  std::string hash;     // first 16 hex digits of its SHA-256
  std::string label() const;  // "ImageNet → NIH run 1/3" or "pre-training ImageNet→PneumoniaMNIST"
};

class Grid {
 public:
  Grid(const ExperimentConfig& config, const Paths& paths);

  const ExperimentConfig& config() const { return config_; }
  const Paths& paths() const { return paths_; }

  // Every fine-tuning run, in canonical order (run, target, source) -- so the first round gives every
  // cell one run -- excluded cells left out. Identities are filled in lazily by identify().
  const std::vector<Job>& runs() const { return runs_; }
  // "source × target" cells not evaluated (pre-trained on the target's data), with the reason.
  const std::vector<std::string>& excluded() const { return excluded_; }
  // The runs of shard i of n (0 <= i < n): run k goes to shard k mod n.
  std::vector<Job> shard(int64_t i, int64_t n) const;

  // The pre-training stages `runs` need, in dependency order (a stage's `from` first).
  std::vector<Job> stages_for(const std::vector<Job>& runs) const;
  Job stage_job(const std::string& source) const;

  // Fills a run job's identity and hash (reads weight files the first time; stage jobs come with
  // theirs from stage_job).
  void identify(Job& job) const;
  // The identity text of a source (weight files hashed: reads them the first time).
  std::string source_identity(const std::string& source) const;
  // The file a stage's weights are stored in, under `pretrained_dir`.
  std::string stage_path(const std::string& source, const std::string& pretrained_dir) const;

  // How a source's weights start. For a pre-trained source this is its stage file, which must
  // exist (the runner trains it first).
  ModelInit model_init(const std::string& source, const std::string& pretrained_dir) const;

 private:
  ExperimentConfig config_;
  Paths paths_;
  std::vector<Job> runs_;
  std::vector<std::string> excluded_;
};

// The input normalisation of a random-init source: caffe (Keras: BGR, 0..255 minus the ImageNet
// mean), imagenet (torchvision: RGB, [0, 1], mean/std) or chestxray (the paper's option).
models::WeightFileInfo preprocess_info(const std::string& preprocess, const std::string& variant);

// Parses "i/n" (0 <= i < n) for --shard.
void parse_shard(const std::string& text, int64_t* i, int64_t* n);

}  // namespace medtl::experiments::bench
