// The registry of device backends and the operand check every op's dispatch line goes through.
#include "tensor/backend.h"

#include <atomic>

namespace medtl {
namespace {

std::atomic<DeviceBackend*> g_backends[2] = {};

const char* kNoCudaBuild =
    "this binary was built without the CUDA backend; rebuild with `bazel build --config=cuda ...` "
    "(needs CUDA 13 and cuDNN 9), or run on the CPU (--device=cpu)";

}  // namespace

DeviceBackend* register_device_backend(DeviceType type, DeviceBackend* backend) {
  return g_backends[static_cast<int>(type)].exchange(backend);
}

DeviceBackend* find_device_backend(DeviceType type) { return g_backends[static_cast<int>(type)].load(); }

DeviceBackend* backend_for(const char* op, std::initializer_list<const Tensor*> operands) {
  const Tensor* first_gpu = nullptr;
  const Tensor* first_cpu = nullptr;
  for (const Tensor* t : operands) {
    if (t == nullptr || !t->defined()) continue;
    if (t->device().is_cpu()) {
      if (first_cpu == nullptr) first_cpu = t;
    } else if (first_gpu == nullptr) {
      first_gpu = t;
    } else {
      MEDTL_CHECK(t->device() == first_gpu->device(), op, ": operands are on different devices, ",
                  first_gpu->str(), " and ", t->str(), "; move them to one with .to(device)");
    }
  }
  if (first_gpu == nullptr) return nullptr;
  MEDTL_CHECK(first_cpu == nullptr, op, ": operands are on different devices, ", first_cpu->str(), " and ",
              first_gpu->str(), "; move them to one with .to(device)");
  DeviceBackend* backend = find_device_backend(first_gpu->device().type);
  MEDTL_CHECK(backend != nullptr, op, ": ", first_gpu->str(), " is on a GPU, but ", kNoCudaBuild);
  return backend;
}

bool device_available(Device device, std::string* why_not) {
  if (device.is_cpu()) return true;
  std::string reason;
  DeviceBackend* backend = find_device_backend(device.type);
  if (backend == nullptr) {
    reason = kNoCudaBuild;
  } else {
    const int count = backend->device_count();
    if (count == 0) {
      reason = str_cat("no CUDA GPU can be used here: ", backend->unavailable_reason(),
                       "; run on the CPU (--device=cpu) or on a machine with an NVIDIA GPU and driver");
    } else if (device.index < 0 || device.index >= count) {
      reason = str_cat(device.str(), " does not exist: this machine has ", count, " GPU",
                       count == 1 ? "" : "s", " (cuda:0", count > 1 ? str_cat(" to cuda:", count - 1) : "", ")");
    }
  }
  if (why_not != nullptr) *why_not = reason;
  return reason.empty();
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda" || text == "gpu") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() <= 8 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos) {
    return Device::cuda(std::stoi(text.substr(5)));
  }
  MEDTL_CHECK(false, "unknown device '", text, "': use cpu, cuda or cuda:N (N = the GPU's index)");
  return Device::cpu();  // unreachable
}

}  // namespace medtl
