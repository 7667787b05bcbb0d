// Helpers shared by the CPU cores: accumulator types, aligned scratch,
// packing of rows into channel-contiguous accumulator buffers, tap ranges.
#ifndef TF_OPS_CC_KERNELS_CPU_CPU_COMMON_H_
#define TF_OPS_CC_KERNELS_CPU_CPU_COMMON_H_

#include <algorithm>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"
#include "tf_ops/cc/kernels/cpu/cpu_kernels.h"

// Every core source is compiled once per instruction-set level, inside that
// level's namespace (cpu_kernels.h).
#ifndef TF_CONVGRAD_ISA_NS
#error "compile the CPU cores with -DTF_CONVGRAD_ISA_NS=<level> (see CMakeLists.txt)"
#endif

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {
namespace internal {

// Accumulator type: float for half, bfloat16 and float; double for double.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};

// Number of accumulator lanes in one 64-byte vector.
template <typename A>
constexpr int64_t kLanes = 64 / sizeof(A);

inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// floor(a / b) and ceil(a / b) for b > 0 and any sign of a.
inline int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t CeilDivSigned(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// The output positions o in [0, out) whose input position o * stride + offset
// lies in [0, in): returns [*lo, *hi), possibly empty.
inline void ValidRange(int64_t offset, int64_t stride, int64_t in, int64_t out, int64_t* lo,
                       int64_t* hi) {
  *lo = std::max<int64_t>(0, CeilDivSigned(-offset, stride));
  *hi = std::min<int64_t>(out, FloorDiv(in - 1 - offset, stride) + 1);
  if (*hi < *lo) *hi = *lo;
}

template <typename T, typename A>
inline A ToAcc(T v) {
  return static_cast<A>(static_cast<float>(v));
}
template <>
inline double ToAcc<double, double>(double v) {
  return v;
}
template <typename T, typename A>
inline T FromAcc(A v) {
  return static_cast<T>(v);  // Eigen::half / bfloat16: round to nearest even.
}

// dst[0:n] = ToAcc(src[0:n]); half and bfloat16 convert 16 at a time with
// AVX-512 (exact conversions, the same values as ToAcc).
template <typename T, typename A>
inline void ConvertToAcc(const T* __restrict src, A* __restrict dst, int64_t n) {
  int64_t e = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, Eigen::half>::value && std::is_same<A, float>::value) {
    for (; e + 16 <= n; e += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + e));
      _mm512_storeu_ps(dst + e, _mm512_cvtph_ps(h));
    }
  } else if constexpr (std::is_same<T, Eigen::bfloat16>::value && std::is_same<A, float>::value) {
    for (; e + 16 <= n; e += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + e));
      _mm512_storeu_si512(dst + e, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
#endif
  for (; e < n; ++e) dst[e] = ToAcc<T, A>(src[e]);
}

// One 64-byte vector of accumulators (GCC/Clang vector extension, so the
// compiler always emits whole-vector instructions), with unaligned loads and
// stores through memcpy.
template <typename A>
struct VecOf {
  typedef A type __attribute__((vector_size(64)));
};
template <typename A>
using Vec = typename VecOf<A>::type;

template <typename A>
inline Vec<A> LoadVec(const A* p) {
  Vec<A> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename A>
inline void StoreVec(A* p, Vec<A> v) {
  std::memcpy(p, &v, sizeof(v));
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// The 16 floats of v as 16 half or bfloat16 bit patterns, each rounded as
// FromAcc rounds, bit-identical to Eigen's per-element conversions: float ->
// half with the same instruction (round to nearest even); float -> bfloat16
// with Eigen's integer rounding (add 0x7fff + lsb, keep the top half; NaN ->
// 0x7fc0 with the sign).
template <typename T>
inline __m256i Round16(Vec<float> v) {
  const __m512 f = reinterpret_cast<__m512>(v);
  if constexpr (std::is_same<T, Eigen::half>::value) {
    return _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
  } else {
    static_assert(std::is_same<T, Eigen::bfloat16>::value, "half or bfloat16");
#if defined(__AVX512BF16__)
    // The instruction rounds to nearest even as Eigen does, except that it
    // reads denormals as zero and keeps a NaN's payload: those vectors (rare)
    // take the integer path below.
    if (__builtin_expect(_mm512_fpclass_ps_mask(f, 0x01 | 0x20 | 0x80) == 0, 1)) {
      return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(f));
    }
#endif
    const __m512i x = reinterpret_cast<__m512i>(v);
    const __m512i top = _mm512_srli_epi32(x, 16);
    const __m512i lsb = _mm512_and_si512(top, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
    const __m512i quiet = _mm512_or_si512(_mm512_set1_epi32(0x7fc0),
                                          _mm512_and_si512(top, _mm512_set1_epi32(0x8000)));
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, quiet));
  }
}
constexpr bool kVectorRound = true;
#else
constexpr bool kVectorRound = false;
#endif

// Stores the lanes of v at p as T, each rounded as FromAcc rounds. kStream:
// p is aligned to the stored size (64 bytes, or 32 for 16-bit T), and the store
// bypasses the caches where the target has non-temporal vector stores.
template <typename T, typename A, bool kStream = false>
inline void StoreFromAcc(T* p, Vec<A> v) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  if constexpr (std::is_same<T, A>::value && kStream) {
    if constexpr (std::is_same<A, float>::value) {
      _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
    } else {
      _mm512_stream_pd(p, reinterpret_cast<__m512d>(v));
    }
  } else if constexpr (std::is_same<T, A>::value) {
    StoreVec(p, v);
  } else if constexpr (kStream) {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), Round16<T>(v));
  } else {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), Round16<T>(v));
  }
