// bfloat16 Conv2DBackpropFilter with AMX tile products (TDPBF16PS).
//
// With P patch rows, K = fh * fw * C filter elements (m) and Cout output channels (co),
//   dW^T[co, m] = sum over patch rows p of dy[p, co] * col[p, m],
// one GEMM with the patch rows as the reduction, taken 32 rows (one step) at a time. Operands
// are packed, a chunk of steps at a time, into 1 KiB tiles:
//   A[cb][step]: 16 output channels x 32 patch rows of dy (dy transposed);
//   B[mb][step]: 16 pairs of patch rows x 16 filter elements, a pair's two values adjacent (the
//                layout TDPBF16PS reads): two im2col rows interleaved, read straight from the
//                input when C is a multiple of 16;
// zero-padded to whole tiles (channels to 16, patch rows to whole steps). A block of up to 2 x 2
// float32 C tiles (32 channels x 32 filter elements) is loaded from the float32 accumulator,
// takes every step of the chunk (exact bfloat16 products, float32 sums: one rounding per pair of
// patch rows) and is stored back, exactly, so the chunk size never changes a result.
//
// Tasks: with 8 or more blocks, each task owns a rectangle of blocks (a range of filter-element
// blocks times a range of channel blocks), packs only its own part of A and B and runs all patch
// rows in order: one task per CPU, no barrier, and a result independent of the tasks. With fewer
// blocks, `splits` tasks (from the geometry) each take a contiguous range of patch rows into their
// own partial dW^T, summed in split order at the end. Chunks hold as many steps as let a block's A
// tiles stay in the L1 data cache (read at run time), within about 1 MiB of packed tiles.
// Scratch: those packed tiles per running task, and the float32 dW^T rounded up to whole tiles
// (times `splits`, at most 8 MiB more in all).
//
// AMX reads denormal inputs as zero and flushes denormal results, as TensorFlow's CPU ops run
// anyway (FTZ and DAZ set), the general core included. Infinities and NaNs are left to the
// general core, so that they propagate exactly as before, and so are products near float32's
// overflow (an FMA rounds product and sum once, AMX twice): the packing records the largest
// magnitude it packed and where one is out of bounds the result is discarded (kNotUsed).
#include "tf_ops/cc/kernels/cpu/conv2d_backprop_filter_amx_cpu.h"

