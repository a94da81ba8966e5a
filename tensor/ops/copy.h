// Copying between tensors of any layout and dtype: the kernel behind contiguous(), clone(), to().
#pragma once

#include "tensor/tensor.h"

namespace medtl::ops {

// dst[...] = src[...] converted to dst's dtype; src broadcasts to dst's shape. dst may be any
// strided view (writing through a view writes the viewed storage); dst must not overlap src.
// dst: (shape), src: (broadcastable to shape)
void copy_(const Tensor& dst, const Tensor& src);

// Sets every element of dst (any strides) to value.
void fill_(const Tensor& dst, double value);

}  // namespace medtl::ops
