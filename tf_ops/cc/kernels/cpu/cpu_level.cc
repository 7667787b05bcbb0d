// The table of one instruction-set level's cores (cpu_kernels.h), compiled
// with the level's flags and -DTF_CONVGRAD_ISA_NS=<level> like the cores.
#include "tf_ops/cc/kernels/cpu/conv2d_backprop_filter_amx_cpu.h"
#include "tf_ops/cc/kernels/cpu/cpu_kernels.h"

#ifndef TF_CONVGRAD_ISA_NS
#error "compile the CPU cores with -DTF_CONVGRAD_ISA_NS=<level> (see CMakeLists.txt)"
#endif

#define TF_CONVGRAD_STR_(x) #x
#define TF_CONVGRAD_STR(x) TF_CONVGRAD_STR_(x)

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {
namespace {

template <typename T>
constexpr CoreFns<T> Fns() {
#define TF_CONVGRAD_CORE_ADDRESS_(Name, short_name) &Name<T>,
  return {TF_CONVGRAD_CPU_CORES(TF_CONVGRAD_CORE_ADDRESS_)};
#undef TF_CONVGRAD_CORE_ADDRESS_
}

#define TF_CONVGRAD_CORE_FNS_VALUE_(T, unused) , Fns<T>()
constexpr CpuKernels kKernels = {
    {TF_CONVGRAD_STR(TF_CONVGRAD_ISA_NS) TF_CONVGRAD_TYPES(TF_CONVGRAD_CORE_FNS_VALUE_, )},
    &internal::AmxBf16Usable};
#undef TF_CONVGRAD_CORE_FNS_VALUE_

}  // namespace
}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad

extern "C" const tf_convgrad::CpuKernels* TF_CONVGRAD_KERNELS_FN(TF_CONVGRAD_ISA_NS)() {
  return &tf_convgrad::TF_CONVGRAD_ISA_NS::kKernels;
}
