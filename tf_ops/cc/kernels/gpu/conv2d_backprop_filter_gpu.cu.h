// Conv2DBackpropFilter on the GPU (grouped or not): a direct, deterministic
// implicit GEMM.
//
// For group g (G groups, Cf = in_depth / G input and Ng = out_depth / G output
// channels per group) and filter tap t = i * filter_cols + j:
//   dW[i, j, ci, g * Ng + n] = sum_k A[t * Cf + ci, k] * B[k, n]
//   A[t * Cf + ci, k] = x[b, h(ho, i), w(wo, j), g * Cf + ci]   (0 outside the input)
//   B[k, n]           = dy[b, ho, wo, g * Ng + n]
// with k = (b * out_rows + ho) * out_cols + wo running over every output pixel,
// h(ho, i) = ho * stride_rows - pad_top + i * dilation_rows and
// w(wo, j) = wo * stride_cols - pad_left + j * dilation_cols. The GEMM's rows
// m = t * Cf + ci are exactly the HWIO row order of dW, so block tiles write
// straight into it (row stride out_depth, column offset g * Ng).
// EX: 3x3 filter, Cf = 64: m = 70 is tap t = 1 (i = 0, j = 1), ci = 6.
//
// Each block computes one BM x BN tile of one group over one contiguous slice
// ("split") of k, stepping through it BK pixels at a time in increasing order:
// A and B tiles are gathered from x and dy (coalesced along the channels for
// NHWC, along the pixels for NCHW) into shared memory, double-buffered, and
// multiplied into per-thread accumulators. With several splits each writes
// a partial dW and SumPartials adds them in split order; the split count
// depends only on the shape. So the result is bitwise reproducible.
//
// Two engines:
// * SIMT (all types): float/double FMAs, 128x128 or 64x64 tiles; half and
//   bfloat16 are widened to float when staged in shared memory.
// * Tensor cores (half, bfloat16; sm_80+): WMMA 16x16x16 fragments with float
//   accumulators, 128x128 or 128x64 tiles.
// Groups with Cf == 1 are a depthwise filter gradient and go to the depthwise
// kernels instead (see conv_backprop_gpu_impl.cu.h).
#ifndef TF_OPS_CC_KERNELS_GPU_CONV2D_BACKPROP_FILTER_GPU_CU_H_
#define TF_OPS_CC_KERNELS_GPU_CONV2D_BACKPROP_FILTER_GPU_CU_H_

#include <cstdio>
#include <string>

#if !defined(TF_CONVGRAD_CUDA_EMULATION)
#include <mma.h>
#endif

#include "tf_ops/cc/kernels/gpu/gpu_common.cu.h"

