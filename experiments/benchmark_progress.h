// Progress on stderr: a bar for the running job (epoch, batch, running loss) and an ETA for the
// whole grid, from the measured time of finished jobs of the same kind (pre-training, or the same
// target) and the running job's own pace. On a terminal the bar redraws in place; otherwise (logs,
// tests) only epoch summaries and job lines are printed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/train_common.h"

namespace medtl::experiments::bench {

class GridProgress {
 public:
  // `kinds`: one entry per job still to run, in run order (its ETA class: "stage" or a target name).
  explicit GridProgress(std::vector<std::string> kinds);

  void begin_job(const std::string& label);
  ProgressFn callback();  // for the engines; valid until end_job
  // `outcome`: "AUC 0.6512", "failed: ...". Prints the job line and moves on to the next kind.
  void end_job(const std::string& outcome);

  std::string eta() const;  // "ETA 7m12s" or "ETA ?" before anything can be estimated
  static std::string format_seconds(double seconds);

 private:
  void on_event(const ProgressEvent& e);
  void draw(const std::string& line, bool final);
  double estimate(const std::string& kind) const;  // seconds, < 0 if unknown

  std::vector<std::string> kinds_;
  size_t next_ = 0;                  // index of the running job in kinds_
  std::vector<std::pair<std::string, double>> done_;  // kind, seconds of finished jobs
  std::string label_;
  double job_start_ = 0.0, job_cpu_ = 0.0, grid_start_ = 0.0;
  double fraction_ = 0.0;            // of the running job, from its epochs (an upper bound: early stopping)
  bool tty_ = false;
  size_t last_width_ = 0;
};

}  // namespace medtl::experiments::bench
