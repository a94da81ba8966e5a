// The device dispatch layer, on a host stand-in GPU: every op of a ResNet-50 and a U-Net training
// step reaches the device backend, nothing reads device memory from the CPU, and the step gives
// the CPU's bits. The real CUDA kernels are tested on a GPU (tests/cuda/, tools/gpu/run.sh).
#include <gtest/gtest.h>

#include <memory>

#include "autograd/graph.h"
#include "autograd/norm_pool_ops.h"
#include "autograd/ops.h"
#include "models/resnet.h"
#include "models/unet.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/seg_loss.h"
#include "tensor/backend.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tests/host_device_backend.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using testing::HostDeviceBackend;
using testing::tensors_identical;

const Device kGpu = Device::cuda(0);

Tensor on_cpu(const Tensor& t) { return t.to(Device::cpu()); }

// Parameters and buffers of two models, bit for bit, after bringing b's back to the CPU.
void expect_same_state(const nn::Module& a, const nn::Module& b) {
  const nn::NamedTensors sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_TRUE(sa[i].second.device().is_cpu());
    EXPECT_TRUE(tensors_identical(sa[i].second, on_cpu(sb[i].second))) << sa[i].first;
  }
}

TEST(DeviceDispatch, AllCpuOperandsStayOnTheCpu) {
  const Tensor a = ones({2}), b = ones({2});
  EXPECT_EQ(backend_for("add", {&a, &b}), nullptr);
  EXPECT_EQ(backend_for("add", {&a, nullptr}), nullptr);
}

TEST(DeviceDispatch, WithoutABackendTheErrorSaysHowToBuildOne) {
  if (find_device_backend(DeviceType::CUDA) != nullptr) GTEST_SKIP() << "this build has the CUDA backend";
  EXPECT_ERROR_CONTAINS(empty({2}, DType::Float32, kGpu), "--config=cuda");
  std::string why;
  EXPECT_FALSE(device_available(kGpu, &why));
  EXPECT_NE(why.find("--config=cuda"), std::string::npos) << why;
  EXPECT_TRUE(device_available(Device::cpu()));
}

TEST(DeviceDispatch, ParsesDeviceNames) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  EXPECT_ERROR_CONTAINS(parse_device("gpu0"), "use cpu, cuda or cuda:N");
  EXPECT_ERROR_CONTAINS(parse_device("cuda:"), "use cpu, cuda or cuda:N");
}

TEST(DeviceDispatch, MixedDevicesAreAnErrorNamingBoth) {
  HostDeviceBackend gpu;
  const Tensor a = ones({2}), b = ones({2}).to(kGpu);
  EXPECT_ERROR_CONTAINS(ops::add(a, b), "different devices");
  EXPECT_ERROR_CONTAINS(ops::add(b, a), "cuda:0");
  EXPECT_TRUE(device_available(kGpu));
  std::string why;
  EXPECT_FALSE(device_available(Device::cuda(1), &why));
  EXPECT_NE(why.find("cuda:1 does not exist"), std::string::npos) << why;
}

TEST(DeviceDispatch, DeviceMemoryIsNotReadFromTheCpu) {
  HostDeviceBackend gpu;
  const Tensor t = arange(6, DType::Float32).to(kGpu);
  EXPECT_ERROR_CONTAINS(t.data<float>(), "not in CPU memory");
  EXPECT_ERROR_CONTAINS(t.raw_data(), "not in CPU memory");
  // The conveniences copy to the CPU first.
  EXPECT_EQ(t.at({4}), 4.0);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(ops::sum(t).item(), 15.0);
}

TEST(DeviceDispatch, CopiesBetweenDevicesKeepValuesViewsAndDtypes) {
  HostDeviceBackend gpu;
  Generator gen(7);
  const Tensor x = normal({3, 4, 5}, gen);
  const Tensor d = x.to(kGpu);
  EXPECT_EQ(d.device(), kGpu);
  EXPECT_TRUE(tensors_identical(on_cpu(d), x));
  // A strided view goes up and comes down with its values (not its strides).
  const Tensor view = x.permute({2, 0, 1}).narrow(1, 1, 2);
  EXPECT_TRUE(tensors_identical(on_cpu(view.to(kGpu)), view.contiguous()));
  // A device view comes down the same way, and a dtype change on the device matches the CPU's.
  EXPECT_TRUE(tensors_identical(on_cpu(d.transpose(0, 2)), x.transpose(0, 2).contiguous()));
  EXPECT_TRUE(tensors_identical(on_cpu(d.to(DType::Float64)), x.to(DType::Float64)));
  // Writing into a device view writes the device storage.
  const Tensor target = zeros({3, 4, 5}, DType::Float32, kGpu);
  ops::copy_(target.select(1, 2), x.select(1, 2));  // CPU source, device destination view
  EXPECT_TRUE(tensors_identical(on_cpu(target).select(1, 2), x.select(1, 2)));
  EXPECT_EQ(ops::sum(ops::abs(on_cpu(target).select(1, 0))).item(), 0.0);
}

TEST(DeviceDispatch, ModuleToMovesTheTensorsTheLayersHold) {
  HostDeviceBackend gpu;
  Generator gen(1);
  models::ResNet50 model(models::ResNetVariant::Torchvision, 3, gen);
  const Tensor w_before = model.state_dict()[0].second.clone();
  model.to(kGpu);
  EXPECT_EQ(model.device(), kGpu);
  for (const auto& [name, t] : model.state_dict()) EXPECT_EQ(t.device(), kGpu) << name;
  EXPECT_TRUE(tensors_identical(on_cpu(model.state_dict()[0].second), w_before));
  model.to(Device::cpu());
  EXPECT_TRUE(tensors_identical(model.state_dict()[0].second, w_before));
}