#if TF_CONVGRAD_AMX_BUILD
#include <cpuid.h>
#include <immintrin.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#endif

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {
namespace internal {

#if !TF_CONVGRAD_AMX_BUILD

bool AmxBf16Usable() { return false; }

AmxRun Conv2DBackpropFilterAmx(const ConvGeometry&, const Eigen::bfloat16*, const Eigen::bfloat16*,
                               Eigen::bfloat16*, const ParallelFor&) {
  return AmxRun::kNotUsed;
}

#else

namespace {

constexpr int64_t kTileRows = 16;  // every tile: 16 rows of 64 bytes
constexpr int64_t kStep = 32;      // patch rows per tile product (16 bfloat16 pairs)
constexpr int64_t kTileElems = kTileRows * kStep;  // bfloat16 values in one A or B tile
constexpr int64_t kPackBudgetBytes = int64_t{1} << 20;
constexpr int64_t kMinBlocks = 8;
constexpr int64_t kSplitMinRows = 512;  // patch rows per split, at least
constexpr int64_t kPartialBudgetBytes = int64_t{8} << 20;

// Products must stay below 2^122 (float32 overflows at 2^128): their operands' exponents add up
// to at most kMaxProductExp.
constexpr int kBias = 127;
constexpr int kMaxProductExp = 120;

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

bool QueryAmxBf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  if (!(d & (1u << 22)) || !(d & (1u << 24))) return false;  // AMX-BF16, AMX-TILE
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t tile_state = uint64_t{3} << 17;  // XTILECFG and XTILEDATA
  if (((uint64_t{hi} << 32 | lo) & tile_state) != tile_state) return false;
  // Linux gives a process the tile data state on request: ARCH_REQ_XCOMP_PERM (0x1023) for
  // XFEATURE_XTILEDATA (18). Granted once, for every thread of the process.
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

// The largest magnitude among the bfloat16 values packed, as its bit pattern without the sign
// (an exponent of 255, a pattern >= 0x7f80, is an infinity or a NaN), kept in a vector while
// packing: Add() takes 32 values at a time.
class MaxScan {
 public:
  void Add(__m512i v) {
    max_ = _mm512_max_epu16(max_, _mm512_and_si512(v, _mm512_set1_epi16(0x7fff)));
  }
  void FoldInto(int* pattern) const {
    alignas(64) uint16_t lanes[32];
    _mm512_store_si512(lanes, max_);
    for (int l = 0; l < 32; ++l) *pattern = std::max<int>(*pattern, lanes[l]);
  }

 private:
  __m512i max_ = _mm512_setzero_si512();
};

// Whether AMX gives what float32 FMAs in another order give: no infinity or NaN (their
// propagation is left to the general core) and no product near float32's overflow. (Denormals
// are read as zero and denormal sums flushed, as TensorFlow runs its ops: with FTZ and DAZ set.)
bool MagnitudesOk(int x_pattern, int dy_pattern) {
  if (x_pattern >= 0x7f80 || dy_pattern >= 0x7f80) return false;
  return (x_pattern >> 7) + (dy_pattern >> 7) - 2 * kBias <= kMaxProductExp;
}

// Lane i holds i * stride: gather indices for 16 elements `stride` apart.
inline __m512i StrideIndex(int64_t stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(static_cast<int>(stride)));
}

// dst[0:n] = src[0:n], and dst[0:n] = 0: short runs (a few channels) in one or two vectors.
inline void CopyRun(uint16_t* dst, const uint16_t* src, int64_t n) {
  int64_t e = 0;
  for (; e + 32 <= n; e += 32) _mm512_storeu_si512(dst + e, _mm512_loadu_si512(src + e));
  if (e < n) {
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (n - e)) - 1);
    _mm512_mask_storeu_epi16(dst + e, m, _mm512_maskz_loadu_epi16(m, src + e));
  }
}
inline void ZeroRun(uint16_t* dst, int64_t n) {
  int64_t e = 0;
  for (; e + 32 <= n; e += 32) _mm512_storeu_si512(dst + e, _mm512_setzero_si512());
  if (e < n) {
    _mm512_mask_storeu_epi16(dst + e, static_cast<__mmask32>((uint64_t{1} << (n - e)) - 1),
                             _mm512_setzero_si512());
  }
}

// Packs the tiles of one chunk for one task: the task's filter-element blocks [mb_lo, mb_hi) of B
// and channel blocks [cb_lo, cb_hi) of A, step by step (layout in the file comment).
struct Packing {
  const ConvGeometry& g;
  const uint16_t* x;   // NHWC input, bfloat16 bits
  const uint16_t* dy;  // NHWC out_backprop
  int64_t P, K, Kp, steps, out_hw, taps;

  // Offset in x of patch row p's tap t, for every tap (-1: outside the input, or p >= end).
  void TapOffsets(int64_t p, int64_t end, int64_t* off) const {
    if (p >= end) {
      std::fill(off, off + taps, int64_t{-1});
      return;
    }
    const int64_t b = p / out_hw, ho = (p % out_hw) / g.out_cols, wo = p % g.out_cols;
    for (int64_t i = 0; i < g.filter_rows; ++i) {
      const int64_t h = ho * g.stride_rows - g.pad_top + i * g.dilation_rows;
      for (int64_t j = 0; j < g.filter_cols; ++j) {
        const int64_t w = wo * g.stride_cols - g.pad_left + j * g.dilation_cols;
        const bool inside = h >= 0 && h < g.in_rows && w >= 0 && w < g.in_cols;
        off[i * g.filter_cols + j] =
            inside ? ((b * g.in_rows + h) * g.in_cols + w) * g.in_depth : -1;
      }
    }
  }

