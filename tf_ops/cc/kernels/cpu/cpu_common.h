// Helpers shared by the CPU cores: accumulator types and conversions, vectors,
// aligned scratch, task ranges, packing of rows into channel-contiguous
// accumulator buffers, prefetch and the row cache. What only one op uses lives
// in that op's files.
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