#else
  if constexpr (std::is_same<T, A>::value) {
    StoreVec(p, v);
  } else {
    for (int64_t l = 0; l < kLanes<A>; ++l) p[l] = FromAcc<T, A>(v[l]);
  }
#endif
}

// Writes one whole 64-byte line of 16-bit T around the caches: lo's lanes,
// rounded as FromAcc rounds, to p[0:16] and hi's to p[16:32]. p is 64-byte
// aligned. (Two half-line non-temporal stores leave the line's completion to
// the write-combining buffers.)
template <typename T, typename A>
inline void StreamLineFromAcc(T* p, Vec<A> lo, Vec<A> hi) {
  static_assert(sizeof(T) == 2 && std::is_same<A, float>::value, "16-bit T, float accumulators");
#if defined(__AVX512F__) && defined(__AVX512BW__)
  _mm512_stream_si512(
      reinterpret_cast<__m512i*>(p),
      _mm512_inserti64x4(_mm512_castsi256_si512(Round16<T>(lo)), Round16<T>(hi), 1));
#else
  StoreFromAcc<T, A>(p, lo);
  StoreFromAcc<T, A>(p + kLanes<A>, hi);
#endif
}

// dst[0:n] = FromAcc(src[0:n]); half and bfloat16 a vector at a time with
// AVX-512 (StoreFromAcc).
template <typename T, typename A>
inline void ConvertFromAcc(const A* __restrict src, T* __restrict dst, int64_t n) {
  int64_t e = 0;
  if constexpr (kVectorRound && !std::is_same<T, A>::value) {
    for (; e + kLanes<A> <= n; e += kLanes<A>) StoreFromAcc<T, A>(dst + e, LoadVec(src + e));
  }
  for (; e < n; ++e) dst[e] = FromAcc<T, A>(src[e]);
}

