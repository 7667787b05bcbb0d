// TF-free CPU compute cores for the three convolution-gradient ops.
//
// These functions see only raw pointers, a validated ConvGeometry and a
// parallel-for callback, so they build without TensorFlow headers (the TF
// adapter lives in ../conv_backprop_ops.cc). The cores are compiled once per
// instruction-set level (cpu_kernels.h); the functions declared here forward
// to the level chosen once per process from cpuid (cpu_dispatch.cc).
//
// Math (NHWC indices; NCHW tensors hold the same values with permuted axes;
// filters are HWIO). The forward convolution reads input row
//   h = ho * stride_rows - pad_top + i * dilation_rows
// and column
//   w = wo * stride_cols - pad_left + j * dilation_cols,
// positions outside the input contributing zero. Then
//   Conv2DBackpropFilter (G = groups, Cf = in_depth / G, g = co / (Cout / G)):
//     dW[i, j, ci, co] = sum_{b, ho, wo} x[b, h, w, g * Cf + ci] * dy[b, ho, wo, co]
//   DepthwiseConv2dNativeBackpropFilter (q = c * M + m):
//     dW[i, j, c, m] = sum_{b, ho, wo} x[b, h, w, c] * dy[b, ho, wo, q]
//   DepthwiseConv2dNativeBackpropInput:
//     dx[b, h, w, c] = sum_{i, j, m, ho, wo : h, w as above} f[i, j, c, m] * dy[b, ho, wo, q]
// EX: 5x5 input, 3x3 filter, stride 2, SAME: out 3x3, pad_top = pad_left = 1,
//     so dy[., 0, 0, .] pairs with input rows/cols -1..1 (row/col -1 is zero).
//
// Contract shared by all cores:
// * half and bfloat16 are accumulated in float, float in float, double in
//   double; the result is rounded to T once.
// * The summation order depends only on the geometry, never on the number of
//   threads, so results are bitwise reproducible.
// * Every output element is written (zeros where nothing contributes).
// * Scratch memory is bounded (see each core); the cores return false only if
//   a scratch allocation fails.
#ifndef TF_OPS_CC_KERNELS_CPU_CONV_BACKPROP_CPU_H_
#define TF_OPS_CC_KERNELS_CPU_CONV_BACKPROP_CPU_H_

#include <cstdint>
#include <functional>

#include "tf_ops/cc/kernels/conv_geometry.h"

namespace tf_convgrad {

// Runs fn(begin, end) over disjoint ranges covering [0, total), possibly in
// parallel. cost_per_unit is a rough cycle count used for sharding.
using ParallelFor = std::function<void(int64_t total, int64_t cost_per_unit,
                                       const std::function<void(int64_t, int64_t)>& fn)>;

// The instruction-set level the cores run at, chosen on first use (once per
// process) from cpuid, or forced with TF_CONVGRAD_ISA=avx512bf16|avx512|avx2|
// baseline. CpuIsaError() is nullptr when a level was chosen, else the reason
// none was (TF_CONVGRAD_ISA names a level this CPU or build lacks, or no
// level); callers check it before calling the cores below, which abort
// otherwise. CpuIsaLevel() is the level's name ("" on error).
const char* CpuIsaError();
const char* CpuIsaLevel();

// Runs everything on the calling thread.
void SerialFor(int64_t total, int64_t cost_per_unit,
               const std::function<void(int64_t, int64_t)>& fn);

// The cores, one X(EntryPoint, short name) each: the one list that declares,
// instantiates, tabulates (cpu_kernels.h, cpu_level.cc) and forwards
// (cpu_dispatch.cc) them. Every core has the signature
//   bool EntryPoint<T>(const ConvGeometry& g, const T* first, const T* out_backprop,
//                      T* output, const ParallelFor& parallel_for);
// `first` is the forward input x (cbf, dbf) or the filter (dbi); `output` is
//   cbf: dW, HWIO [filter_rows, filter_cols, in_depth / groups, out_depth]
//   dbf: dW [filter_rows, filter_cols, in_depth, depth_multiplier]
//   dbi: dx, input-shaped, in the geometry's data format.
#define TF_CONVGRAD_CPU_CORES(X)     \
  X(Conv2DBackpropFilterCpu, cbf)    \
  X(DepthwiseBackpropFilterCpu, dbf) \
  X(DepthwiseBackpropInputCpu, dbi)

// Declares one core (in namespace tf_convgrad here, and in each level's own
// namespace in cpu_kernels.h).
#define TF_CONVGRAD_DECLARE_CPU_CORE(Name, short_name)                               \
  template <typename T>                                                              \
  bool Name(const ConvGeometry& g, const T* first, const T* out_backprop, T* output, \
            const ParallelFor& parallel_for);

// Explicitly instantiates core `Name` (defined in the including file) for
// every element type.
#define TF_CONVGRAD_INSTANTIATE_CPU_CORE_FOR_(T, Name) \
  template bool Name<T>(const ConvGeometry&, const T*, const T*, T*, const ParallelFor&);
#define TF_CONVGRAD_INSTANTIATE_CPU_CORE(Name) \
  TF_CONVGRAD_TYPES(TF_CONVGRAD_INSTANTIATE_CPU_CORE_FOR_, Name)

TF_CONVGRAD_CPU_CORES(TF_CONVGRAD_DECLARE_CPU_CORE)

}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_CPU_CONV_BACKPROP_CPU_H_
