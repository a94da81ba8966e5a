// The per-job progress bar and the grid's ETA, on stderr.
#include "experiments/benchmark_progress.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "experiments/report.h"
#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

// CPU seconds of the whole process (all threads): with wall time it shows whether the job had the
// cores to itself (cpu/wall near the thread count) or shared them.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

GridProgress::GridProgress(std::vector<std::string> kinds)
    : kinds_(std::move(kinds)), grid_start_(now_seconds()), tty_(::isatty(STDERR_FILENO) != 0) {}

std::string GridProgress::format_seconds(double s) {
  if (!(s >= 0)) return "?";
  const int64_t t = static_cast<int64_t>(std::llround(s));
  if (t >= 3600) return str_cat(t / 3600, "h", (t % 3600) / 60 < 10 ? "0" : "", (t % 3600) / 60, "m");
  if (t >= 60) return str_cat(t / 60, "m", t % 60 < 10 ? "0" : "", t % 60, "s");
  return str_cat(t, "s");
}

double GridProgress::estimate(const std::string& kind) const {
  double sum = 0.0, all = 0.0;
  int n = 0, n_all = 0;
  for (const auto& [k, s] : done_) {
    all += s, ++n_all;
    if (k == kind) sum += s, ++n;
  }
  if (n > 0) return sum / n;
  if (next_ < kinds_.size() && kinds_[next_] == kind && fraction_ > 0.02)  // the running job's own pace
    return (now_seconds() - job_start_) / fraction_;
  return n_all > 0 ? all / n_all : -1.0;
}

std::string GridProgress::eta() const {
  double total = 0.0;
  for (size_t i = next_; i < kinds_.size(); ++i) {
    double e = estimate(kinds_[i]);
    if (e < 0) return "ETA ?";
    if (i == next_) e = std::max(0.0, e - (now_seconds() - job_start_));
    total += e;
  }
  return "ETA " + format_seconds(total);
}

void GridProgress::draw(const std::string& line, bool final) {
  if (tty_) {
    std::string padded = line;
    if (padded.size() < last_width_) padded += std::string(last_width_ - padded.size(), ' ');
    std::cerr << "\r" << padded << (final ? "\n" : "") << std::flush;
    last_width_ = final ? 0 : line.size();
  } else if (final) {
    std::cerr << line << "\n" << std::flush;
  }
}

void GridProgress::begin_job(const std::string& label) {
  label_ = label;
  job_start_ = now_seconds();
  job_cpu_ = cpu_seconds();
  fraction_ = 0.0;
  draw(str_cat("[", next_ + 1, "/", kinds_.size(), "] ", label_, " | ", eta()), !tty_);
}

ProgressFn GridProgress::callback() {
  return [this](const ProgressEvent& e) { on_event(e); };
}

void GridProgress::on_event(const ProgressEvent& e) {
  const std::string head = str_cat("[", next_ + 1, "/", kinds_.size(), "] ", label_);
  if (e.kind == ProgressEvent::Kind::Phase) {
    draw(str_cat(head, " | ", e.phase, " | ", eta()), !tty_ || e.phase.rfind("resumed", 0) == 0);
    return;
  }
  if (e.kind == ProgressEvent::Kind::Batch) {
    fraction_ = (static_cast<double>(e.epoch) + static_cast<double>(e.batch) / std::max<int64_t>(1, e.batches)) /
                static_cast<double>(std::max<int64_t>(1, e.max_epochs));
    const int width = 20;
    const int filled = static_cast<int>(width * e.batch / std::max<int64_t>(1, e.batches));
    draw(str_cat(head, " | epoch ", e.epoch + 1, "/", e.max_epochs, " [", std::string(filled, '#'),
                 std::string(width - filled, '.'), "] ", e.batch, "/", e.batches, " loss ", fixed(e.loss, 4), " | ",
                 eta()),
         false);
    return;
  }
  fraction_ = static_cast<double>(e.epoch + 1) / static_cast<double>(std::max<int64_t>(1, e.max_epochs));
  draw(str_cat(head, " | epoch ", e.epoch + 1, "/", e.max_epochs, ": train ", fixed(e.loss, 4), " val ",
               fixed(e.val_loss, 4), " lr ", report::format_double(e.lr), e.improved ? " (best)" : "", " | ", eta()),
       true);
}

void GridProgress::end_job(const std::string& outcome) {
  const double seconds = now_seconds() - job_start_;
  const double cpu = cpu_seconds() - job_cpu_;
  draw(str_cat("[", next_ + 1, "/", kinds_.size(), "] ", label_, ": ", outcome, " (", format_seconds(seconds),
               ", cpu/wall ", fixed(seconds > 0 ? cpu / seconds : 0.0, 2), ")"),
       true);
  if (next_ < kinds_.size()) done_.emplace_back(kinds_[next_], seconds);
  ++next_;
  fraction_ = 0.0;
  job_start_ = now_seconds();
}

}  // namespace medtl::experiments::bench
