// Which CUDA GPUs this process sees, and which CUDA libraries it runs on. Plain C++: no CUDA
// headers, so any target can include it. Defined only under --config=cuda (//tensor/cuda:cuda).
#pragma once

#include <cstdint>
#include <string>

namespace medtl::cuda {

// Number of CUDA GPUs visible to this process. 0, without throwing, when there is no GPU, no
// driver, or a driver too old for CUDA 13: no_device_reason() then says which.
int device_count();

// Why device_count() is 0, in the CUDA runtime's words plus what to check; "" when there are GPUs.
std::string no_device_reason();

// "NVIDIA H100 80GB HBM3". Throws medtl::Error when `index` is not in [0, device_count()).
std::string device_name(int index);

// Compute capability as major * 10 + minor: 90 for Hopper (H100, H200).
int compute_capability(int index);

// Versions of what is linked, as the libraries report them at run time.
int runtime_version();   // cudart: 1000 * major + 10 * minor, e.g. 13000
int driver_version();    // highest CUDA version the driver supports, same encoding; 0 with no driver
int cublas_version();    // 10000 * major + 100 * minor + patch, e.g. 130100 (as CUBLAS_VERSION)
int64_t cudnn_version(); // cudnnGetVersion(): 10000 * major + 100 * minor + patch, e.g. 91400

// One line for logs: "cudart 13.0, driver 13.0, cuBLAS 13.1.0, cuDNN 9.14.0, 1 GPU: NVIDIA H100 ...".
std::string version_summary();

}  // namespace medtl::cuda
