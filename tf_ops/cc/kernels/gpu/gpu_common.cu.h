// Device-side building blocks shared by the GPU kernels: the CUDA includes,
// the one checked launch macro, accumulator types and conversions, vector
// loads, and the fixed-order reduction of per-split partial sums.
//
// Included only by the kernels' .cu.cc files, which nvcc compiles. The same
// sources also build with g++ for a CPU emulation of CUDA (the GPU harness's
// --emulate build), which defines TF_CONVGRAD_CUDA_EMULATION, force-includes
// its stand-in for the CUDA headers and defines TF_CONVGRAD_LAUNCH_OR_RETURN
// for its own launches, so that the kernels' logic can be tested on a machine
// without a GPU.
#ifndef TF_OPS_CC_KERNELS_GPU_GPU_COMMON_CU_H_
#define TF_OPS_CC_KERNELS_GPU_GPU_COMMON_CU_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#if !defined(TF_CONVGRAD_CUDA_EMULATION)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu.h"

// The only kernel launch in the project. `kernel` is a function pointer (so
// that template arguments need no parentheses); the launch is followed by
// cudaGetLastError(), and the enclosing function (which returns cudaError_t)
// returns the error. tests/builds/test_gpu_build.py checks that no other `<<<`
// exists under tf_ops/.
#if defined(__CUDACC__)
#define TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, block, stream, ...)      \
  do {                                                                      \
    (kernel)<<<(grid), (block), /*shared_mem=*/0, (stream)>>>(__VA_ARGS__); \
    const cudaError_t launch_error_ = cudaGetLastError();                   \
    if (launch_error_ != cudaSuccess) return launch_error_;                 \
  } while (false)
#elif !defined(TF_CONVGRAD_CUDA_EMULATION) || !defined(TF_CONVGRAD_LAUNCH_OR_RETURN)
#error \
    "gpu_common.cu.h must be compiled by nvcc (or by a CUDA emulation that defines the launch macro)"
#endif

#define TF_CONVGRAD_RETURN_IF_CUDA_ERROR(expr)          \
  do {                                                  \
    const cudaError_t cuda_error_ = (expr);             \
    if (cuda_error_ != cudaSuccess) return cuda_error_; \
  } while (false)

// The geometry as the kernels' parameter structs (DwParams, CbfParams) hold
// it: these fields of ConvGeometry, under the same names, in this order.
// clang-format off
#define TF_CONVGRAD_KERNEL_GEOMETRY(X)                            \
  X(batch) X(in_rows) X(in_cols) X(in_depth)                      \
  X(out_rows) X(out_cols) X(out_depth) X(depth_multiplier)        \
  X(filter_rows) X(filter_cols)                                   \
  X(stride_rows) X(stride_cols) X(dilation_rows) X(dilation_cols) \
  X(pad_top) X(pad_left)
// clang-format on