namespace tf_convgrad {
namespace gpu {
namespace internal {

// The geometry as the kernels see it (PlanCbf copies the fields of
// TF_CONVGRAD_KERNEL_GEOMETRY), then what PlanCbf derives.
struct CbfParams {
#define TF_CONVGRAD_CBF_FIELD_(field) int64_t field;
  TF_CONVGRAD_KERNEL_GEOMETRY(TF_CONVGRAD_CBF_FIELD_)
#undef TF_CONVGRAD_CBF_FIELD_
  int64_t filter_in, group_out;  // Cf, Ng
  int64_t m_dim;                 // taps * Cf
  int64_t k_dim;                 // batch * out_rows * out_cols
  int64_t k_per_split;           // a multiple of the tile's BK
  int64_t tiles_m, tiles_n;
  // NHWC only: runs of the loader's width along m (A) or n (B) are contiguous
  // and aligned in memory (see PlanCbf), so each run is one vector load.
  int64_t vec_a, vec_b;
};

// A pixel k = (b, ho, wo) that moves forward through the reduction.
struct PixelPos {
  int64_t b, ho, wo;
  __device__ __forceinline__ void Set(const CbfParams& p, int64_t k) {
    const int64_t plane = p.out_rows * p.out_cols;
    b = k / plane;
    const int64_t rem = k - b * plane;
    ho = rem / p.out_cols;
    wo = rem - ho * p.out_cols;
  }
  __device__ __forceinline__ void Advance(const CbfParams& p, int64_t step) {
    AdvancePixel(p.out_rows, p.out_cols, step, b, ho, wo);
  }
};

// Row m of A: the filter tap's offsets and the input channel's offset in x.
// `channel` < 0 marks a row past m_dim.
struct ARow {
  int64_t di, dj, channel;
};
template <bool kNCHW>
__device__ __forceinline__ ARow MakeARow(const CbfParams& p, int64_t g, int64_t m) {
  ARow r{0, 0, -1};
  if (m < p.m_dim) {
    const int64_t t = m / p.filter_in;
    const int64_t ci = m - t * p.filter_in;
    const int64_t i = t / p.filter_cols;
    const int64_t j = t - i * p.filter_cols;
    r.di = i * p.dilation_rows;
    r.dj = j * p.dilation_cols;
    const int64_t c = g * p.filter_in + ci;
    r.channel = kNCHW ? c * p.in_rows * p.in_cols : c;
  }
  return r;
}
// Column n of B: the output channel's offset in dy (< 0 past Ng).
template <bool kNCHW>
__device__ __forceinline__ int64_t MakeBCol(const CbfParams& p, int64_t g, int64_t n) {
  if (n >= p.group_out) return -1;
  const int64_t co = g * p.group_out + n;
  return kNCHW ? co * p.out_rows * p.out_cols : co;
}

template <typename T, bool kNCHW>
__device__ __forceinline__ T LoadA(const CbfParams& p, const T* __restrict__ x, const PixelPos& k,
                                   bool k_ok, const ARow& row) {
  if (k_ok && row.channel >= 0) {
    const int64_t h = k.ho * p.stride_rows - p.pad_top + row.di;
    const int64_t w = k.wo * p.stride_cols - p.pad_left + row.dj;
    if (h >= 0 && h < p.in_rows && w >= 0 && w < p.in_cols) {
      const int64_t image = k.b * p.in_rows * p.in_cols * p.in_depth;
      return x[image + (kNCHW ? row.channel + h * p.in_cols + w
                              : (h * p.in_cols + w) * p.in_depth + row.channel)];
    }
  }
  return T(0.0f);
}

template <typename T, bool kNCHW>
__device__ __forceinline__ T LoadB(const CbfParams& p, const T* __restrict__ dy, const PixelPos& k,
                                   int64_t k_linear, bool k_ok, int64_t col) {
  if (k_ok && col >= 0) {
    return dy[kNCHW ? k.b * p.out_depth * p.out_rows * p.out_cols + col + k.ho * p.out_cols + k.wo
                    : k_linear * p.out_depth + col];
  }
  return T(0.0f);
}

// NHWC runs: kN consecutive rows m (one tap, consecutive channels) of A, or
// kN consecutive columns n of B, in one aligned vector load. `row`/`col` are
// the run's first; with vec_a/vec_b set the whole run is valid or none is.
template <typename T, int kN>
__device__ __forceinline__ void LoadARunNhwc(const CbfParams& p, const T* __restrict__ x,
                                             const PixelPos& k, bool k_ok, const ARow& row,
                                             T (&out)[kN]) {
  if (k_ok && row.channel >= 0) {
    const int64_t h = k.ho * p.stride_rows - p.pad_top + row.di;
    const int64_t w = k.wo * p.stride_cols - p.pad_left + row.dj;
    if (h >= 0 && h < p.in_rows && w >= 0 && w < p.in_cols) {
      const int64_t image = k.b * p.in_rows * p.in_cols * p.in_depth;
      const AlignedVec<T, kN> v = *reinterpret_cast<const AlignedVec<T, kN>*>(
          x + image + (h * p.in_cols + w) * p.in_depth + row.channel);
#pragma unroll
      for (int e = 0; e < kN; ++e) out[e] = v.e[e];
      return;
    }
  }
#pragma unroll
  for (int e = 0; e < kN; ++e) out[e] = T(0.0f);
}

template <typename T, int kN>
__device__ __forceinline__ void LoadBRunNhwc(const CbfParams& p, const T* __restrict__ dy,
                                             int64_t k_linear, bool k_ok, int64_t col,
                                             T (&out)[kN]) {
  if (k_ok && col >= 0) {
    const AlignedVec<T, kN> v =
        *reinterpret_cast<const AlignedVec<T, kN>*>(dy + k_linear * p.out_depth + col);
#pragma unroll
    for (int e = 0; e < kN; ++e) out[e] = v.e[e];
    return;
  }
#pragma unroll
  for (int e = 0; e < kN; ++e) out[e] = T(0.0f);
}

// Decodes blockIdx.x into (group, m tile, n tile).
__device__ __forceinline__ void DecodeTile(const CbfParams& p, int64_t& g, int64_t& tm,
                                           int64_t& tn) {
  int64_t bx = blockIdx.x;
  tn = bx % p.tiles_n;
  bx /= p.tiles_n;
  tm = bx % p.tiles_m;
  g = bx / p.tiles_m;
}

// ---------------------------------------------------------------------------
// SIMT engine
// ---------------------------------------------------------------------------

template <int kBM, int kBK, int kTM>
struct SimtTile {
  static constexpr int BM = kBM, BN = kBM, BK = kBK, TM = kTM, TN = kTM;
  static constexpr int LD = kBM + 4;  // keeps 16-byte rows, staggers banks
  static_assert((kBM / kTM) * (kBM / kTM) == kThreads, "one TM x TN block per thread");
  static_assert(kBM * kBK == 4 * kThreads, "4 elements of A and of B per thread per step");
  static_assert(kTM % 4 == 0, "4-wide shared-memory reads");
};
using SimtLarge = SimtTile<128, 8, 8>;
using SimtSmall = SimtTile<64, 16, 4>;

template <typename T, bool kNCHW, typename Tile>
__global__ void __launch_bounds__(kThreads)
    CbfSimtKernel(const CbfParams p, const T* __restrict__ x, const T* __restrict__ dy,
                  Acc<T>* __restrict__ partial, T* __restrict__ out) {
  using A = Acc<T>;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, TM = Tile::TM, TN = Tile::TN;
  constexpr int LD = Tile::LD;
  constexpr int kColGroup = BN * 4 / TN;  // distance between a thread's 4-column groups
  __shared__ __align__(16) A As[2][BK][LD];
  __shared__ __align__(16) A Bs[2][BK][LD];

  const int tid = threadIdx.x;
  int64_t g, tm, tn;
  DecodeTile(p, g, tm, tn);
  const int64_t k_begin = int64_t(blockIdx.y) * p.k_per_split;
  const int64_t k_end = k_begin + p.k_per_split < p.k_dim ? k_begin + p.k_per_split : p.k_dim;

  // Loader: one pixel row kk of the tile and four A rows / B columns.
  int kk, mm[4];
  if (kNCHW) {
    kk = tid % BK;
#pragma unroll
    for (int l = 0; l < 4; ++l) mm[l] = tid / BK + l * (kThreads / BK);
  } else {
    kk = tid / (BM / 4);
#pragma unroll
    for (int l = 0; l < 4; ++l) mm[l] = (tid % (BM / 4)) * 4 + l;
  }
  ARow arow[4];
  int64_t bcol[4];
#pragma unroll
  for (int l = 0; l < 4; ++l) {
    arow[l] = MakeARow<kNCHW>(p, g, tm * BM + mm[l]);
    bcol[l] = MakeBCol<kNCHW>(p, g, tn * BN + mm[l]);
  }
  int64_t k = k_begin + kk;
  PixelPos pos;
  pos.Set(p, k);
  A ra[4], rb[4];
  auto load = [&]() {
    const bool k_ok = k < k_end;
    T va[4], vb[4];
    if (!kNCHW && p.vec_a) {
      LoadARunNhwc<T, 4>(p, x, pos, k_ok, arow[0], va);
    } else {
#pragma unroll
      for (int l = 0; l < 4; ++l) va[l] = LoadA<T, kNCHW>(p, x, pos, k_ok, arow[l]);
    }
    if (!kNCHW && p.vec_b) {
      LoadBRunNhwc<T, 4>(p, dy, k, k_ok, bcol[0], vb);
    } else {
#pragma unroll
      for (int l = 0; l < 4; ++l) vb[l] = LoadB<T, kNCHW>(p, dy, pos, k, k_ok, bcol[l]);
    }
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      ra[l] = ToAcc(va[l]);
      rb[l] = ToAcc(vb[l]);
    }
  };
  auto store = [&](int buf) {
    if (kNCHW) {
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        As[buf][kk][mm[l]] = ra[l];
        Bs[buf][kk][mm[l]] = rb[l];
      }
    } else {
      AlignedVec<A, 4> va, vb;
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        va.e[l] = ra[l];
        vb.e[l] = rb[l];
      }
      *reinterpret_cast<AlignedVec<A, 4>*>(&As[buf][kk][mm[0]]) = va;
      *reinterpret_cast<AlignedVec<A, 4>*>(&Bs[buf][kk][mm[0]]) = vb;
    }
  };

