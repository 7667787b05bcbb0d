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

#include <tuple>

#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"

namespace Eigen {
struct half;
struct bfloat16;
}  // namespace Eigen

namespace tf_convgrad {

// The cores for one element type, one field per entry of TF_CONVGRAD_CPU_CORES.
template <typename T>
struct CoreFns {
  using Fn = bool (*)(const ConvGeometry&, const T*, const T*, T*, const ParallelFor&);
#define TF_CONVGRAD_CORE_FIELD_(Name, short_name) Fn short_name;
  TF_CONVGRAD_CPU_CORES(TF_CONVGRAD_CORE_FIELD_)
#undef TF_CONVGRAD_CORE_FIELD_
};

// One level's table: its name, then a CoreFns per type of TF_CONVGRAD_TYPES.
#define TF_CONVGRAD_CORE_FNS_TYPE_(T, unused) , CoreFns<T>
struct CpuKernels {
  std::tuple<const char* TF_CONVGRAD_TYPES(TF_CONVGRAD_CORE_FNS_TYPE_, )> table;
  // Whether bfloat16 Conv2DBackpropFilter runs on AMX tiles at this level on this CPU and OS
  // (conv2d_backprop_filter_amx_cpu.h); asks Linux for the tile state on first call.
  bool (*amx_bf16)();

  const char* level() const { return std::get<0>(table); }  // the namespace it was compiled in
  template <typename T>
  const CoreFns<T>& For() const {
    return std::get<CoreFns<T>>(table);
  }
};
#undef TF_CONVGRAD_CORE_FNS_TYPE_

}  // namespace tf_convgrad

// The one global symbol of a level: its table (hidden: not exported from the
// op library).
#define TF_CONVGRAD_KERNELS_HIDDEN __attribute__((visibility("hidden")))
#define TF_CONVGRAD_KERNELS_FN_(level) tf_convgrad_cpu_kernels_##level
#define TF_CONVGRAD_KERNELS_FN(level) TF_CONVGRAD_KERNELS_FN_(level)
#define TF_CONVGRAD_DECLARE_KERNELS_FN(level)                                                  \
  extern "C" TF_CONVGRAD_KERNELS_HIDDEN const tf_convgrad::CpuKernels* TF_CONVGRAD_KERNELS_FN( \
      level)();

#ifdef TF_CONVGRAD_ISA_NS
// In the level's own sources: its cores (defined in the *_cpu.cc files).
namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {
TF_CONVGRAD_CPU_CORES(TF_CONVGRAD_DECLARE_CPU_CORE)
}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad

TF_CONVGRAD_DECLARE_KERNELS_FN(TF_CONVGRAD_ISA_NS)
#endif  // TF_CONVGRAD_ISA_NS

#endif  // TF_OPS_CC_KERNELS_CPU_CPU_KERNELS_H_
