// The compute cores of one instruction-set level as a table of entry points.
//
// The core sources (conv2d_backprop_filter_cpu.cc, depthwise_*_cpu.cc and
// cpu_level.cc) are compiled once per level, each time with that level's
// -march flags and -DTF_CONVGRAD_ISA_NS=<level>, which puts everything they
// define in namespace tf_convgrad::<level>. Each level's objects are then
// linked into one relocatable object (ld -r --force-group-allocation) whose
// symbols are all made local except tf_convgrad_cpu_kernels_<level>
// (objcopy --keep-global-symbol): the inline functions and templates of Eigen
// and the standard library that a level instantiates with its instructions
// can then never be merged with another level's copy by the linker.
// cpu_dispatch.cc, compiled without special flags, picks one table per process.
#ifndef TF_OPS_CC_KERNELS_CPU_CPU_KERNELS_H_
#define TF_OPS_CC_KERNELS_CPU_CPU_KERNELS_H_

#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"

namespace Eigen {
struct half;
struct bfloat16;
}  // namespace Eigen

namespace tf_convgrad {

// The three cores for one element type.
template <typename T>
struct CoreFns {
  using Fn = bool (*)(const ConvGeometry&, const T*, const T*, T*, const ParallelFor&);
  Fn conv2d_backprop_filter;
  Fn depthwise_backprop_filter;
  Fn depthwise_backprop_input;
};

struct CpuKernels {
  const char* level;  // the namespace the level was compiled in
  CoreFns<Eigen::half> half;
  CoreFns<Eigen::bfloat16> bfloat16;
  CoreFns<float> f32;
  CoreFns<double> f64;

  template <typename T>
  const CoreFns<T>& For() const;
};
template <>
inline const CoreFns<Eigen::half>& CpuKernels::For<Eigen::half>() const {
  return half;
}
template <>
inline const CoreFns<Eigen::bfloat16>& CpuKernels::For<Eigen::bfloat16>() const {
  return bfloat16;
}
template <>
inline const CoreFns<float>& CpuKernels::For<float>() const {
  return f32;
}
template <>
inline const CoreFns<double>& CpuKernels::For<double>() const {
  return f64;
}

}  // namespace tf_convgrad

// The one global symbol of a level: its table (hidden: not exported from the
// op library).
#define TF_CONVGRAD_KERNELS_HIDDEN __attribute__((visibility("hidden")))
#define TF_CONVGRAD_KERNELS_FN_(level) tf_convgrad_cpu_kernels_##level
#define TF_CONVGRAD_KERNELS_FN(level) TF_CONVGRAD_KERNELS_FN_(level)

#ifdef TF_CONVGRAD_ISA_NS
// In the level's own sources: its cores (defined in the *_cpu.cc files).
namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

template <typename T>
bool Conv2DBackpropFilterCpu(const ConvGeometry& g, const T* input, const T* out_backprop,
                             T* filter_backprop, const ParallelFor& parallel_for);
template <typename T>
bool DepthwiseBackpropFilterCpu(const ConvGeometry& g, const T* input, const T* out_backprop,
                                T* filter_backprop, const ParallelFor& parallel_for);
template <typename T>
bool DepthwiseBackpropInputCpu(const ConvGeometry& g, const T* filter, const T* out_backprop,
                               T* input_backprop, const ParallelFor& parallel_for);

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad

extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels* TF_CONVGRAD_KERNELS_FN(
    TF_CONVGRAD_ISA_NS)();
#endif  // TF_CONVGRAD_ISA_NS

#endif  // TF_OPS_CC_KERNELS_CPU_CPU_KERNELS_H_