  const int ty = tid / (BN / TN);
  const int tx = tid % (BN / TN);
  A acc[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r) {
#pragma unroll
    for (int c = 0; c < TN; ++c) acc[r][c] = A(0);
  }
  const int64_t steps = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
  load();
  store(0);
  __syncthreads();
  for (int64_t step = 0; step < steps; ++step) {
    const int cur = static_cast<int>(step & 1);
    const bool more = step + 1 < steps;
    if (more) {
      k += BK;
      pos.Advance(p, BK);
      load();
    }
#pragma unroll
    for (int q = 0; q < BK; ++q) {
      A a[TM], b[TN];
#pragma unroll
      for (int r4 = 0; r4 < TM / 4; ++r4) {
        const AlignedVec<A, 4> v =
            *reinterpret_cast<const AlignedVec<A, 4>*>(&As[cur][q][ty * TM + r4 * 4]);
#pragma unroll
        for (int e = 0; e < 4; ++e) a[r4 * 4 + e] = v.e[e];
      }
#pragma unroll
      for (int c4 = 0; c4 < TN / 4; ++c4) {
        const AlignedVec<A, 4> v =
            *reinterpret_cast<const AlignedVec<A, 4>*>(&Bs[cur][q][c4 * kColGroup + tx * 4]);
#pragma unroll
        for (int e = 0; e < 4; ++e) b[c4 * 4 + e] = v.e[e];
      }
#pragma unroll
      for (int r = 0; r < TM; ++r) {
#pragma unroll
        for (int c = 0; c < TN; ++c) acc[r][c] += a[r] * b[c];
      }
    }
    if (more) store(cur ^ 1);
    __syncthreads();
  }