  // Patch row p's im2col row into row[0:Kp] (zeros outside the input, for p >= end and past K).
  // A filter row whose taps are all inside and adjacent in x (tap spacing 1) is one run.
  void Im2colRow(int64_t p, int64_t end, uint16_t* row) const {
    const int64_t C = g.in_depth, fw = g.filter_cols, run = fw * C;
    if (p >= end) {
      ZeroRun(row, Kp);
      return;
    }
    const int64_t b = p / out_hw, ho = (p % out_hw) / g.out_cols, wo = p % g.out_cols;
    const int64_t w0 = wo * g.stride_cols - g.pad_left;
    const bool row_run =
        (fw == 1 || g.dilation_cols == 1) && w0 >= 0 && w0 + (fw - 1) * g.dilation_cols < g.in_cols;
    for (int64_t i = 0; i < g.filter_rows; ++i) {
      uint16_t* dst = row + i * run;
      const int64_t h = ho * g.stride_rows - g.pad_top + i * g.dilation_rows;
      if (h < 0 || h >= g.in_rows) {
        ZeroRun(dst, run);
        continue;
      }
      const uint16_t* src = x + ((b * g.in_rows + h) * g.in_cols) * C;
      if (row_run) {
        CopyRun(dst, src + w0 * C, run);
        continue;
      }
      for (int64_t j = 0; j < fw; ++j) {
        const int64_t w = w0 + j * g.dilation_cols;
        if (w < 0 || w >= g.in_cols) {
          ZeroRun(dst + j * C, C);
        } else {
          CopyRun(dst + j * C, src + w * C, C);
        }
      }
    }
    ZeroRun(row + K, Kp - K);
  }

