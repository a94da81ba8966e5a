// ops::copy_ between devices (CPU <-> GPU, GPU <-> GPU): staging through contiguous blocks.
#pragma once

#include "tensor/tensor.h"

namespace medtl {

// dst[...] = src[...] converted to dst's dtype, src broadcasting to dst's shape, where dst and src
// are on different devices. dst: (shape), src: (broadcastable to shape).
void copy_across_devices(const Tensor& dst, const Tensor& src);

}  // namespace medtl
