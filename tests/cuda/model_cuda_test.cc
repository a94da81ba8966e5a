// Whole models on the GPU through the device dispatch (tensor/backend.h): ResNet-50 and the U-Net
// forward and backward against the CPU (normwise 1e-4), and training steps that repeat bit for bit.
// Skips, saying why, without --config=cuda or without a GPU. The same steps on a host stand-in
// GPU run everywhere in tests/device_dispatch_test.cc.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/graph.h"
#include "models/resnet.h"
#include "models/unet.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/seg_loss.h"
#include "tensor/backend.h"
#include "tensor/cuda/device_info.h"
#include "tensor/determinism.h"
#include "tensor/ops/elementwise.h"
#include "tests/cuda/cuda_test_util.h"

namespace medtl {
namespace {

using cuda_test::bit_identical;
using cuda_test::close_to;

#ifndef MEDTL_WITH_CUDA

TEST(ModelCuda, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

const Device kGpu = Device::cuda(0);

// Forward, loss and backward of a model built on the CPU and of an identical one moved to the
// GPU; every gradient and the logits within `tol` (normwise) of the CPU's.
template <typename Model, typename Loss>
void expect_forward_backward_close(Model& cpu_model, Model& gpu_model, const Tensor& x, const Tensor& target,
                                   Loss loss_fn, double tol) {
  gpu_model.to(kGpu);
  const Tensor cpu_logits = cpu_model(x);
  const Tensor gpu_logits = gpu_model(x.to(kGpu));
  EXPECT_EQ(gpu_logits.device(), kGpu);
  EXPECT_TRUE(close_to(gpu_logits.to(Device::cpu()), cpu_logits, tol)) << "logits";
  const Tensor cpu_loss = loss_fn(cpu_logits, target);
  const Tensor gpu_loss = loss_fn(gpu_logits, target.to(kGpu));
  EXPECT_TRUE(close_to(gpu_loss.to(Device::cpu()), cpu_loss, tol)) << "loss";
  ag::backward(cpu_loss);
  ag::backward(gpu_loss);
  const nn::NamedTensors cpu_params = cpu_model.named_parameters(), gpu_params = gpu_model.named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const Tensor want = ag::grad(cpu_params[i].second), got = ag::grad(gpu_params[i].second);
    ASSERT_TRUE(want.defined() && got.defined()) << cpu_params[i].first;
    EXPECT_TRUE(close_to(got.to(Device::cpu()), want, tol)) << "gradient of " << cpu_params[i].first;
  }
}

Tensor bce(const Tensor& logits, const Tensor& y) { return nn::binary_cross_entropy_with_logits(logits, y); }
Tensor bce_dice(const Tensor& logits, const Tensor& y) { return nn::bce_dice_loss_with_logits(logits, y); }

TEST(ModelCuda, ResNet50ForwardBackwardMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  Generator gen_a(1), gen_b(1), data(2);
  models::ResNet50 cpu_model(models::ResNetVariant::Torchvision, 14, gen_a);
  models::ResNet50 gpu_model(models::ResNetVariant::Torchvision, 14, gen_b);
  const Tensor x = normal({4, 3, 96, 96}, data);
  const Tensor y = ops::gt(uniform({4, 14}, data), 0.5).to(DType::Float32);
  expect_forward_backward_close(cpu_model, gpu_model, x, y, bce, 1e-4);
}

TEST(ModelCuda, UNetForwardBackwardMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  Generator gen_a(3), gen_b(3), data(4);
  models::UNetResNet50 cpu_model(models::ResNetVariant::Torchvision, 1, gen_a);
  models::UNetResNet50 gpu_model(models::ResNetVariant::Torchvision, 1, gen_b);
  const Tensor x = normal({2, 3, 64, 64}, data);
  const Tensor y = ops::gt(uniform({2, 1, 64, 64}, data), 0.7).to(DType::Float32);
  expect_forward_backward_close(cpu_model, gpu_model, x, y, bce_dice, 1e-4);
}

// Three Adam steps of ResNet-50 on the GPU from a fresh model: the losses and the final weights
// as raw bits, to compare two runs.
struct Trajectory {
  std::vector<Tensor> losses;
  nn::NamedTensors state;
};

Trajectory train_resnet50_on_gpu(int64_t batch, int64_t size) {
  Generator gen(7), data(8);
  models::ResNet50 model(models::ResNetVariant::Torchvision, 14, gen);
  model.to(kGpu);
  nn::Adam adam(model.trainable_parameters(), 1e-3);
  Trajectory t;
  for (int step = 0; step < 3; ++step) {
    const Tensor x = normal({batch, 3, size, size}, data).to(kGpu);
    const Tensor y = ops::gt(uniform({batch, 14}, data), 0.5).to(DType::Float32).to(kGpu);
    const Tensor loss = bce(model(x), y);
    ag::backward(loss);
    adam.step();
    adam.zero_grad();
    t.losses.push_back(loss.to(Device::cpu()));
  }
  for (const auto& [name, tensor] : model.state_dict()) t.state.emplace_back(name, tensor.to(Device::cpu()));
  return t;
}

TEST(ModelCuda, TrainingIsBitReproducibleInDeterministicMode) {
  SKIP_WITHOUT_GPU();
  ASSERT_TRUE(deterministic());
  const Trajectory a = train_resnet50_on_gpu(8, 64), b = train_resnet50_on_gpu(8, 64);
  for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_TRUE(bit_identical(a.losses[i], b.losses[i])) << "loss " << i;
  ASSERT_EQ(a.state.size(), b.state.size());
  for (size_t i = 0; i < a.state.size(); ++i)
    EXPECT_TRUE(bit_identical(a.state[i].second, b.state[i].second)) << a.state[i].first;
  std::printf("GPU training losses: %.9g %.9g %.9g\n", a.losses[0].item(), a.losses[1].item(), a.losses[2].item());
}

// One training step of ResNet-50 at a small size: what tools/gpu/run.sh hands compute-sanitizer
// (memcheck, racecheck), which runs every kernel of a step under its checks.
TEST(ModelCuda, OneTrainingStepForTheSanitizers) {
  SKIP_WITHOUT_GPU();
  const Trajectory t = train_resnet50_on_gpu(2, 32);
  EXPECT_EQ(t.losses.size(), 3u);
}

// Runs with or without a GPU: the backend registered itself before main() (the archive is linked
// whole), and without a GPU asking for one is an error that says why.
TEST(ModelCuda, TheBackendIsRegisteredAndReportsTheDevice) {
  DeviceBackend* backend = find_device_backend(DeviceType::CUDA);
  ASSERT_NE(backend, nullptr) << "the CUDA backend did not register itself (cuda_library alwayslink?)";
  std::string why_not;
  if (cuda::device_count() == 0) {
    EXPECT_FALSE(device_available(kGpu, &why_not));
    EXPECT_NE(why_not.find("no CUDA GPU can be used here"), std::string::npos) << why_not;
    EXPECT_THROW(ones({2}).to(kGpu), Error);  // the allocator's error (cudaMalloc's reason), not a crash
    return;
  }
  EXPECT_TRUE(device_available(kGpu, &why_not)) << why_not;
  std::printf("%s\n", backend->describe(0).c_str());
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
