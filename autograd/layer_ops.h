// All differentiable layer ops (the functional forms behind nn/ modules), in one include.
#pragma once

#include "autograd/conv_ops.h"
#include "autograd/norm_pool_ops.h"