  const int64_t partial_base = int64_t(blockIdx.y) * p.m_dim * p.out_depth;
#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int64_t m = tm * BM + ty * TM + r;
    if (m >= p.m_dim) continue;
#pragma unroll
    for (int c = 0; c < TN; ++c) {
      const int64_t n = tn * BN + (c / 4) * kColGroup + tx * 4 + (c % 4);
      if (n >= p.group_out) continue;
      const int64_t e = m * p.out_depth + g * p.group_out + n;
      if (out != nullptr) {
        out[e] = FromAcc<T>(acc[r][c]);
      } else {
        partial[partial_base + e] = acc[r][c];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Tensor-core engine (half, bfloat16)
// ---------------------------------------------------------------------------

template <int kBN, int kWarpsM, int kWarpsN>
struct WmmaTile {
  static constexpr int BM = 128, BN = kBN, BK = 32;
  static constexpr int WM = kWarpsM, WN = kWarpsN;                // warps along m and n
  static constexpr int FM = BM / (WM * 16), FN = BN / (WN * 16);  // fragments per warp
  static constexpr int LDA = BM + 8, LDB = BN + 8;                // 16-byte rows, staggered banks
  static_assert(WM * WN * 32 == kThreads, "8 warps");
};
using WmmaWide = WmmaTile<128, 2, 4>;
using WmmaNarrow = WmmaTile<64, 4, 2>;

template <typename T, bool kNCHW, typename Tile>
__global__ void __launch_bounds__(kThreads)
    CbfWmmaKernel(const CbfParams p, const T* __restrict__ x, const T* __restrict__ dy,
                  float* __restrict__ partial, T* __restrict__ out) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  namespace wmma = nvcuda::wmma;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK;
  constexpr int LDA = Tile::LDA, LDB = Tile::LDB;
  // Per thread and step: NHWC loads kRowsK pixel rows x (BM / 16 | BN / 16)
  // consecutive channels; NCHW one pixel row x (BM / 8 | BN / 8) channels.
  constexpr int kRowsK = kNCHW ? 1 : 2;
  constexpr int kPerA = kNCHW ? BM / 8 : BM / 16;
  constexpr int kPerB = kNCHW ? BN / 8 : BN / 16;
  __shared__ __align__(32) T As[2][BK][LDA];
  __shared__ __align__(32) T Bs[2][BK][LDB];
  __shared__ __align__(32) float stage[kThreads / 32][16 * 16];
  __shared__ ARow arows[BM];
  __shared__ int64_t bcols[BN];

  const int tid = threadIdx.x;
  int64_t g, tm, tn;
  DecodeTile(p, g, tm, tn);
  const int64_t k_begin = int64_t(blockIdx.y) * p.k_per_split;
  const int64_t k_end = k_begin + p.k_per_split < p.k_dim ? k_begin + p.k_per_split : p.k_dim;
  if (tid < BM) arows[tid] = MakeARow<kNCHW>(p, g, tm * BM + tid);
  if (tid < BN) bcols[tid] = MakeBCol<kNCHW>(p, g, tn * BN + tid);

  // Loader mapping.
  int kk[kRowsK], a0, b0, stride_ab;
  if (kNCHW) {
    kk[0] = tid % BK;
    a0 = b0 = tid / BK;  // rows a0 + 8 * e
    stride_ab = kThreads / BK;
  } else {
    kk[0] = tid / 16;
    kk[kRowsK - 1] = tid / 16 + 16;
    a0 = (tid % 16) * kPerA;  // rows a0 + e
    b0 = (tid % 16) * kPerB;
    stride_ab = 1;
  }
  int64_t k[kRowsK];
  PixelPos pos[kRowsK];
#pragma unroll
  for (int r = 0; r < kRowsK; ++r) {
    k[r] = k_begin + kk[r];
    pos[r].Set(p, k[r]);
  }
  T ra[kRowsK][kPerA], rb[kRowsK][kPerB];
  __syncthreads();  // arows, bcols
  auto load = [&]() {
#pragma unroll
    for (int r = 0; r < kRowsK; ++r) {
      const bool k_ok = k[r] < k_end;
      if (!kNCHW && p.vec_a) {
        LoadARunNhwc<T, kPerA>(p, x, pos[r], k_ok, arows[a0], ra[r]);
      } else {
#pragma unroll
        for (int e = 0; e < kPerA; ++e) {
          ra[r][e] = LoadA<T, kNCHW>(p, x, pos[r], k_ok, arows[a0 + e * stride_ab]);
        }
      }
      if (!kNCHW && p.vec_b) {
        LoadBRunNhwc<T, kPerB>(p, dy, k[r], k_ok, bcols[b0], rb[r]);
      } else {
#pragma unroll
        for (int e = 0; e < kPerB; ++e) {
          rb[r][e] = LoadB<T, kNCHW>(p, dy, pos[r], k[r], k_ok, bcols[b0 + e * stride_ab]);
        }
      }
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int r = 0; r < kRowsK; ++r) {
      if (kNCHW) {
#pragma unroll
        for (int e = 0; e < kPerA; ++e) As[buf][kk[r]][a0 + e * stride_ab] = ra[r][e];
#pragma unroll
        for (int e = 0; e < kPerB; ++e) Bs[buf][kk[r]][b0 + e * stride_ab] = rb[r][e];
      } else {
        AlignedVec<T, kPerA> va;
        AlignedVec<T, kPerB> vb;
#pragma unroll
        for (int e = 0; e < kPerA; ++e) va.e[e] = ra[r][e];
#pragma unroll
        for (int e = 0; e < kPerB; ++e) vb.e[e] = rb[r][e];
        *reinterpret_cast<AlignedVec<T, kPerA>*>(&As[buf][kk[r]][a0]) = va;
        *reinterpret_cast<AlignedVec<T, kPerB>*>(&Bs[buf][kk[r]][b0]) = vb;
      }
    }
  };

  const int warp = tid / 32;
  const int wm = warp / Tile::WN;
  const int wn = warp % Tile::WN;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[Tile::FM][Tile::FN];
#pragma unroll
  for (int i = 0; i < Tile::FM; ++i) {
#pragma unroll
    for (int j = 0; j < Tile::FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  }
  const int64_t steps = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;
  load();
  store(0);
  __syncthreads();
  for (int64_t step = 0; step < steps; ++step) {
    const int cur = static_cast<int>(step & 1);
    const bool more = step + 1 < steps;
    if (more) {
#pragma unroll
      for (int r = 0; r < kRowsK; ++r) {
        k[r] += BK;
        pos[r].Advance(p, BK);
      }
      load();
    }
#pragma unroll
    for (int q = 0; q < BK; q += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> af[Tile::FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bf[Tile::FN];
#pragma unroll
      for (int i = 0; i < Tile::FM; ++i) {
        wmma::load_matrix_sync(af[i], &As[cur][q][(wm * Tile::FM + i) * 16], LDA);
      }
#pragma unroll
      for (int j = 0; j < Tile::FN; ++j) {
        wmma::load_matrix_sync(bf[j], &Bs[cur][q][(wn * Tile::FN + j) * 16], LDB);
      }
#pragma unroll
      for (int i = 0; i < Tile::FM; ++i) {
#pragma unroll
        for (int j = 0; j < Tile::FN; ++j) wmma::mma_sync(acc[i][j], af[i], bf[j], acc[i][j]);
      }
    }
    if (more) store(cur ^ 1);
    __syncthreads();
  }

  // Epilogue: each warp stages one 16x16 fragment at a time and writes the
  // in-range elements (8 per lane).
  const int lane = tid % 32;
  const int64_t partial_base = int64_t(blockIdx.y) * p.m_dim * p.out_depth;
#pragma unroll
  for (int i = 0; i < Tile::FM; ++i) {
#pragma unroll
    for (int j = 0; j < Tile::FN; ++j) {
      wmma::store_matrix_sync(stage[warp], acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int idx = lane * 8 + e;
        const int64_t m = tm * BM + (wm * Tile::FM + i) * 16 + idx / 16;
        const int64_t n = tn * BN + (wn * Tile::FN + j) * 16 + idx % 16;
        if (m < p.m_dim && n < p.group_out) {
          const int64_t dst = m * p.out_depth + g * p.group_out + n;
          if (out != nullptr) {
            out[dst] = FromAcc<T>(stage[warp][idx]);
          } else {
            partial[partial_base + dst] = stage[warp][idx];
          }
        }
      }
      __syncwarp();
    }
  }
#endif  // __CUDA_ARCH__ >= 800
}

// ---------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------

enum class CbfEngine { kSimtLarge, kSimtSmall, kWmmaWide, kWmmaNarrow };

// Names of CbfEngine, in its order.
inline const char* EngineName(CbfEngine e) {
  static constexpr const char* kNames[] = {"simt128", "simt64", "wmma128x128", "wmma128x64"};
  return kNames[static_cast<int>(e)];
}

constexpr int64_t kCbfTargetBlocks = 512;  // about 4 resident blocks x 132 SMs
constexpr int64_t kCbfMinStepsPerSplit = 8;

template <typename T>
constexpr bool kHasTensorCores = sizeof(T) == 2;

struct CbfPlan {
  CbfEngine engine;
  CbfParams params;
  int64_t blocks;  // grid.x: groups x m tiles x n tiles
  int64_t splits;  // grid.y
  size_t scratch;
};

// `x`/`dy` may be null (descriptions): then alignment is assumed.
template <typename T>
CbfPlan PlanCbf(const ConvGeometry& s, const LaunchOptions& o, const void* x = nullptr,
                const void* dy = nullptr) {
  CbfPlan plan;
  CbfParams& p = plan.params;
#define TF_CONVGRAD_CBF_COPY_(field) p.field = s.field;
  TF_CONVGRAD_KERNEL_GEOMETRY(TF_CONVGRAD_CBF_COPY_)
#undef TF_CONVGRAD_CBF_COPY_
  p.filter_in = s.in_depth / s.groups;
  p.group_out = s.out_depth / s.groups;
  p.m_dim = s.filter_rows * s.filter_cols * p.filter_in;
  p.k_dim = s.batch * s.out_rows * s.out_cols;

  int64_t bm, bn, bk;
  if (kHasTensorCores<T> && !o.force_simt) {
    plan.engine = p.group_out <= 64 ? CbfEngine::kWmmaNarrow : CbfEngine::kWmmaWide;
    bm = 128;
    bn = plan.engine == CbfEngine::kWmmaNarrow ? 64 : 128;
    bk = 32;
  } else {
    const bool large = sizeof(T) != 8 && p.m_dim >= 128 && p.group_out >= 128;
    plan.engine = large ? CbfEngine::kSimtLarge : CbfEngine::kSimtSmall;
    bm = bn = large ? SimtLarge::BM : SimtSmall::BM;
    bk = large ? SimtLarge::BK : SimtSmall::BK;
  }
  // Loader run widths along m and n (NHWC): SIMT 4 rows/columns; WMMA BM / 16
  // rows and BN / 16 columns.
  const int64_t run_a =
      plan.engine == CbfEngine::kSimtLarge || plan.engine == CbfEngine::kSimtSmall ? 4 : bm / 16;
  const int64_t run_b = run_a == 4 ? 4 : bn / 16;
  p.vec_a = !s.nchw && p.filter_in % run_a == 0 && s.in_depth % run_a == 0 &&
            IsAligned(x, sizeof(T) * run_a);
  p.vec_b = !s.nchw && p.group_out % run_b == 0 && s.out_depth % run_b == 0 &&
            IsAligned(dy, sizeof(T) * run_b);
  p.tiles_m = CeilDiv(p.m_dim, bm);
  p.tiles_n = CeilDiv(p.group_out, bn);
  plan.blocks = s.groups * p.tiles_m * p.tiles_n;

  const int64_t per_split = SatMul(SatMul(p.m_dim, p.out_depth), int64_t{sizeof(Acc<T>)});
  int64_t splits;
  if (o.force_splits > 0) {
    splits = o.force_splits;
  } else {
    splits = CeilDiv(kCbfTargetBlocks, plan.blocks);
    splits = std::min(splits, p.k_dim / (bk * kCbfMinStepsPerSplit));
    splits = std::min(splits, kMaxPartialBytes / std::max<int64_t>(per_split, 1));
  }
  splits = Clamp(splits, 1, std::min<int64_t>(CeilDiv(std::max<int64_t>(p.k_dim, 1), bk), 65535));
  p.k_per_split = RoundUp(CeilDiv(std::max<int64_t>(p.k_dim, 1), splits), bk);
  plan.splits = CeilDiv(std::max<int64_t>(p.k_dim, 1), p.k_per_split);
  plan.scratch = plan.splits > 1 ? AlignScratch(size_t(plan.splits) * size_t(per_split)) : 0;
  return plan;
}

template <typename T, bool kNCHW>
cudaError_t LaunchCbfEngine(const CbfPlan& plan, const T* x, const T* dy, Acc<T>* partial, T* dw,
                            cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(plan.blocks), static_cast<unsigned>(plan.splits));
  T* direct = plan.splits == 1 ? dw : nullptr;
  using KernelPtr = void (*)(CbfParams, const T*, const T*, Acc<T>*, T*);
  KernelPtr kernel = nullptr;
  switch (plan.engine) {
    case CbfEngine::kSimtLarge:
      if constexpr (sizeof(T) != 8) {  // double always plans the small tile
        kernel = &CbfSimtKernel<T, kNCHW, SimtLarge>;
      }
      break;
    case CbfEngine::kSimtSmall:
      kernel = &CbfSimtKernel<T, kNCHW, SimtSmall>;
      break;
    case CbfEngine::kWmmaWide:
    case CbfEngine::kWmmaNarrow:
      if constexpr (kHasTensorCores<T>) {
        kernel = plan.engine == CbfEngine::kWmmaWide ? &CbfWmmaKernel<T, kNCHW, WmmaWide>
                                                     : &CbfWmmaKernel<T, kNCHW, WmmaNarrow>;
      }
      break;
  }
  if (kernel == nullptr) return cudaErrorInvalidValue;
  TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, dim3(kThreads), stream, plan.params, x, dy, partial,
                               direct);
  if (plan.splits == 1) return cudaSuccess;
  return SumPartials<T>(partial, plan.splits, plan.params.m_dim * plan.params.out_depth, dw,
                        stream);
}

template <typename T>
cudaError_t LaunchCbfGemm(const ConvGeometry& s, const LaunchOptions& o, const T* x, const T* dy,
                          T* dw, void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  const CbfPlan plan = PlanCbf<T>(s, o, x, dy);
  if (scratch_bytes < plan.scratch || (plan.scratch > 0 && scratch == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (plan.blocks > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidValue;
  Acc<T>* partial = static_cast<Acc<T>*>(scratch);
  return s.nchw ? LaunchCbfEngine<T, true>(plan, x, dy, partial, dw, stream)
                : LaunchCbfEngine<T, false>(plan, x, dy, partial, dw, stream);
}

template <typename T>
std::string DescribeCbfGemm(const ConvGeometry& s, const LaunchOptions& o) {
  const CbfPlan plan = PlanCbf<T>(s, o);
  return Format("cbf.%s.%s%s%s grid=%lldx%lld", s.nchw ? "nchw" : "nhwc", EngineName(plan.engine),
                plan.params.vec_a ? ".va" : "", plan.params.vec_b ? ".vb" : "",
                static_cast<long long>(plan.blocks), static_cast<long long>(plan.splits));
}

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_GPU_CONV2D_BACKPROP_FILTER_GPU_CU_H_
