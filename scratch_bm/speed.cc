#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include "autograd/graph.h"
#include "models/resnet.h"
#include "models/unet.h"
#include "nn/loss.h"
#include "nn/seg_loss.h"
#include "nn/optim.h"
#include "tensor/determinism.h"
#include "tensor/parallel.h"
using namespace medtl;
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main(int argc, char** argv) {
  std::string model = argv[1]; int size = atoi(argv[2]); int batch = atoi(argv[3]); int det = atoi(argv[4]); int chunk = atoi(argv[5]); int iters = atoi(argv[6]);
  set_num_threads(2); set_deterministic(det); set_deterministic_conv_chunk(chunk);
  Generator gen(1);
  std::shared_ptr<nn::Module> m;
  if (model == "resnet") m = std::make_shared<models::ResNet50>(models::ResNetVariant::Keras, 1, gen);
  else m = std::make_shared<models::UNetResNet50>(models::ResNetVariant::Keras, 1, gen);
  nn::Adam opt(m->parameters(), 1e-3);
  Tensor x = normal({batch, 3, size, size}, gen);
  for (int it = 0; it < iters; ++it) {
    double t0 = now();
    m->train();
    Tensor out = m->forward(x);
    double t1 = now();
    Tensor y = zeros(out.shape());
    Tensor loss = model == "resnet" ? nn::binary_cross_entropy_with_logits(out, y) : nn::dice_loss_with_logits(out, y);
    ag::backward(loss);
    double t2 = now();
    opt.step(); opt.zero_grad();
    double t3 = now();
    Tensor e;
    { ag::NoGradGuard g; m->eval(); e = m->forward(x); }
    double t4 = now();
    std::printf("%s %d b%d det%d chunk%d: fwd %.3f bwd %.3f opt %.3f | train %.1f img/s | eval %.1f img/s\n", model.c_str(), size, batch, det, chunk, t1-t0, t2-t1, t3-t2, batch/(t3-t0), batch/(t4-t3));
  }
}