// 64-byte aligned scratch; empty (nullptr) when the allocation fails.
template <typename A>
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(int64_t n) { Reset(n); }
  bool Reset(int64_t n) {
    size_t bytes = static_cast<size_t>(RoundUp(std::max<int64_t>(n, 1) * sizeof(A), 64));
    ptr_.reset(static_cast<A*>(std::aligned_alloc(64, bytes)));
    return ptr_ != nullptr;
  }
  A* get() const { return ptr_.get(); }
  bool ok() const { return ptr_ != nullptr; }

 private:
  struct Free {
    void operator()(A* p) const { std::free(p); }
  };
  std::unique_ptr<A, Free> ptr_;
};

// Splits [0, total) into at most max_tasks contiguous ranges of near-equal
// size and runs fn(begin, end) on each, possibly in parallel. Per-range setup
// (row caches, scratch) is amortised over a whole range.
template <typename Fn>
void ForRanges(const ParallelFor& parallel_for, int64_t total, int64_t max_tasks,
               int64_t cost_per_unit, Fn fn) {
  if (total <= 0) return;
  const int64_t tasks = std::max<int64_t>(1, std::min(total, max_tasks));
  parallel_for(tasks, cost_per_unit * (total / tasks + 1), [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) fn(total * t / tasks, total * (t + 1) / tasks);
  });
}
constexpr int64_t kMaxTasks = 64;

// A 4-D tensor seen as [batch, rows, cols, depth] whatever its layout.
struct Layout4 {
  int64_t rows, cols, depth;
  bool nchw;
  int64_t Offset(int64_t b, int64_t r, int64_t c, int64_t d) const {
    return nchw ? ((b * depth + d) * rows + r) * cols + c : ((b * rows + r) * cols + c) * depth + d;
  }
};

// Packs row r of image b (r must be valid) into dst[cols][padded_depth] in the
// accumulator type, with every channel repeated `repeat` times
// (dst[w][d * repeat + k] = src[b, r, w, d]) and zeros in the padding lanes.
template <typename T, typename A>
void PackRow(const T* src, const Layout4& l, int64_t b, int64_t r, int64_t repeat,
             int64_t padded_depth, A* dst) {
  const int64_t used = l.depth * repeat;
  if (!l.nchw) {
    // Local sizes and restrict pointers: src and dst never overlap, and the
    // compiler may then vectorise the copies.
    const int64_t depth = l.depth, cols = l.cols;
    const T* __restrict s = src + l.Offset(b, r, 0, 0);
    for (int64_t w = 0; w < cols; ++w, s += depth) {
      A* __restrict d = dst + w * padded_depth;
      if (repeat == 1) {
        ConvertToAcc(s, d, depth);
      } else if (repeat == 2) {
        for (int64_t c = 0; c < depth; ++c) d[2 * c] = d[2 * c + 1] = ToAcc<T, A>(s[c]);
      } else {
        for (int64_t c = 0; c < depth; ++c) {
          const A v = ToAcc<T, A>(s[c]);
          for (int64_t k = 0; k < repeat; ++k) d[c * repeat + k] = v;
        }
      }
      for (int64_t c = used; c < padded_depth; ++c) d[c] = A(0);
    }
  } else {
    if (padded_depth > used) {
      for (int64_t w = 0; w < l.cols; ++w) {
        std::fill(dst + w * padded_depth + used, dst + (w + 1) * padded_depth, A(0));
      }
    }
    for (int64_t c = 0; c < l.depth; ++c) {
      const T* s = src + l.Offset(b, r, 0, c);
      for (int64_t w = 0; w < l.cols; ++w) {
        const A v = ToAcc<T, A>(s[w]);
        for (int64_t k = 0; k < repeat; ++k) dst[w * padded_depth + c * repeat + k] = v;
      }
    }
  }
}

