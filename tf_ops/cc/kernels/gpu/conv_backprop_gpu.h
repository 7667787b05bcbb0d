// TF-free GPU launchers for the three convolution-gradient ops.
//
// This header is all a caller sees: plain-old-data arguments, a CUDA stream in
// and a cudaError_t out. The TensorFlow adapter (../conv_backprop_ops_gpu.cc)
// and the standalone GPU harness call exactly these functions, so the
// harness tests the code that TensorFlow runs.
//
// Math: see ../cpu/conv_backprop_cpu.h (the GPU kernels compute the same three
// sums; the CPU and GPU results differ only in rounding).
//
// Contract of Launch():
// * Every element of `output` is written; empty reductions give exact zeros
//   (cudaMemsetAsync on `stream`).
// * Deterministic by construction: no floating-point atomics; every sum is
//   taken in an order fixed by the shape alone (per-block partial sums over
//   fixed slices of the reduction, then a fixed-order second pass), so results
//   are bitwise identical from run to run on a given GPU model.
// * half and bfloat16 are read and written as 16-bit values but accumulated in
//   float32; float in float32; double in double.
// * Index arithmetic is 64-bit wherever a tensor or a coordinate can exceed
//   2^31 - 1; smaller problems run 32-bit-index instantiations.
// * All work is enqueued on `stream`, which must not be the legacy default
//   stream (0): Launch() refuses it with cudaErrorInvalidValue.
// * Every kernel launch is checked; the first failure is returned (it may
//   also be an earlier asynchronous error, as cudaGetLastError() reports).
#ifndef TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_H_
#define TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_H_

#include <cstddef>
#include <cstdint>

#if !defined(TF_CONVGRAD_CUDA_EMULATION)  // the emulation build force-includes its stand-in
#include <cuda_runtime_api.h>
#endif

#include "tf_ops/cc/kernels/conv_geometry.h"

namespace tf_convgrad {
namespace gpu {

// The ops (Op) and the geometry (ConvGeometry) are conv_geometry.h's, shared
// with validation and the CPU cores.

// Element types, by storage layout: kHalf is IEEE binary16 (Eigen::half,
// __half), kBFloat16 the upper half of a binary32 (tensorflow::bfloat16,
// __nv_bfloat16).
enum class DType : int32_t { kHalf = 0, kBFloat16 = 1, kFloat = 2, kDouble = 3 };

// Test and benchmark knobs. A null pointer or all zeros is what TensorFlow
// runs; the harness uses the others to cover every kernel on small problems.
struct LaunchOptions {
  int32_t force_index64;  // 64-bit indexing even where 32-bit fits.
  int32_t force_generic;  // no 3x3/5x5 specialisations.
  int32_t force_simt;     // Conv2DBackpropFilter: no tensor cores (half/bfloat16).
  int32_t force_splits;   // > 0: this many reduction splits (clamped to what is legal).
};
static_assert(sizeof(LaunchOptions) == 4 * sizeof(int32_t), "LaunchOptions must stay flat");

// Device scratch bytes Launch() needs for these arguments (0 if none). It
// depends on the arguments only, never on the device.
size_t ScratchBytes(Op op, DType dtype, const ConvGeometry& shape, const LaunchOptions* options);

// Enqueues the op on `stream`. `first` is the forward input x
// (Conv2DBackpropFilter, DepthwiseBackpropFilter) or the filter
// (DepthwiseBackpropInput); `out_backprop` is dy; `output` is overwritten.
// `scratch` must hold ScratchBytes() bytes (it may be null when that is 0) and
// stay allocated until the enqueued work has finished. All pointers are device
// pointers; any alignment of the element type is accepted.
cudaError_t Launch(Op op, DType dtype, const ConvGeometry& shape, const void* first,
                   const void* out_backprop, void* output, void* scratch, size_t scratch_bytes,
                   cudaStream_t stream, const LaunchOptions* options);

// Enqueues on `stream` the filling of `elements` elements of `dtype` at
// `output` (device memory) with the bit pattern in the low 2, 4 or 8 bytes of
// `bits`: zeros (cudaMemsetAsync), or the TF adapter's debug poison.
cudaError_t Fill(DType dtype, void* output, int64_t elements, uint64_t bits, cudaStream_t stream);

// A short description of the kernels Launch() would run, e.g.
// "dbf.nhwc.3x3.i32 splits=64"; for logs and the benchmark table.
const char* KernelDescription(Op op, DType dtype, const ConvGeometry& shape,
                              const LaunchOptions* options);

}  // namespace gpu
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_H_
