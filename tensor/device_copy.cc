// Copies between the CPU and a GPU (or two GPUs): the part of ops::copy_ that crosses devices.
//
// The bytes cross through DeviceBackend::copy_bytes, which moves contiguous blocks only. So the
// dtype conversion, broadcasting and any strides are handled on one side: on the CPU into a
// contiguous staging tensor before an upload, on the GPU into a contiguous tensor before a
// download. A copy between two GPUs goes through the CPU (simple, and rare here).
#include "tensor/device_copy.h"

#include "tensor/backend.h"
#include "tensor/ops/copy.h"

namespace medtl {

void copy_across_devices(const Tensor& dst, const Tensor& src) {
  const Device to = dst.device(), from = src.device();
  if (!from.is_cpu() && !to.is_cpu()) {  // GPU -> GPU on another index: via the CPU
    copy_across_devices(dst, src.to(Device::cpu()));
    return;
  }
  if (to.is_cpu()) {  // download: make it contiguous where it lives, then one block
    DeviceBackend* gpu = backend_for("copy_", {&src});
    Tensor packed = src.is_contiguous() ? src : src.contiguous();
    Tensor host = empty(packed.shape(), packed.dtype());
    const int64_t nbytes = packed.numel() * dtype_size(packed.dtype());
    if (nbytes > 0) gpu->copy_bytes(host.raw_data(), to, packed.device_raw_data(), from, nbytes);
    ops::copy_(dst, host);  // the conversion and broadcast on the CPU
    return;
  }
  // upload: convert and broadcast on the CPU into a contiguous block of dst's dtype and shape
  DeviceBackend* gpu = backend_for("copy_", {&dst});
  Tensor host = empty(dst.shape(), dst.dtype());
  ops::copy_(host, src);
  Tensor staged = dst.is_contiguous() ? dst : empty(dst.shape(), dst.dtype(), to);
  const int64_t nbytes = host.numel() * dtype_size(host.dtype());
  if (nbytes > 0) gpu->copy_bytes(staged.device_raw_data(), to, host.raw_data(), from, nbytes);
  if (!staged.shares_storage_with(dst)) gpu->copy_(dst, staged);
}

}  // namespace medtl