// Packs row r of image b of a tensor with depth C * repeat into
// dst[cols][repeat][padded_depth]: dst[w][k][c] = src[b, r, w, c * repeat + k],
// zeros in the padding lanes (the depthwise "c * M + m" channels split by m).
template <typename T, typename A>
void PackRowSplit(const T* src, const Layout4& l, int64_t b, int64_t r, int64_t repeat,
                  int64_t padded_depth, A* dst) {
  if (repeat == 1) {
    PackRow(src, l, b, r, 1, padded_depth, dst);
    return;
  }
  const int64_t c_used = l.depth / repeat;
  const int64_t row = repeat * padded_depth;
  for (int64_t w = 0; w < l.cols; ++w) {
    for (int64_t k = 0; k < repeat; ++k) {
      std::fill(dst + w * row + k * padded_depth + c_used, dst + w * row + (k + 1) * padded_depth,
                A(0));
    }
  }
  if (!l.nchw) {
    const T* s = src + l.Offset(b, r, 0, 0);
    for (int64_t w = 0; w < l.cols; ++w, s += l.depth) {
      A* d = dst + w * row;
      for (int64_t c = 0; c < c_used; ++c) {
        for (int64_t k = 0; k < repeat; ++k)
          d[k * padded_depth + c] = ToAcc<T, A>(s[c * repeat + k]);
      }
    }
  } else {
    for (int64_t q = 0; q < l.depth; ++q) {
      const T* s = src + l.Offset(b, r, 0, q);
      A* d = dst + (q % repeat) * padded_depth + q / repeat;
      for (int64_t w = 0; w < l.cols; ++w) d[w * row] = ToAcc<T, A>(s[w]);
    }
  }
}

// acc[0:lanes] += sum_{k < n} x[k * xs + 0:lanes] * d[k * ds + 0:lanes], with
// four independent partial sums (to hide FMA latency) combined in a fixed
// order.
template <typename A>
inline void DotTile(const A* x, int64_t xs, const A* d, int64_t ds, int64_t n, A* acc) {
  Vec<A> s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += LoadVec(x) * LoadVec(d);
    s1 += LoadVec(x + xs) * LoadVec(d + ds);
    s2 += LoadVec(x + 2 * xs) * LoadVec(d + 2 * ds);
    s3 += LoadVec(x + 3 * xs) * LoadVec(d + 3 * ds);
    x += 4 * xs;
    d += 4 * ds;
  }
  for (; k < n; ++k, x += xs, d += ds) s0 += LoadVec(x) * LoadVec(d);
  StoreVec(acc, LoadVec(acc) + ((s0 + s1) + (s2 + s3)));
}

// For one vector of channels and kTaps tap columns j: over n output columns wo,
//   acc[j] += sum_wo x[wo * x_wo + j * x_tap] * d[wo * d_wo]   (acc[j] at acc + j * acc_step),
// loading each out_backprop vector once and keeping all kTaps sums in registers.
template <typename A, int kTaps>
void RowTaps(const A* x, int64_t x_wo, int64_t x_tap, const A* d, int64_t d_wo, int64_t n, A* acc,
             int64_t acc_step) {
  Vec<A> s[kTaps] = {};
  for (int64_t wo = 0; wo < n; ++wo, x += x_wo, d += d_wo) {
    const Vec<A> dv = LoadVec(d);
    for (int j = 0; j < kTaps; ++j) s[j] += LoadVec(x + j * x_tap) * dv;
  }
  for (int j = 0; j < kTaps; ++j) StoreVec(acc + j * acc_step, LoadVec(acc + j * acc_step) + s[j]);
}

template <typename A>
using RowTapsFn = void (*)(const A*, int64_t, int64_t, const A*, int64_t, int64_t, A*, int64_t);

