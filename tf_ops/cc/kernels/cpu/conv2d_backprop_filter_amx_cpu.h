// bfloat16 Conv2DBackpropFilter on AMX tiles (conv2d_backprop_filter_amx_cpu.cc), tried first by
// Conv2DBackpropFilterCpu<bfloat16>.
#ifndef TF_OPS_CC_KERNELS_CPU_CONV2D_BACKPROP_FILTER_AMX_CPU_H_
#define TF_OPS_CC_KERNELS_CPU_CONV2D_BACKPROP_FILTER_AMX_CPU_H_

#include "tf_ops/cc/kernels/cpu/cpu_common.h"

// Levels whose compiler flags include AVX512_BF16 (the avx512bf16 level; a -march=native build on
// such a CPU) carry the AMX core; it still runs only where cpuid and the kernel allow AMX.
#if defined(__x86_64__) && defined(__linux__) && defined(__AVX512BF16__) && defined(__AVX512BW__)
#define TF_CONVGRAD_AMX_BUILD 1
#else
#define TF_CONVGRAD_AMX_BUILD 0
#endif

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {
namespace internal {

enum class AmxRun {
  kDone,         // filter_backprop holds the result
  kNotUsed,      // not this geometry, CPU or data: run the general core
  kOutOfMemory,  // a scratch allocation failed
};

// True where this level carries the AMX core, cpuid reports AMX-TILE and AMX-BF16, the OS saves
// the tile state and Linux granted this process the tile data (asked once per process).
bool AmxBf16Usable();

// dW of an NHWC, ungrouped bfloat16 convolution with AMX bfloat16 tile products (exact
// products, float32 accumulation, the order fixed by the geometry). The inputs are checked as
// they are packed: kNotUsed where a value is not finite or a product could overflow float32;
// the general core then computes the result. P = batch * out_rows * out_cols must be > 0.
AmxRun Conv2DBackpropFilterAmx(const ConvGeometry& g, const Eigen::bfloat16* input,
                               const Eigen::bfloat16* out_backprop,
                               Eigen::bfloat16* filter_backprop, const ParallelFor& parallel_for);

}  // namespace internal
}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_CPU_CONV2D_BACKPROP_FILTER_AMX_CPU_H_