// One classification step (forward, BCE, backward, clip, Adam) on the CPU and on the stand-in.
TEST(DeviceDispatch, ResNet50TrainingStepGivesTheCpuBits) {
  HostDeviceBackend gpu;
  Generator gen_cpu(5), gen_gpu(5), data_gen(9);
  models::ResNet50 cpu_model(models::ResNetVariant::Torchvision, 4, gen_cpu);
  models::ResNet50 gpu_model(models::ResNetVariant::Torchvision, 4, gen_gpu);
  gpu_model.to(kGpu);
  const Tensor x = normal({2, 3, 64, 64}, data_gen);
  const Tensor y = ops::gt(uniform({2, 4}, data_gen), 0.5).to(DType::Float32);

  nn::Adam cpu_opt(cpu_model.trainable_parameters(), 1e-3, 0.9, 0.999, 1e-8, 1e-4);
  nn::Adam gpu_opt(gpu_model.trainable_parameters(), 1e-3, 0.9, 0.999, 1e-8, 1e-4);
  for (int step = 0; step < 2; ++step) {
    const Tensor cpu_loss = nn::binary_cross_entropy_with_logits(cpu_model(x), y);
    const Tensor gpu_loss = nn::binary_cross_entropy_with_logits(gpu_model(x.to(kGpu)), y.to(kGpu));
    EXPECT_EQ(gpu_loss.device(), kGpu);
    EXPECT_TRUE(tensors_identical(cpu_loss, on_cpu(gpu_loss))) << "step " << step;
    ag::backward(cpu_loss);
    ag::backward(gpu_loss);
    // The device sums the squares in its own fixed order: equal to rounding, not bit for bit.
    const double cpu_norm = nn::clip_grad_norm_(cpu_model.trainable_parameters(), 1e9);
    EXPECT_NEAR(nn::clip_grad_norm_(gpu_model.trainable_parameters(), 1e9), cpu_norm, 1e-12 * cpu_norm);
    cpu_opt.step();
    gpu_opt.step();
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
  }
  expect_same_state(cpu_model, gpu_model);  // weights, BN running stats, num_batches_tracked
  for (const char* entry : {"conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "batch_norm_forward",
                            "batch_norm_backward", "max_pool2d_forward", "max_pool2d_backward", "matmul", "adam_step_"})
    EXPECT_GT(gpu.calls().count(entry), 0u) << entry << " never reached the device backend";

  // Evaluation mode (running statistics) and the cross-entropy loss, too.
  cpu_model.eval();
  gpu_model.eval();
  ag::NoGradGuard no_grad;
  const Tensor targets = from_vector<int64_t>({1, 3}, {2});
  EXPECT_TRUE(tensors_identical(nn::cross_entropy(cpu_model(x), targets),
                                on_cpu(nn::cross_entropy(gpu_model(x.to(kGpu)), targets.to(kGpu)))));
}

// One segmentation step (U-Net: upsampling, concatenation, BCE + Dice) with SGD and momentum.
TEST(DeviceDispatch, UNetTrainingStepGivesTheCpuBits) {
  HostDeviceBackend gpu;
  Generator gen_cpu(3), gen_gpu(3), data_gen(4);
  models::UNetResNet50 cpu_model(models::ResNetVariant::Torchvision, 1, gen_cpu);
  models::UNetResNet50 gpu_model(models::ResNetVariant::Torchvision, 1, gen_gpu);
  gpu_model.to(kGpu);
  const Tensor x = normal({1, 3, 64, 64}, data_gen);
  const Tensor mask = ops::gt(uniform({1, 1, 64, 64}, data_gen), 0.7).to(DType::Float32);
  nn::SGD cpu_opt(cpu_model.trainable_parameters(), 0.01, 0.9, 0.0, 1e-4, true);
  nn::SGD gpu_opt(gpu_model.trainable_parameters(), 0.01, 0.9, 0.0, 1e-4, true);
  for (int step = 0; step < 2; ++step) {
    const Tensor cpu_loss = nn::bce_dice_loss_with_logits(cpu_model(x), mask);
    const Tensor gpu_loss = nn::bce_dice_loss_with_logits(gpu_model(x.to(kGpu)), mask.to(kGpu));
    EXPECT_TRUE(tensors_identical(cpu_loss, on_cpu(gpu_loss))) << "step " << step;
    ag::backward(cpu_loss);
    ag::backward(gpu_loss);
    cpu_opt.step();
    gpu_opt.step();
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
  }
  expect_same_state(cpu_model, gpu_model);
  for (const char* entry : {"upsample_nearest2x", "upsample_nearest2x_backward", "sgd_step_", "copy_"})
    EXPECT_GT(gpu.calls().count(entry), 0u) << entry << " never reached the device backend";
}

TEST(DeviceDispatch, DropoutOnTheDeviceDropsTheSameElements) {
  HostDeviceBackend gpu;
  Generator gen(2);
  const Tensor x = ag::requires_grad_leaf(normal({4, 100}, gen));
  const Tensor xd = ag::requires_grad_leaf(x.to(kGpu));
  const Tensor y = ag::dropout(x, 0.3, true, 11, 5);
  const Tensor yd = ag::dropout(xd, 0.3, true, 11, 5);
  EXPECT_TRUE(tensors_identical(y, on_cpu(yd)));
  ag::backward(ag::sum(ag::mul(y, x)));
  ag::backward(ag::sum(ag::mul(yd, xd)));
  EXPECT_TRUE(tensors_identical(ag::grad(x), on_cpu(ag::grad(xd))));
}

}  // namespace
}  // namespace medtl
