// verify_reproducible: trains a short run several times, each in a new process, and reports
// whether the final weights and the per-epoch losses hash the same every time.
//
//   bazel run //experiments:verify_reproducible -- experiments/configs/verify_tiny.cfg
//       [--threads=2,1] [--out=DIR] [--resume_check=false] [--keep_checkpoints] [--fast]
//
// Runs (each a child process of this binary in --worker mode, each writing a manifest, see
// experiments/manifest.h):
//   1. the config with the first thread count;
//   2. the same again: same config, same seed, another process;
//   3. one run per further thread count (default: 1 thread);
//   4. (--resume_check, default on) half the steps, a checkpoint, then a NEW process that loads it
//      and trains the other half. The checkpoint (hundreds of MB for ResNet-50 with Adam) is
//      deleted afterwards unless --keep_checkpoints.
// Every run's weights_sha256 and losses_sha256 are compared with run 1's. Exit status 0 when all
// agree, 1 when any differs, 2 on a usage or run error. --fast runs all of them in fast mode
// (tensor/determinism.h) to show what that gives up. CONFIG defaults to the tiny example config.
//
// Worker mode (what the runs above are; also used by tests/reproducibility_test.cc):
//   verify_reproducible CONFIG --worker [--threads=N] [--until=STEP] [--resume=CKPT] [--save=CKPT]
//       [--manifest=JSON] [--fast]
// trains from scratch (or from CKPT) until global step STEP (default: the config's steps), then
// saves a checkpoint and/or a manifest, and prints "weights_sha256 <hex>" and "losses_sha256 <hex>".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "experiments/flags.h"
#include "experiments/repro_training.h"
#include "tensor/determinism.h"
#include "tensor/parallel.h"

