// A small CPU emulation of the CUDA subset that tf_ops/cc/kernels/gpu uses,
// so that the very same kernel sources can be compiled with g++ and run on a
// machine without a GPU (tests/gpu/run_harness.py --emulate). tests/gpu/build.py
// force-includes it (-include) with -DTF_CONVGRAD_CUDA_EMULATION: the kernel
// sources never name it.
//
// Model: a launch runs its blocks one after another; inside a block every CUDA
// thread is a fiber (ucontext) on the calling OS thread, switched only at
// __syncthreads(). Between barriers the fibers run in an order set by
// tf_convgrad_emu::SetSchedule (forward, reverse, or shuffled per round), so
// a missing barrier shows up as results that change with the schedule. A
// barrier that some threads of a block skip (they returned) is reported as a
// launch failure instead of hanging. Launch limits (block <= 1024 threads,
// grid.y/z <= 65535) and the default-stream rule are checked like the device
// does. __shared__ variables become function-local statics: one block runs at
// a time, so all threads of the running block share them.
//
// Not emulated: warp-synchronous behaviour (the kernels use none: reductions
// go through shared memory and __syncthreads), memory spaces (all pointers are
// host pointers), floating-point contraction and the tensor cores' internal
// rounding (WMMA is emulated with float FMAs in k order).
#ifndef TESTS_GPU_EMU_CUDA_EMULATION_H_
#define TESTS_GPU_EMU_CUDA_EMULATION_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

// ---------------------------------------------------------------------------
// Runtime types and calls
// ---------------------------------------------------------------------------

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct uint3 {
  unsigned x, y, z;
};

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;
typedef struct CUstream_st* cudaStream_t;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream);

extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;

void __syncthreads();
inline void __syncwarp(unsigned /*mask*/ = 0xffffffffu) {}

namespace tf_convgrad_emu {
// Runs body() as every thread of every block of the grid.
void LaunchKernel(dim3 grid, dim3 block, cudaStream_t stream, const std::function<void()>& body);
// 0: threads in order between barriers; 1: reverse order; 2: shuffled with
// `seed` (a new permutation every round).
void SetSchedule(int mode, unsigned seed);
// Number of launches and of barrier rounds since the last reset (for tests).
void GetCounters(uint64_t* launches, uint64_t* rounds);
}  // namespace tf_convgrad_emu

// ---------------------------------------------------------------------------
// 16-bit floating-point types (storage and round-to-nearest-even conversions)
// ---------------------------------------------------------------------------

namespace tf_convgrad_emu {
inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t FloatToHalfBits(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN, inf
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (a < 0x38800000u) {                        // below 2^-14: subnormal (or zero)
    // Exact: multiplying by 2^24 only shifts the exponent; rint rounds to even.
    return sign | static_cast<uint16_t>(std::nearbyint(BitsFloat(a) * 16777216.0f));
  }
  uint32_t h = ((((a >> 23) - 127 + 15) << 10) | ((a & 0x7fffffu) >> 13));
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
  return sign | static_cast<uint16_t>(h);
}
inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) / 16777216.0f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 31) return BitsFloat(sign | 0x7f800000u | (m << 13));
  return BitsFloat(sign | ((e - 15 + 127) << 23) | (m << 13));
}
inline uint16_t FloatToBFloat16Bits(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float BFloat16BitsToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }
}  // namespace tf_convgrad_emu

struct __half {
  uint16_t bits_;
  __half() = default;
  __half(float f) : bits_(tf_convgrad_emu::FloatToHalfBits(f)) {}  // NOLINT: as CUDA's
  operator float() const { return tf_convgrad_emu::HalfBitsToFloat(bits_); }
};
struct __nv_bfloat16 {
  uint16_t bits_;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : bits_(tf_convgrad_emu::FloatToBFloat16Bits(f)) {}  // NOLINT
  operator float() const { return tf_convgrad_emu::BFloat16BitsToFloat(bits_); }
};
inline float __half2float(__half h) { return tf_convgrad_emu::HalfBitsToFloat(h.bits_); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __bfloat162float(__nv_bfloat16 b) {
  return tf_convgrad_emu::BFloat16BitsToFloat(b.bits_);
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }

// ---------------------------------------------------------------------------
// WMMA: every thread holds the whole tile (so element order inside a
// fragment is not emulated; the kernels never index fragments).
// ---------------------------------------------------------------------------

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct FragmentDims;
template <int M, int N, int K>
struct FragmentDims<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct FragmentDims<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct FragmentDims<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = FragmentDims<Use, M, N, K>::rows;
  static constexpr int cols = FragmentDims<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  T x[rows * cols];  // row-major
};

template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r) {
    for (int c = 0; c < F::cols; ++c) {
      f.x[r * F::cols + c] =
          std::is_same<Layout, col_major>::value ? p[c * ldm + r] : p[r * ldm + c];
    }
  }
}
template <int M, int N, int K, typename T>
void fill_fragment(fragment<accumulator, M, N, K, T>& f, T v) {
  for (int e = 0; e < M * N; ++e) f.x[e] = v;
}
template <int M, int N, int K, typename T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm,
                       layout_t layout) {
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < N; ++c) {
      (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
    }
  }
}
template <int M, int N, int K, typename Tab, typename La, typename Lb>
void mma_sync(fragment<accumulator, M, N, K, float>& d,
              const fragment<matrix_a, M, N, K, Tab, La>& a,
              const fragment<matrix_b, M, N, K, Tab, Lb>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int r = 0; r < M; ++r) {
    for (int n = 0; n < N; ++n) {
      float s = c.x[r * N + n];
      for (int k = 0; k < K; ++k) s += float(a.x[r * K + k]) * float(b.x[k * N + n]);
      out[r * N + n] = s;
    }
  }
  std::memcpy(d.x, out, sizeof(out));
}
}  // namespace wmma
}  // namespace nvcuda

// The kernels' one launch macro (tf_ops/cc/kernels/gpu/gpu_common.cu.h defines
// it with <<<>>> for nvcc): here a launch runs the kernel's blocks through
// LaunchKernel, checked the same way.
#define TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, block, stream, ...)                           \
  do {                                                                                           \
    auto* const kernel_ = (kernel);                                                              \
    ::tf_convgrad_emu::LaunchKernel((grid), (block), (stream), [=]() { kernel_(__VA_ARGS__); }); \
    const cudaError_t launch_error_ = cudaGetLastError();                                        \
    if (launch_error_ != cudaSuccess) return launch_error_;                                      \
  } while (false)

#endif  // TESTS_GPU_EMU_CUDA_EMULATION_H_