  // Step s of the chunk at patch row p0. scratch: kStep * taps int64 and, when C is not a
  // multiple of 16, kStep * Kp uint16 (the step's im2col rows).
  void Pack(int64_t p0, int64_t end, int64_t s, int64_t mb_lo, int64_t mb_hi, int64_t cb_lo,
            int64_t cb_hi, uint16_t* a, uint16_t* b, int64_t* offs, uint16_t* rows, MaxScan* scan_x,
            MaxScan* scan_dy) const {
    const int64_t C = g.in_depth, Cout = g.out_depth, ps = p0 + s * kStep;
    // Locals, so that the compiler keeps them in registers through the loops.
    const uint16_t* const xs = x;
    const uint16_t* const dys = dy;
    MaxScan sx = *scan_x, sdy = *scan_dy;
    const bool whole_blocks = C % kTileRows == 0;  // every block of 16 lies in one tap
    for (int64_t r = 0; r < kStep; ++r) {
      if (whole_blocks) {
        TapOffsets(ps + r, end, offs + r * taps);
      } else {
        Im2colRow(ps + r, end, rows + r * Kp);
      }
    }
    const __m256i zero = _mm256_setzero_si256();
    auto pair = [](__m256i lo, __m256i hi) {
      return _mm512_or_si512(_mm512_cvtepu16_epi32(lo),
                             _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
    };
    // B: tile row q holds patch rows 2q and 2q + 1 of the block's 16 filter elements, interleaved.
    // Two blocks of one tap at once where 32 channels are whole: one 64-byte load per patch
    // row, two interleaving permutes.
    alignas(64) static constexpr uint16_t kFirstHalf[32] = {
        0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
        8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
    const __m512i first_half = _mm512_load_si512(kFirstHalf);
    const __m512i second_half = _mm512_add_epi16(first_half, _mm512_set1_epi16(16));
    for (int64_t mb = mb_lo; mb < mb_hi; ++mb) {
      uint16_t* tile = b + ((mb - mb_lo) * steps + s) * kTileElems;
      const int64_t m = mb * kTileRows, t = m / C, c = m % C;
      if (whole_blocks && c % 32 == 0 && c + 32 <= C && mb + 1 < mb_hi) {
        uint16_t* tile2 = tile + steps * kTileElems;
        for (int64_t q = 0; q < kStep / 2; ++q) {
          const int64_t o0 = offs[2 * q * taps + t], o1 = offs[(2 * q + 1) * taps + t];
          const __m512i lo = o0 < 0 ? _mm512_setzero_si512() : _mm512_loadu_si512(xs + o0 + c);
          const __m512i hi = o1 < 0 ? _mm512_setzero_si512() : _mm512_loadu_si512(xs + o1 + c);
          const __m512i v0 = _mm512_permutex2var_epi16(lo, first_half, hi);
          const __m512i v1 = _mm512_permutex2var_epi16(lo, second_half, hi);
          sx.Add(v0);
          sx.Add(v1);
          _mm512_store_si512(tile + q * kStep, v0);
          _mm512_store_si512(tile2 + q * kStep, v1);
        }
        ++mb;
        continue;
      }
      for (int64_t q = 0; q < kStep / 2; ++q) {
        __m256i lo, hi;
        if (whole_blocks) {
          const int64_t o0 = offs[2 * q * taps + t], o1 = offs[(2 * q + 1) * taps + t];
          lo = o0 < 0 ? zero : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + o0 + c));
          hi = o1 < 0 ? zero : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + o1 + c));
        } else {
          lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + 2 * q * Kp + m));
          hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + (2 * q + 1) * Kp + m));
        }
        const __m512i v = pair(lo, hi);
        sx.Add(v);
        _mm512_store_si512(tile + q * kStep, v);
      }
    }
    // A: for each pair q, the pair's 16 channels interleaved (as B), then transposed: tile row c
    // holds channel c's 16 pairs.
    alignas(64) uint32_t pairs[kTileRows * kTileRows];
    const __m512i gather_index = StrideIndex(kTileRows);
    for (int64_t cb = cb_lo; cb < cb_hi; ++cb) {
      const int64_t c0 = cb * kTileRows;
      const __mmask16 mask =
          static_cast<__mmask16>((uint32_t{1} << std::min<int64_t>(kTileRows, Cout - c0)) - 1);
      for (int64_t q = 0; q < kStep / 2; ++q) {
        const int64_t pa = ps + 2 * q, pb = pa + 1;
        const __m256i lo = pa < end ? _mm256_maskz_loadu_epi16(mask, dys + pa * Cout + c0) : zero;
        const __m256i hi = pb < end ? _mm256_maskz_loadu_epi16(mask, dys + pb * Cout + c0) : zero;
        const __m512i v = pair(lo, hi);
        sdy.Add(v);
        _mm512_store_si512(pairs + q * kTileRows, v);
      }
      uint16_t* tile = a + ((cb - cb_lo) * steps + s) * kTileElems;
      for (int64_t c = 0; c < kTileRows; ++c) {
        _mm512_store_si512(tile + c * kStep, _mm512_i32gather_epi32(gather_index, pairs + c, 4));
      }
    }
    *scan_x = sx;
    *scan_dy = sdy;
  }
};

__attribute__((target("amx-tile"))) void ConfigureTiles() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kTileRows;
    cfg.colsb[t] = 64;
  }
  // Not _tile_loadconfig: gcc 12's names only the first 8 bytes of the configuration as the
  // instruction's operand, and may then drop the stores to the rest.
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

__attribute__((target("amx-tile"))) void ReleaseTiles() { _tile_release(); }