namespace tf_convgrad {
namespace gpu {
namespace internal {

constexpr int kThreads = 256;  // Threads per block of every kernel.

// ---------------------------------------------------------------------------
// Element types and accumulators
// ---------------------------------------------------------------------------

template <typename T>
struct AccType {
  using type = float;  // half, bfloat16 and float accumulate in float.
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using Acc = typename AccType<T>::type;

__device__ __forceinline__ float ToAcc(float v) { return v; }
__device__ __forceinline__ double ToAcc(double v) { return v; }
__device__ __forceinline__ float ToAcc(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToAcc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromAcc(Acc<T> v);
template <>
__device__ __forceinline__ float FromAcc<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ double FromAcc<double>(double v) {
  return v;
}
template <>
__device__ __forceinline__ __half FromAcc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromAcc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Elements per 16-byte vector access.
template <typename T>
constexpr int kVec16 = static_cast<int>(16 / sizeof(T));

// An aligned vector of kV elements: loading one is a single kV*sizeof(T)-byte
// access (the pattern PyTorch's aligned_vector uses).
template <typename T, int kV>
struct alignas(sizeof(T) * kV) AlignedVec {
  T e[kV];
};

template <typename T, int kV>
__device__ __forceinline__ void LoadVec(const T* p, Acc<T> (&out)[kV]) {
  const AlignedVec<T, kV> v = *reinterpret_cast<const AlignedVec<T, kV>*>(p);
#pragma unroll
  for (int l = 0; l < kV; ++l) out[l] = ToAcc(v.e[l]);
}

template <typename T, int kV>
__device__ __forceinline__ void StoreVec(T* p, const Acc<T> (&in)[kV]) {
  AlignedVec<T, kV> v;
#pragma unroll
  for (int l = 0; l < kV; ++l) v.e[l] = FromAcc<T>(in[l]);
  *reinterpret_cast<AlignedVec<T, kV>*>(p) = v;
}

inline bool IsAligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// ---------------------------------------------------------------------------
// Output pixels of a reduction over (b, ho, wo)
// ---------------------------------------------------------------------------

// The pixel (b, ho, wo) of flat index pix = (b * out_rows + ho) * out_cols + wo.
template <typename Index>
__device__ __forceinline__ void SplitPixel(const Index out_rows, const Index out_cols,
                                           const Index pix, Index& b, Index& ho, Index& wo) {
  const Index r = pix / out_cols;
  wo = pix - r * out_cols;
  b = r / out_rows;
  ho = r - b * out_rows;
}

// Moves the pixel (b, ho, wo) forward by `step` pixels (step > 0).
template <typename Index>
__device__ __forceinline__ void AdvancePixel(const Index out_rows, const Index out_cols,
                                             const Index step, Index& b, Index& ho, Index& wo) {
  wo += step;
  if (wo >= out_cols) {
    const Index q = wo / out_cols;
    wo -= q * out_cols;
    ho += q;
    if (ho >= out_rows) {
      const Index qb = ho / out_rows;
      ho -= qb * out_rows;
      b += qb;
    }
  }
}

// ---------------------------------------------------------------------------
// Host-side sizing helpers (64-bit; callers have validated non-negativity)
// ---------------------------------------------------------------------------

// Filter taps (rows x columns) of a geometry.
inline int64_t Taps(const ConvGeometry& s) { return s.filter_rows * s.filter_cols; }

// printf-style formatting of a kernel description (at most 159 characters).
template <typename... Args>
std::string Format(const char* format, Args... args) {
  char buf[160];
  snprintf(buf, sizeof(buf), format, args...);
  return buf;
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }
inline int64_t Clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
// Saturating arithmetic for size bounds (inputs >= 0).
inline int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}
inline int64_t SatMul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}

// The 32-bit-index kernels may use int for every element offset and
// coordinate, including a grid-stride loop's last step; this bound leaves room
// for that step (at most kMaxGridBlocks * kThreads).
constexpr int64_t kMaxGridBlocks = int64_t{1} << 16;
constexpr int64_t kMaxIndex32 =
    int64_t{std::numeric_limits<int32_t>::max()} - kMaxGridBlocks * kThreads;

// Largest scratch a launch plans for its per-split partial sums; plans with
// more splits than fit use fewer.
constexpr int64_t kMaxPartialBytes = int64_t{256} << 20;

// ---------------------------------------------------------------------------
// Second pass: out[e] = sum_{s = 0..splits-1} partial[s * elems + e], in
// increasing s within each of kSplitLanes lanes, then the lanes in a fixed
// tree. Each block handles 32 consecutive outputs (coalesced) and 8 lanes.
// ---------------------------------------------------------------------------

constexpr int kFinalizeOutputs = 32;
constexpr int kSplitLanes = kThreads / kFinalizeOutputs;  // 8

template <typename T>
__global__ void __launch_bounds__(kThreads)
    SumPartialsKernel(const Acc<T>* __restrict__ partial, int64_t splits, int64_t elems,
                      T* __restrict__ out) {
  using A = Acc<T>;
  __shared__ A lanes[kSplitLanes][kFinalizeOutputs];
  const int tx = threadIdx.x % kFinalizeOutputs;
  const int ty = threadIdx.x / kFinalizeOutputs;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * kFinalizeOutputs + tx;
  A sum = A(0);
  if (e < elems) {
    for (int64_t s = ty; s < splits; s += kSplitLanes) sum += partial[s * elems + e];
  }
  lanes[ty][tx] = sum;
  __syncthreads();
#pragma unroll
  for (int stride = kSplitLanes / 2; stride > 0; stride /= 2) {
    if (ty < stride) lanes[ty][tx] += lanes[ty + stride][tx];
    __syncthreads();
  }
  if (ty == 0 && e < elems) out[e] = FromAcc<T>(lanes[0][tx]);
}

template <typename T>
cudaError_t SumPartials(const Acc<T>* partial, int64_t splits, int64_t elems, T* out,
                        cudaStream_t stream) {
  const int64_t blocks = CeilDiv(elems, kFinalizeOutputs);
  if (blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidValue;
  auto* kernel = &SumPartialsKernel<T>;
  TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), stream,
                               partial, splits, elems, out);
  return cudaSuccess;
}

// Scratch is carved into 256-byte-aligned pieces.
inline size_t AlignScratch(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_GPU_GPU_COMMON_CU_H_
