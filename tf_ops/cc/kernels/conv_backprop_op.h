// The one OpKernel of the three ops, for every device (TensorFlow's
// Op<Device, T> + functor shape): the Compute below is all the devices share
// (validation, allocation, empty problems, the poison switch), and
// ConvBackpropLauncher<Device, T> is all that differs. Each device's adapter
// (conv_backprop_ops.cc for the CPU, conv_backprop_ops_gpu.cc for the GPU)
// specialises the launcher and registers its kernels with
// TF_CONVGRAD_REGISTER_KERNELS.
#ifndef TF_OPS_CC_KERNELS_CONV_BACKPROP_OP_H_
#define TF_OPS_CC_KERNELS_CONV_BACKPROP_OP_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf_ops/cc/kernels/conv_backprop_common.h"
#include "tf_ops/cc/kernels/conv_geometry.h"

namespace tensorflow {
namespace convgrad {

// Device tags.
struct CPUDevice;
struct GPUDevice;

// What a device supplies (declared only: each adapter specialises it).
//   static absl::Status Available(const ConvBackpropAttrs&);
//       Whether the device can run the ops at all; checked before anything else.
//   static absl::Status Fill(OpKernelContext*, const ConvBackpropAttrs&, T value, int64_t n,
//                            T* output);
//       Sets the n elements of output (device memory) to value.
//   static absl::Status Run(OpKernelContext*, const ConvBackpropAttrs&,
//                           const tf_convgrad::ConvGeometry&, const T* first,
//                           const T* out_backprop, T* output);
//       Computes the op into output; some product contributes to it.
template <typename Device, typename T>
struct ConvBackpropLauncher;

// Debug switch TF_CONVGRAD_POISON_OUTPUTS, read once per process: "1" fills
// every freshly allocated output with a NaN pattern before the computation, so
// an element the computation forgets to write shows up as NaN. "selftest" also
// skips the computation, so that the test of the switch can prove the poison
// reaches Python. Unset or anything else: off.
enum class PoisonMode { kOff, kPoison, kSelfTest };

inline PoisonMode GetPoisonMode() {
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
T PoisonValue() {
  static_assert(sizeof(PoisonBits<T>::kValue) == sizeof(T), "poison pattern size");
  T value;
  // Through void*: Eigen::half and bfloat16 are trivially copyable in fact, not in the type system.
  std::memcpy(static_cast<void*>(&value), &PoisonBits<T>::kValue, sizeof(T));
  return value;
}

template <typename Device, typename T, OpKind kKind>
class ConvBackpropOp : public OpKernel {
 public:
  using Launcher = ConvBackpropLauncher<Device, T>;

  explicit ConvBackpropOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ParseConvBackpropAttrs(ctx, kKind, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    OP_REQUIRES_OK(ctx, Launcher::Available(attrs_));
    PreparedConvBackprop p;  // on the GPU the sizes input lives in host memory
    OP_REQUIRES_OK(ctx, PrepareConvBackprop(ctx, attrs_, sizeof(T), &p));
    const int64_t n = p.output->NumElements();
    if (n == 0) return;
    T* out = p.output->flat<T>().data();
    if (GetPoisonMode() != PoisonMode::kOff) {
      OP_REQUIRES_OK(ctx, Launcher::Fill(ctx, attrs_, PoisonValue<T>(), n, out));
      if (GetPoisonMode() == PoisonMode::kSelfTest) return;
    }
    if (p.out_backprop->NumElements() == 0 || p.data->NumElements() == 0) {
      // Nothing contributes: the gradient is exactly zero.
      OP_REQUIRES_OK(ctx, Launcher::Fill(ctx, attrs_, T(0), n, out));
      return;
    }
    OP_REQUIRES_OK(ctx, Launcher::Run(ctx, attrs_, p.geometry, p.data->flat<T>().data(),
                                      p.out_backprop->flat<T>().data(), out));
  }

 private:
  ConvBackpropAttrs attrs_;
};

// Registers the kernels of every op (TF_CONVGRAD_OPS) and element type
// (TF_CONVGRAD_TYPES) for DEVICE (CPU or GPU). On the GPU the sizes input
// lives in host memory.
#define TF_CONVGRAD_HOST_MEMORY_CPU(sizes)
#define TF_CONVGRAD_HOST_MEMORY_GPU(sizes) .HostMemory(sizes)
#define TF_CONVGRAD_REGISTER_KERNEL_(kind, name, sizes, T, DEVICE)                             \
  REGISTER_KERNEL_BUILDER(Name(name)                                                           \
                              .Device(DEVICE_##DEVICE)                                         \
                              .TypeConstraint<T>("T") TF_CONVGRAD_HOST_MEMORY_##DEVICE(sizes), \
                          ConvBackpropOp<DEVICE##Device, T, OpKind::kind>);
#define TF_CONVGRAD_REGISTER_TYPE_(T, DEVICE) \
  TF_CONVGRAD_OPS(TF_CONVGRAD_REGISTER_KERNEL_, T, DEVICE)
#define TF_CONVGRAD_REGISTER_KERNELS(DEVICE) TF_CONVGRAD_TYPES(TF_CONVGRAD_REGISTER_TYPE_, DEVICE)

}  // namespace convgrad
}  // namespace tensorflow

#endif  // TF_OPS_CC_KERNELS_CONV_BACKPROP_OP_H_