// c[0:16*MB, 0:16*NB] (float, row stride ldc elements) += sum over the chunk's steps of
// A tiles a[i * a_next + s * kTileElems] times B tiles b[j * b_next + s * kTileElems]; with
// `first`, c's old values are taken as zeros (not read).
template <int MB, int NB>
__attribute__((target("amx-tile,amx-bf16"))) void TileBlock(float* c, int64_t ldc, bool first,
                                                            const uint16_t* a, int64_t a_next,
                                                            const uint16_t* b, int64_t b_next,
                                                            int64_t steps) {
  const int64_t ldc_bytes = ldc * sizeof(float);
  float* c1 = c + kTileRows * ldc;
  if (first) {
    _tile_zero(0);
    if constexpr (NB == 2) _tile_zero(1);
    if constexpr (MB == 2) _tile_zero(2);
    if constexpr (MB == 2 && NB == 2) _tile_zero(3);
  } else {
    _tile_loadd(0, c, ldc_bytes);
    if constexpr (NB == 2) _tile_loadd(1, c + kTileRows, ldc_bytes);
    if constexpr (MB == 2) _tile_loadd(2, c1, ldc_bytes);
    if constexpr (MB == 2 && NB == 2) _tile_loadd(3, c1 + kTileRows, ldc_bytes);
  }
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t off = s * kTileElems;
    _tile_loadd(4, a + off, 64);
    if constexpr (MB == 2) _tile_loadd(5, a + a_next + off, 64);
    _tile_loadd(6, b + off, 64);
    if constexpr (NB == 2) _tile_loadd(7, b + b_next + off, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NB == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (MB == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (MB == 2 && NB == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, ldc_bytes);
  if constexpr (NB == 2) _tile_stored(1, c + kTileRows, ldc_bytes);
  if constexpr (MB == 2) _tile_stored(2, c1, ldc_bytes);
  if constexpr (MB == 2 && NB == 2) _tile_stored(3, c1 + kTileRows, ldc_bytes);
}

// dW[m0 + m, co0 + co] = the sum over the parts, in order, of part[co * ld + m] (one C tile,
// transposed), rounded once, for m < m_n and co < co_n.
void FinishTile(const float* part0, int64_t part_stride, int64_t parts, int64_t ld, int64_t co0,
                int64_t co_n, int64_t m0, int64_t m_n, int64_t Cout, Eigen::bfloat16* dw) {
  const __m512i index = StrideIndex(ld);
  const __mmask16 mask = static_cast<__mmask16>((uint32_t{1} << co_n) - 1);
  for (int64_t m = 0; m < m_n; ++m) {
    __m512 v = _mm512_i32gather_ps(index, part0 + m, 4);
    for (int64_t sp = 1; sp < parts; ++sp) {
      v = _mm512_add_ps(v, _mm512_i32gather_ps(index, part0 + sp * part_stride + m, 4));
    }
    _mm256_mask_storeu_epi16(dw + (m0 + m) * Cout + co0, mask,
                             Round16<Eigen::bfloat16>(reinterpret_cast<Vec<float> >(v)));
  }
}

}  // namespace

// CPUs this process may run on: how many tasks are worth making (never what they compute).
int64_t UsableCpus() {
  static const int64_t cpus = [] {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof(set), &set) == 0 ? int64_t{CPU_COUNT(&set)} : int64_t{1};
  }();
  return std::max<int64_t>(cpus, 1);
}

// Patch rows per chunk for a task of km filter elements and mc channels: the two A tiles of a
// block take every step of a chunk while they stay in the L1 data cache with room for the B
// tiles (half of it), and one chunk's packed tiles stay within kPackBudgetBytes. No sum depends
// on it.
int64_t ChunkRows(int64_t km, int64_t mc) {
  static const int64_t l1_steps = [] {
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return std::max<int64_t>(4, (l1 > 0 ? l1 : 32768) / 2 / (2 * kTileElems * 2));
  }();
  const int64_t budget_steps = kPackBudgetBytes / ((km + mc) * 2 * kStep);
  return kStep * std::max<int64_t>(4, std::min(l1_steps, budget_steps));
}

bool AmxBf16Usable() {
  static const bool usable = QueryAmxBf16();
  return usable;
}