namespace {

using medtl::experiments::Flags;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A path the user typed, made absolute against the directory `bazel run` was started from.
std::string user_path(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || cwd == nullptr || cwd[0] == '\0') return path;
  return std::string(cwd) + "/" + path;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw medtl::Error("verify_reproducible: cannot find its own binary (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

int run_worker(const Flags& flags, const std::string& config_path) {
  const medtl::experiments::ReproConfig config = medtl::experiments::load_repro_config(config_path);
  medtl::set_num_threads(static_cast<int>(flags.get_int("threads", medtl::get_num_threads())));
  medtl::set_deterministic(!flags.get_bool("fast"));
  medtl::experiments::ReproRun run(config);
  if (flags.has("resume")) run.resume(flags.get("resume"));
  run.train_until(flags.get_int("until", config.steps));
  if (flags.has("save")) run.save(flags.get("save"));
  const medtl::experiments::RunManifest m = run.manifest("verify_reproducible");
  if (flags.has("manifest")) medtl::experiments::write_manifest(flags.get("manifest"), m);
  std::printf("weights_sha256 %s\nlosses_sha256 %s\n", m.weights_sha256.c_str(), m.losses_sha256.c_str());
  return 0;
}

struct Outcome {
  std::string name, weights, losses, manifest;
  bool ok = false;
};

// Runs one worker process; its two hashes from stdout.
Outcome spawn(const std::string& name, const std::string& args, const std::string& manifest) {
  Outcome o;
  o.name = name;
  o.manifest = manifest;
  const std::string command = shell_quote(self_exe()) + " " + args;
  std::fprintf(stderr, "verify_reproducible: %s ...\n", name.c_str());
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return o;
  char line[512];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    if (key == "weights_sha256") o.weights = value;
    if (key == "losses_sha256") o.losses = value;
  }
  o.ok = ::pclose(pipe) == 0 && o.weights.size() == 64 && o.losses.size() == 64;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Flags flags(
        argc, argv,
        {{"threads", "thread counts, comma separated; the first is repeated (default 2,1). Worker: one count"},
         {"out", "folder for manifests and checkpoints (default: a new folder under $TMPDIR or /tmp)"},
         {"resume_check", "also check save + resume in a new process (default true)"},
         {"fast", "run in fast mode instead of deterministic mode"},
         {"keep_checkpoints", "keep the resume check's checkpoint (deleted by default)"},
         {"worker", "run one training (internal; see the file comment)"},
         {"until", "worker: train until this global step"},
         {"resume", "worker: checkpoint to resume from"},
         {"save", "worker: checkpoint to write at the end"},
         {"manifest", "worker: manifest to write at the end"}},
        "verify_reproducible [CONFIG] [--threads=2,1] [--out=DIR] [--resume_check=false] [--keep_checkpoints] [--fast]");
    if (flags.has("help")) {
      std::printf("%s\n", flags.help().c_str());
      return 0;
    }
    const std::string config_path =
        flags.positionals().empty() ? "experiments/configs/verify_tiny.cfg" : user_path(flags.positionals()[0]);
    if (flags.get_bool("worker")) return run_worker(flags, config_path);

    const medtl::experiments::ReproConfig config = medtl::experiments::load_repro_config(config_path);
    std::vector<int> threads;
    {
      std::stringstream list(flags.get("threads", "2,1"));
      for (std::string item; std::getline(list, item, ',');)
        if (!item.empty()) threads.push_back(std::max(1, std::atoi(item.c_str())));
      if (threads.empty()) threads.push_back(2);
    }
    std::string out = flags.has("out") ? user_path(flags.get("out")) : "";
    if (out.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string pattern = std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") + "/verify_reproducible.XXXXXX";
      MEDTL_CHECK(::mkdtemp(&pattern[0]) != nullptr, "verify_reproducible: cannot create a folder like ", pattern);
      out = pattern;
    }
    std::filesystem::create_directories(out);
    const bool fast = flags.get_bool("fast");
    const std::string common = shell_quote(std::filesystem::absolute(config_path).string()) + " --worker" +
                               (fast ? " --fast" : "");
    auto worker = [&](int t, const std::string& extra, const std::string& manifest) {
      return medtl::str_cat(common, " --threads=", t, " --manifest=", shell_quote(manifest), extra);
    };
    std::vector<Outcome> runs;
    const std::string m1 = out + "/run1.json", m2 = out + "/run2.json";
    runs.push_back(spawn(medtl::str_cat("run 1: ", threads[0], " thread(s)"), worker(threads[0], "", m1), m1));
    runs.push_back(spawn(medtl::str_cat("run 2: ", threads[0], " thread(s), another process"), worker(threads[0], "", m2), m2));
    for (size_t i = 1; i < threads.size(); ++i) {
      const std::string m = medtl::str_cat(out, "/run", runs.size() + 1, ".json");
      runs.push_back(spawn(medtl::str_cat("run ", runs.size() + 1, ": ", threads[i], " thread(s)"), worker(threads[i], "", m), m));
    }
    if (flags.get("resume_check", "true") != "false") {
      const int64_t half = std::max<int64_t>(1, config.steps / 2);
      const std::string ckpt = out + "/half.h5", mh = out + "/half.json", mr = out + "/resumed.json";
      const Outcome first = spawn(medtl::str_cat("resume check: steps 1..", half, ", checkpoint"),
                                  worker(threads[0], medtl::str_cat(" --until=", half, " --save=", shell_quote(ckpt)), mh), mh);
      if (!first.ok) {
        runs.push_back(first);
      } else {
        runs.push_back(spawn(medtl::str_cat("resume check: new process, steps ", half + 1, "..", config.steps),
                             worker(threads[0], " --resume=" + shell_quote(ckpt), mr), mr));
      }
      if (!flags.get_bool("keep_checkpoints")) std::filesystem::remove(ckpt);
    }

    const Outcome& ref = runs.front();
    bool all_same = true;
    std::printf("\nverify_reproducible: %s (%s mode), config sha256 %s\n", config_path.c_str(),
                fast ? "fast" : "deterministic",
                medtl::experiments::sha256_hex(config.canonical_text()).c_str());
    std::printf("%-52s %-18s %-18s %s\n", "run", "weights_sha256", "losses_sha256", "agrees with run 1");
    for (const Outcome& r : runs) {
      const bool same = r.ok && ref.ok && r.weights == ref.weights && r.losses == ref.losses;
      all_same = all_same && same;
      std::printf("%-52s %-18s %-18s %s\n", r.name.c_str(), r.ok ? (r.weights.substr(0, 16) + "..").c_str() : "(failed)",
                  r.ok ? (r.losses.substr(0, 16) + "..").c_str() : "(failed)",
                  !r.ok ? "RUN FAILED" : same ? "yes" : "NO");
    }
    std::printf("\nmanifests: %s\n", out.c_str());
    std::printf(all_same ? "REPRODUCIBLE: every run gave the same weights and losses, bit for bit\n"
                         : "NOT REPRODUCIBLE: some run differs (see the table; compare the manifests)\n");
    return all_same ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "verify_reproducible: %s\n", e.what());
    return 2;
  }
}