// RowTaps for tap spacing 1 and output-column spacing S, over R filter rows at
// once: four output columns at a time share, per row, a window of S * 3 + kTaps
// x vectors, each loaded once, and each out_backprop vector is loaded once for
// all R rows (for R = 3 that cuts the loads per product by about a quarter where
// the kernel is load-bound). The sums are split by the column's parity
// (2 * R * kTaps independent chains), then added; the last columns go one by
// one. x[r] + q is input row r at the first output column's first tap;
// acc + r * acc_row + j * acc_step receives tap (r, j). Per (r, j) the order of
// operations does not depend on R, so R rows at once equal R calls with R = 1.
template <typename A, int kTaps, int S, int R>
void RowsTapsWindow(const A* const* x, int64_t q, int64_t xs, const A* d, int64_t d_wo, int64_t n,
                    A* acc, int64_t acc_row, int64_t acc_step) {
  constexpr int kB = 4;
  Vec<A> s0[R][kTaps] = {}, s1[R][kTaps] = {};
  const A* xr[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) xr[r] = x[r] + q;
  int64_t wo = 0;
  for (; wo + kB <= n; wo += kB, d += kB * d_wo) {
    Vec<A> dv[kB];
#pragma GCC unroll 4
    for (int t = 0; t < kB; ++t) dv[t] = LoadVec(d + t * d_wo);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
      for (int u = 0; u < S * (kB - 1) + kTaps; ++u) {
        const Vec<A> xv = LoadVec(xr[r] + u * xs);
#pragma GCC unroll 4
        for (int t = 0; t < kB; ++t) {
          const int j = u - S * t;
          if (j >= 0 && j < kTaps) {
            if (t % 2 == 0) {
              s0[r][j] += xv * dv[t];
            } else {
              s1[r][j] += xv * dv[t];
            }
          }
        }
      }
      xr[r] += kB * S * xs;
    }
  }
  for (; wo < n; ++wo, d += d_wo) {
    const Vec<A> dv = LoadVec(d);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < kTaps; ++j) s0[r][j] += LoadVec(xr[r] + j * xs) * dv;
      xr[r] += S * xs;
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < kTaps; ++j) {
      A* a = acc + r * acc_row + j * acc_step;
      StoreVec(a, LoadVec(a) + (s0[r][j] + s1[r][j]));
    }
  }
}

// RowsTapsWindow for one filter row, in RowTapsFn form.
template <typename A, int kTaps, int S>
void RowTapsWindow(const A* x, int64_t /*x_wo == S * xs*/, int64_t xs, const A* d, int64_t d_wo,
                   int64_t n, A* acc, int64_t acc_step) {
  RowsTapsWindow<A, kTaps, S, 1>(&x, 0, xs, d, d_wo, n, acc, 0, acc_step);
}

// The RowTapsWindow instance for a filter width and stride (tap spacing 1), or nullptr.
template <typename A>
RowTapsFn<A> RowTapsWindowFor(int64_t filter_cols, int64_t stride) {
#define TF_CONVGRAD_WINDOW_CASE(K) \
  case K:                          \
    return stride == 1 ? &RowTapsWindow<A, K, 1> : &RowTapsWindow<A, K, 2>;
  if (stride != 1 && stride != 2) return nullptr;
  switch (filter_cols) {
    TF_CONVGRAD_WINDOW_CASE(2)
    TF_CONVGRAD_WINDOW_CASE(3)
    TF_CONVGRAD_WINDOW_CASE(4)
    TF_CONVGRAD_WINDOW_CASE(5)
    TF_CONVGRAD_WINDOW_CASE(6)
    TF_CONVGRAD_WINDOW_CASE(7)
    default:
      return nullptr;
  }
#undef TF_CONVGRAD_WINDOW_CASE
}

// The RowTaps instance for a filter width, or nullptr (callers go tap by tap).
template <typename A>
RowTapsFn<A> RowTapsFor(int64_t filter_cols) {
  switch (filter_cols) {
    case 2:
      return &RowTaps<A, 2>;
    case 3:
      return &RowTaps<A, 3>;
    case 4:
      return &RowTaps<A, 4>;
    case 5:
      return &RowTaps<A, 5>;
    case 6:
      return &RowTaps<A, 6>;
    case 7:
      return &RowTaps<A, 7>;
    default:
      return nullptr;
  }
}