AmxRun Conv2DBackpropFilterAmx(const ConvGeometry& g, const Eigen::bfloat16* input,
                               const Eigen::bfloat16* out_backprop,
                               Eigen::bfloat16* filter_backprop, const ParallelFor& parallel_for) {
  if (g.nchw || g.groups != 1 || !AmxBf16Usable()) return AmxRun::kNotUsed;
  const int64_t C = g.in_depth, Cout = g.out_depth, taps = g.filter_rows * g.filter_cols;
  const int64_t K = taps * C;
  const int64_t P = g.batch * g.out_rows * g.out_cols;
  const int64_t Kp = RoundUp(K, kTileRows), Mp = RoundUp(Cout, kTileRows);
  const int64_t mblocks = Kp / kTileRows, cblocks = Mp / kTileRows;
  const int64_t mpairs = CeilDiv(mblocks, 2), cpairs = CeilDiv(cblocks, 2);
  const int64_t acc_elems = Mp * Kp;

  // Which sums each float32 element takes, in which order, depends on the geometry only: with
  // fewer than kMinBlocks blocks, `splits` partial sums over every splits-th chunk; otherwise
  // one sum over the chunks in order.
  const int64_t blocks = mpairs * cpairs;
  int64_t splits = 1;
  if (blocks < kMinBlocks && P > kSplitMinRows) {
    splits = std::min(
        {kMinBlocks, CeilDiv(P, kSplitMinRows), 1 + kPartialBudgetBytes / (acc_elems * 4)});
    if (splits > 2) splits -= splits % 2;
  }
  // Tasks own disjoint blocks: n_m groups of filter-element pairs times n_c groups of channel
  // pairs, each packing only its own part of B and of A (A is packed n_m times, B n_c times: the
  // grouping with the least packing that gives every CPU a task). This never changes a result.
  int64_t n_m = 1, n_c = 1;
  if (splits == 1) {
    const int64_t want = std::min(blocks, UsableCpus());
    int64_t best = -1;
    // Without whole blocks (C not a multiple of 16) every task builds whole im2col rows: split
    // the channels only, where there are enough of them.
    const int64_t m_max = C % kTileRows != 0 && cpairs >= want ? 1 : mpairs;
    for (int64_t m = 1; m <= m_max; ++m) {
      const int64_t c = std::min(cpairs, CeilDiv(want, m));
      if (m * c < want) continue;
      const int64_t cost = m * Mp + c * Kp;
      if (best < 0 || cost < best) {
        best = cost;
        n_m = m;
        n_c = c;
      }
    }
  }
  const int64_t tasks = splits > 1 ? splits : n_m * n_c;
  // A task's largest share of the blocks, and the chunk its packing budget allows.
  const int64_t task_kb = 2 * CeilDiv(mpairs, n_m) * kTileRows;
  const int64_t task_mb = 2 * CeilDiv(cpairs, n_c) * kTileRows;
  const int64_t chunk = std::min(RoundUp(P, kStep), ChunkRows(task_kb, task_mb));
  const int64_t steps = chunk / kStep;

  // Every task's first chunk zeroes its tiles: nothing to clear here.
  Scratch<float> acc(splits * acc_elems);
  if (!acc.ok()) return AmxRun::kOutOfMemory;

  const Packing packing{g,
                        reinterpret_cast<const uint16_t*>(input),
                        reinterpret_cast<const uint16_t*>(out_backprop),
                        P,
                        K,
                        Kp,
                        steps,
                        g.out_rows * g.out_cols,
                        taps};
  int seen_x = 0, seen_dy = 0;  // MaxScan patterns
  std::mutex seen_mu;
  std::atomic<bool> failed{false};
  const int64_t next = steps * kTileElems;  // from one block's tiles to the next block's

  // Blocks [mb_lo, mb_hi) x [cb_lo, cb_hi) over patch rows [p_begin, p_end), in order, into
  // c_base (p_begin a multiple of kStep). The chunk size never changes a sum: C tiles are stored
  // and reloaded exactly between chunks.
  auto run = [&](int64_t mb_lo, int64_t mb_hi, int64_t cb_lo, int64_t cb_hi, int64_t p_begin,
                 int64_t p_end, float* c_base, bool finish) {
    Scratch<uint16_t> a((cb_hi - cb_lo) * next), b((mb_hi - mb_lo) * next),
        rows(C % kTileRows == 0 ? 1 : kStep * Kp);
    Scratch<int64_t> offs(kStep * taps);
    if (!a.ok() || !b.ok() || !rows.ok() || !offs.ok()) {
      failed = true;
      return;
    }
    MaxScan sx, sdy;
    ConfigureTiles();
    for (int64_t p0 = p_begin; p0 < p_end; p0 += chunk) {
      for (int64_t s = 0; s < steps; ++s) {
        packing.Pack(p0, p_end, s, mb_lo, mb_hi, cb_lo, cb_hi, a.get(), b.get(), offs.get(),
                     rows.get(), &sx, &sdy);
      }
      const bool first = p0 == p_begin, last = p0 + chunk >= p_end;
      for (int64_t cb = cb_lo; cb < cb_hi; cb += 2) {
        const uint16_t* at = a.get() + (cb - cb_lo) * next;
        const bool two_c = cb + 1 < cb_hi;
        for (int64_t mb = mb_lo; mb < mb_hi; mb += 2) {
          float* c = c_base + cb * kTileRows * Kp + mb * kTileRows;
          const uint16_t* bt = b.get() + (mb - mb_lo) * next;
          const bool two_m = mb + 1 < mb_hi;
          if (two_c && two_m) {
            TileBlock<2, 2>(c, Kp, first, at, next, bt, next, steps);
          } else if (two_c) {
            TileBlock<2, 1>(c, Kp, first, at, next, bt, next, steps);
          } else if (two_m) {
            TileBlock<1, 2>(c, Kp, first, at, next, bt, next, steps);
          } else {
            TileBlock<1, 1>(c, Kp, first, at, next, bt, next, steps);
          }
          if (last && finish) {
            // The block's tiles are final: round them into dW while they are in cache.
            for (int64_t i = cb; i < cb + (two_c ? 2 : 1); ++i) {
              for (int64_t j = mb; j < mb + (two_m ? 2 : 1); ++j) {
                const int64_t co0 = i * kTileRows, m0 = j * kTileRows;
                if (co0 >= Cout || m0 >= K) continue;
                FinishTile(c_base + co0 * Kp + m0, 0, 1, Kp, co0, std::min(kTileRows, Cout - co0),
                           m0, std::min(kTileRows, K - m0), Cout, filter_backprop);
              }
            }
          }
        }
      }
    }
    ReleaseTiles();
    std::lock_guard<std::mutex> lock(seen_mu);
    sx.FoldInto(&seen_x);
    sdy.FoldInto(&seen_dy);
  };
  parallel_for(tasks, CeilDiv(P, tasks) * K * Cout / 256, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      if (splits > 1) {
        // Split t: patch rows [t * P / splits, (t + 1) * P / splits), in whole steps.
        const int64_t steps_total = CeilDiv(P, kStep);
        run(0, mblocks, 0, cblocks, kStep * (steps_total * t / splits),
            std::min(P, kStep * (steps_total * (t + 1) / splits)), acc.get() + t * acc_elems,
            false);
      } else {
        const int64_t gm = t % n_m, gc = t / n_m;
        const int64_t mb_lo = std::min(mblocks, 2 * (mpairs * gm / n_m));
        const int64_t mb_hi = std::min(mblocks, 2 * (mpairs * (gm + 1) / n_m));
        const int64_t cb_lo = std::min(cblocks, 2 * (cpairs * gc / n_c));
        const int64_t cb_hi = std::min(cblocks, 2 * (cpairs * (gc + 1) / n_c));
        if (mb_lo < mb_hi && cb_lo < cb_hi) run(mb_lo, mb_hi, cb_lo, cb_hi, 0, P, acc.get(), true);
      }
    }
  });
  if (failed) return AmxRun::kOutOfMemory;
  if (!MagnitudesOk(seen_x, seen_dy)) return AmxRun::kNotUsed;

  if (splits > 1) {
    // dW[m, co] = dW^T[co, m], the splits summed in order, rounded once, a tile at a time.
    ForRanges(parallel_for, cblocks * mblocks, kMaxTasks, kTileElems * splits,
              [&](int64_t t_begin, int64_t t_end) {
                for (int64_t t = t_begin; t < t_end; ++t) {
                  const int64_t co0 = (t / mblocks) * kTileRows, m0 = (t % mblocks) * kTileRows;
                  FinishTile(acc.get() + co0 * Kp + m0, acc_elems, splits, Kp, co0,
                             std::min(kTileRows, Cout - co0), m0, std::min(kTileRows, K - m0), Cout,
                             filter_backprop);
                }
              });
  }
  return AmxRun::kDone;
}

#endif  // TF_CONVGRAD_AMX_BUILD

}  // namespace internal
}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
