// CPU OpKernels for the three ops: a thin adapter from TensorFlow tensors to
// the TF-free compute cores in cpu/. Validation lives in conv_backprop_common.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf_ops/cc/kernels/conv_backprop_common.h"
#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"

namespace tensorflow {
namespace convgrad {
namespace {

// Runs the cores' tasks on TF's intra-op thread pool, one task per block: the
// cores already size their tasks (a few dozen at most), and their results do
// not depend on which thread runs which task.
tf_convgrad::ParallelFor ThreadPoolFor(OpKernelContext* ctx) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return
      [workers](int64_t total, int64_t /*cost*/, const std::function<void(int64_t, int64_t)>& fn) {
        if (total <= 0) return;
        if (total == 1 || workers->NumThreads() <= 1) {
          fn(0, total);
          return;
        }
        workers->ParallelFor(total,
                             thread::ThreadPool::SchedulingParams(
                                 thread::ThreadPool::SchedulingStrategy::kFixedBlockSize,
                                 /*cost_per_unit=*/std::nullopt, /*block_size=*/1),
                             fn);
      };
}

// Debug switch TF_CONVGRAD_POISON_OUTPUTS, read once per process: "1" fills
// every freshly allocated output with a NaN pattern before the core runs, so
// an element the core forgets to write shows up as NaN (tests/test_poison.py).
// "selftest" also skips the computation, so that test can prove the poison
// reaches Python. Unset or anything else: off.
enum class PoisonMode { kOff, kPoison, kSelfTest };

PoisonMode GetPoisonMode() {
  static const PoisonMode mode = [] {
    const char* v = std::getenv("TF_CONVGRAD_POISON_OUTPUTS");
    if (v == nullptr) return PoisonMode::kOff;
    if (std::strcmp(v, "1") == 0) return PoisonMode::kPoison;
    if (std::strcmp(v, "selftest") == 0) return PoisonMode::kSelfTest;
    return PoisonMode::kOff;
  }();
  return mode;
}

// Signalling-NaN bit patterns (quiet bit clear, payload non-zero).
template <typename T>
struct PoisonBits;
template <>
struct PoisonBits<float> {
  static constexpr uint32_t kValue = 0x7FA5A5A5u;
};
template <>
struct PoisonBits<double> {
  static constexpr uint64_t kValue = 0x7FF4A5A5A5A5A5A5ull;
};
template <>
struct PoisonBits<Eigen::half> {
  static constexpr uint16_t kValue = 0x7D55u;
};
template <>
struct PoisonBits<bfloat16> {
  static constexpr uint16_t kValue = 0x7FA5u;
};

template <typename T>
void FillPoison(T* out, int64_t n) {
  static_assert(sizeof(PoisonBits<T>::kValue) == sizeof(T), "poison pattern size");
  T value;
  // Through void*: Eigen::half and bfloat16 are trivially copyable in fact, not in the type system.
  std::memcpy(static_cast<void*>(&value), &PoisonBits<T>::kValue, sizeof(T));
  std::fill(out, out + n, value);
}

template <typename T>
class ConvBackpropOp : public OpKernel {
 public:
  ConvBackpropOp(OpKernelConstruction* ctx, OpKind kind) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ParseConvBackpropAttrs(ctx, kind, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    // No instruction-set level for the cores (TF_CONVGRAD_ISA asks for one this
    // CPU lacks, or is misspelt): fail rather than run anything.
    const char* isa_error = tf_convgrad::CpuIsaError();
    OP_REQUIRES(ctx, isa_error == nullptr, errors::InvalidArgument(attrs_.label, ": ", isa_error));
    PreparedConvBackprop p;
    OP_REQUIRES_OK(ctx, PrepareConvBackprop(ctx, attrs_, sizeof(T), &p));
    Tensor* output = p.output;
    const Tensor& data = *p.data;
    const Tensor& out_backprop = *p.out_backprop;
    const tf_convgrad::ConvGeometry& geometry = p.geometry;
    if (output->NumElements() == 0) return;
    T* out = output->flat<T>().data();
    if (GetPoisonMode() != PoisonMode::kOff) {
      FillPoison(out, output->NumElements());
      if (GetPoisonMode() == PoisonMode::kSelfTest) return;
    }
    if (out_backprop.NumElements() == 0 || data.NumElements() == 0) {
      // Nothing contributes: the gradient is exactly zero.
      std::fill(out, out + output->NumElements(), T(0));
      return;
    }
    const T* dy = out_backprop.flat<T>().data();
    const T* src = data.flat<T>().data();
    const tf_convgrad::ParallelFor parallel_for = ThreadPoolFor(ctx);
    bool ok = false;
    switch (attrs_.kind) {
      case OpKind::kConv2DBackpropFilter:
        ok = tf_convgrad::Conv2DBackpropFilterCpu<T>(geometry, src, dy, out, parallel_for);
        break;
      case OpKind::kDepthwiseBackpropFilter:
        ok = tf_convgrad::DepthwiseBackpropFilterCpu<T>(geometry, src, dy, out, parallel_for);
        break;
      case OpKind::kDepthwiseBackpropInput:
        ok = tf_convgrad::DepthwiseBackpropInputCpu<T>(geometry, src, dy, out, parallel_for);
        break;
    }
    OP_REQUIRES(ctx, ok,
                errors::ResourceExhausted(attrs_.label, ": could not allocate CPU scratch memory"));
  }

 private:
  ConvBackpropAttrs attrs_;
};

template <typename T, OpKind kKind>
class ConvBackpropOpFor : public ConvBackpropOp<T> {
 public:
  explicit ConvBackpropOpFor(OpKernelConstruction* ctx) : ConvBackpropOp<T>(ctx, kKind) {}
};

#define TF_CONVGRAD_REGISTER_CPU(T)                                                    \
  REGISTER_KERNEL_BUILDER(                                                             \
      Name("ConvGrad>Conv2DBackpropFilter").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
      ConvBackpropOpFor<T, OpKind::kConv2DBackpropFilter>);                            \
  REGISTER_KERNEL_BUILDER(Name("ConvGrad>DepthwiseConv2dNativeBackpropFilter")         \
                              .Device(DEVICE_CPU)                                      \
                              .TypeConstraint<T>("T"),                                 \
                          ConvBackpropOpFor<T, OpKind::kDepthwiseBackpropFilter>);     \
  REGISTER_KERNEL_BUILDER(Name("ConvGrad>DepthwiseConv2dNativeBackpropInput")          \
                              .Device(DEVICE_CPU)                                      \
                              .TypeConstraint<T>("T"),                                 \
                          ConvBackpropOpFor<T, OpKind::kDepthwiseBackpropInput>);

TF_CONVGRAD_REGISTER_CPU(Eigen::half);
TF_CONVGRAD_REGISTER_CPU(bfloat16);
TF_CONVGRAD_REGISTER_CPU(float);
TF_CONVGRAD_REGISTER_CPU(double);
#undef TF_CONVGRAD_REGISTER_CPU

}  // namespace
}  // namespace convgrad
}  // namespace tensorflow