// A call whose tensors (inputs and output) take at most this many bytes runs
// without software prefetch: they stay in the caches from one call to the next,
// and the prefetch instructions then only cost issue slots and fill buffers.
// Measured (tools/cpu_cores_bench.cc, one and two threads): DBF on 1x112x112x32
// 0.22 -> 0.10 ms and 2x112x112x32 0.46 -> 0.23 ms without it, DBI 0-25% faster
// up to 7 MiB; from 12 MiB on, prefetch is faster (8x112x112x32 DBF 2.68 -> 2.34).
constexpr int64_t kPrefetchMinBytes = int64_t{8} << 20;
// Whether a depthwise call (NHWC: the prefetched ranges are whole rows) should
// prefetch: its input and out_backprop, of `item` bytes per element, exceed
// kPrefetchMinBytes.
inline bool WorthPrefetching(const ConvGeometry& g, int64_t item) {
  const int64_t elems =
      g.batch * (g.in_rows * g.in_cols * g.in_depth + g.out_rows * g.out_cols * g.out_depth);
  return !g.nchw && elems * item > kPrefetchMinBytes;
}

// Software prefetch (into L2) of up to four byte ranges, issued a few lines per
// Step() so that the loads overlap the caller's arithmetic instead of arriving
// in one burst.
class Prefetcher {
 public:
  void Add(const void* p, int64_t bytes) {
    if (n_ < kRanges && bytes > 0) {
      begin_[n_] = static_cast<const char*>(p);
      end_[n_] = begin_[n_] + bytes;
      ++n_;
    }
  }
  // Plans to finish within `steps` calls of Step().
  void Spread(int64_t steps) {
    int64_t lines = 0;
    for (int r = 0; r < n_; ++r) lines += (end_[r] - begin_[r] + 63) / 64;
    per_step_ = (lines + std::max<int64_t>(steps, 1) - 1) / std::max<int64_t>(steps, 1);
  }
  void Step() {
    for (int64_t e = 0; e < per_step_ && cur_ < n_; ++e) {
      __builtin_prefetch(begin_[cur_], 0, 2);
      begin_[cur_] += 64;
      if (begin_[cur_] >= end_[cur_]) ++cur_;
    }
  }

 private:
  static constexpr int kRanges = 4;
  const char* begin_[kRanges] = {};
  const char* end_[kRanges] = {};
  int n_ = 0, cur_ = 0;
  int64_t per_step_ = 0;
};

// A tiny cache of packed rows, keyed by row index, for a worker that walks
// output rows in order: `slots` rows of `row_elems` elements each.
template <typename A>
class RowCache {
 public:
  bool Init(int64_t slots, int64_t row_elems) {
    slots_ = slots;
    row_elems_ = row_elems;
    keys_.assign(slots, -1);
    stamp_.assign(slots, 0);
    return data_.Reset(slots * row_elems);
  }
  // Returns the slot holding `key`, packing it with fill(ptr) if absent. The
  // least recently used slot is replaced; callers need at most `slots` rows
  // at once.
  template <typename Fill>
  const A* Get(int64_t key, Fill fill) {
    ++clock_;
    int64_t victim = 0;
    for (int64_t s = 0; s < slots_; ++s) {
      if (keys_[s] == key) {
        stamp_[s] = clock_;
        return data_.get() + s * row_elems_;
      }
      if (stamp_[s] < stamp_[victim]) victim = s;
    }
    keys_[victim] = key;
    stamp_[victim] = clock_;
    A* p = data_.get() + victim * row_elems_;
    fill(p);
    return p;
  }

 private:
  int64_t slots_ = 0, row_elems_ = 0, clock_ = 0;
  std::vector<int64_t> keys_, stamp_;
  Scratch<A> data_;
};

}  // namespace internal
}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_CPU_CPU_COMMON_H_
