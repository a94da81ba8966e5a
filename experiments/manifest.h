// Run manifests: one JSON file per training run that says exactly what ran, where, and what came
// out -- enough to rerun it and to check that the rerun gave the same bits.
//
//   RunManifest m = collect_run_environment("verify_reproducible");   // versions, ISA, git, mode
//   m.config = config_text;  m.config_sha256 = sha256 of it;  m.seeds = {{"seed", 7}};
//   ... train ...
//   m.weights_sha256 = state_dict_sha256(model);  m.epoch_losses = ...;  m.losses_sha256 = ...
//   write_manifest("run.json", m);
//
// Fields (all always present; "unknown" or "not built" where a value cannot be had):
//   program, created_utc, config, config_sha256, seeds{name: value},
//   git_commit ("git rev-parse HEAD" at run time in $BUILD_WORKSPACE_DIRECTORY or the working
//   directory, else "unknown"), git_dirty ("yes" | "no" | "unknown"),
//   versions{onednn, hdf5, compiler, cuda, cudnn}, cpu{model, isa[...], onednn_isa}, gpu,
//   threads, deterministic, conv_chunk, gemm_tile,
//   steps, epochs, epoch_losses[...], step_losses[...], losses_sha256, weights_sha256.
// The two hashes are what reruns compare (docs/reproducibility.md):
//   weights_sha256 = SHA-256 over the raw bytes (little-endian, row-major) of every state_dict
//                    tensor, in state_dict order, nothing else in between;
//   losses_sha256  = SHA-256 over the per-epoch losses as little-endian IEEE float64, in order.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace medtl::experiments {

struct RunManifest {
  std::string program;
  std::string created_utc;  // informational: "2024-05-01T12:00:00Z" (never part of a hash)
  std::string config;
  std::string config_sha256;
  std::vector<std::pair<std::string, uint64_t>> seeds;
  std::string git_commit = "unknown";
  std::string git_dirty = "unknown";
  std::string onednn_version, hdf5_version, compiler;
  std::string cuda = "not built", cudnn = "not built";
  std::string cpu_model = "unknown";
  std::vector<std::string> cpu_isa;  // of avx, avx2, fma, avx512f, avx512_vnni, avx512_bf16, amx_tile, ...
  std::string onednn_isa;            // the instruction set oneDNN dispatches to, e.g. "avx512_core"
  std::string gpu = "none";
  int threads = 0;
  bool deterministic = true;
  int64_t conv_chunk = 0, gemm_tile = 0;
  int64_t steps = 0, epochs = 0;
  std::vector<double> epoch_losses, step_losses;
  std::string losses_sha256;
  std::string weights_sha256;
};

// A manifest with everything about the environment filled in: program, created_utc, git,
// versions, CPU/GPU, threads, deterministic mode. The caller adds config, seeds and results.
RunManifest collect_run_environment(const std::string& program);

// The JSON text (2-space indented, keys in the order listed above, numbers in shortest
// round-trip form) and its atomic write (temporary file, then rename).
std::string manifest_json(const RunManifest& manifest);
void write_manifest(const std::string& path, const RunManifest& manifest);

// The hashes defined above, as 64 lowercase hex digits.
std::string state_dict_sha256(const nn::Module& model);
std::string float64_sha256(const std::vector<double>& values);
std::string sha256_hex(const std::string& bytes);  // experiments/report.h's SHA-256

// Pieces of the environment, for tests and logs.
std::string git_commit_at_runtime(std::string* dirty = nullptr);
std::vector<std::string> cpu_isa_flags(std::string* model = nullptr);  // from /proc/cpuinfo

}  // namespace medtl::experiments
