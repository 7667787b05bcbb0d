// Depthwise convolution gradients on the GPU, shared by both depthwise ops and
// by grouped Conv2DBackpropFilter with one input channel per group (which is a
// depthwise filter gradient with multiplier out_depth / groups).
//
// Notation (NHWC indices; NCHW holds the same values with permuted axes),
// q = c * M + m the output channel of input channel c and multiplier m:
//   h(ho, i) = ho * stride_rows - pad_top + i * dilation_rows
//   w(wo, j) = wo * stride_cols - pad_left + j * dilation_cols
//   DBF: dW[i, j, c, m] = sum_{b, ho, wo} x[b, h(ho, i), w(wo, j), c] * dy[b, ho, wo, q]
//   DBI: dx[b, h, w, c] = sum_{i, j, m : h = h(ho, i), w = w(wo, j) for integer
//                             0 <= ho < out_rows, 0 <= wo < out_cols} f[i, j, c, m] * dy[b, ho, wo,
//                             q]
// EX: stride 2, pad_top 1, dilation 1, a 3-tap column: input row h = 4 gets
//   ho = (4 + 1 - i) / 2 for the taps i whose numerator is even: i = 1 (ho = 2).
//
// DBI ("gather"): one thread per dx element (NCHW) or per group of kV
// channels of one dx pixel (NHWC), summing its taps in the fixed order
// (i, j, m). No reduction between threads, so nothing to order.
//
// DBF ("split, then reduce"): the (b, ho) output rows are cut into `splits`
// contiguous slices. Block (channel tile, split) walks the slice's output
// pixels, each thread keeping one float accumulator per (tap, channel) of a
// chunk of taps; the block then sums its threads in a fixed tree and writes
// one partial dW per split. SumPartials adds the splits in a fixed order. With
// one split the block writes dW directly. The split count depends on the shape
// only, so results are bitwise reproducible. Taps are processed in chunks held
// in registers: one chunk of 9 or 25 for the 3x3 and 5x5 specialisations,
// chunks of kGenericChunk otherwise.
#ifndef TF_OPS_CC_KERNELS_GPU_DEPTHWISE_BACKPROP_GPU_CU_H_
#define TF_OPS_CC_KERNELS_GPU_DEPTHWISE_BACKPROP_GPU_CU_H_

#include <cstdio>
#include <string>

#include "tf_ops/cc/kernels/gpu/gpu_common.cu.h"

namespace tf_convgrad {
namespace gpu {
namespace internal {

// Geometry as the kernels see it, in their index type (MakeDwParams copies
// the fields of TF_CONVGRAD_KERNEL_GEOMETRY).
template <typename Index>
struct DwParams {
#define TF_CONVGRAD_DW_FIELD_(field) Index field;
  TF_CONVGRAD_KERNEL_GEOMETRY(TF_CONVGRAD_DW_FIELD_)
#undef TF_CONVGRAD_DW_FIELD_
};

constexpr int kGenericChunk = 16;  // Taps per register chunk without a specialisation.

// Filter variants, in dispatch order.
enum class FilterVariant { k3x3, k5x5, kGeneric };

// ---------------------------------------------------------------------------
// DepthwiseConv2dNativeBackpropInput
// ---------------------------------------------------------------------------

// Calls tap(i, j, ho, wo) for every filter tap (i, j) through which output
// pixel (ho, wo) reaches input pixel (h, w), in increasing i, then j. kFH/kFW
// > 0 are compile-time sizes (the loops unroll), -1 reads them from `p`.
template <int kFH, int kFW, typename Index, typename Tap>
__device__ __forceinline__ void ForEachDbiTap(const DwParams<Index>& p, const Index h,
                                              const Index w, Tap&& tap) {
  const Index FH = kFH > 0 ? Index(kFH) : p.filter_rows;
  const Index FW = kFW > 0 ? Index(kFW) : p.filter_cols;
#pragma unroll
  for (Index i = 0; i < FH; ++i) {
    const Index hn = h + p.pad_top - i * p.dilation_rows;
    if (hn < 0) break;  // hn only decreases with i.
    const Index ho = hn / p.stride_rows;
    if (ho * p.stride_rows != hn || ho >= p.out_rows) continue;
#pragma unroll
    for (Index j = 0; j < FW; ++j) {
      const Index wn = w + p.pad_left - j * p.dilation_cols;
      if (wn < 0) break;
      const Index wo = wn / p.stride_cols;
      if (wo * p.stride_cols != wn || wo >= p.out_cols) continue;
      tap(i, j, ho, wo);
    }
  }
}

// NHWC: work item = (pixel, group of kV channels); kFH/kFW/kM > 0 are
// compile-time sizes, -1 reads them from `p`. With `vec`, C % kV == 0 and
// all three pointers are 16-byte aligned (only used with kM == 1).
template <typename T, typename Index, int kFH, int kFW, int kM, int kV>
__global__ void __launch_bounds__(kThreads)
    DbiNhwcKernel(const DwParams<Index> p, const T* __restrict__ filter, const T* __restrict__ dy,
                  T* __restrict__ dx, const Index channel_groups, const Index total,
                  const bool vec) {
  using A = Acc<T>;
  const Index FW = kFW > 0 ? Index(kFW) : p.filter_cols;
  const Index M = kM > 0 ? Index(kM) : p.depth_multiplier;
  const Index C = p.in_depth;
  const Index CM = p.out_depth;
  for (Index idx = Index(blockIdx.x) * kThreads + Index(threadIdx.x); idx < total;
       idx += Index(gridDim.x) * kThreads) {
    const Index pix = idx / channel_groups;
    const Index c0 = (idx - pix * channel_groups) * kV;
    const Index w = pix % p.in_cols;
    const Index hb = pix / p.in_cols;
    const Index h = hb % p.in_rows;
    const Index b = hb / p.in_rows;
    A acc[kV];
#pragma unroll
    for (int l = 0; l < kV; ++l) acc[l] = A(0);
    ForEachDbiTap<kFH, kFW>(p, h, w, [&](Index i, Index j, Index ho, Index wo) {
      const T* dy_pix = dy + ((b * p.out_rows + ho) * p.out_cols + wo) * CM;
      const T* f_tap = filter + (i * FW + j) * CM;  // f[i][j][c][m] = f_tap[c * M + m]
      if (kM == 1 && vec) {
        A dv[kV], fv[kV];
        LoadVec<T, kV>(dy_pix + c0, dv);
        LoadVec<T, kV>(f_tap + c0, fv);
#pragma unroll
        for (int l = 0; l < kV; ++l) acc[l] += fv[l] * dv[l];
      } else {
#pragma unroll
        for (int l = 0; l < kV; ++l) {
          const Index c = c0 + l;
          if (c < C) {
            for (Index m = 0; m < M; ++m) {
              acc[l] += ToAcc(f_tap[c * M + m]) * ToAcc(dy_pix[c * M + m]);
            }
          }
        }
      }
    });
    T* out = dx + pix * C + c0;
    if (vec) {
      StoreVec<T, kV>(out, acc);
    } else {
#pragma unroll
      for (int l = 0; l < kV; ++l) {
        if (c0 + l < C) out[l] = FromAcc<T>(acc[l]);
      }
    }
  }
}

// NCHW: one thread per dx element, consecutive threads along the row.
template <typename T, typename Index, int kFH, int kFW, int kM>
__global__ void __launch_bounds__(kThreads)
    DbiNchwKernel(const DwParams<Index> p, const T* __restrict__ filter, const T* __restrict__ dy,
                  T* __restrict__ dx, const Index total) {
  using A = Acc<T>;
  const Index FW = kFW > 0 ? Index(kFW) : p.filter_cols;
  const Index M = kM > 0 ? Index(kM) : p.depth_multiplier;
  const Index C = p.in_depth;
  const Index out_plane = p.out_rows * p.out_cols;
  for (Index idx = Index(blockIdx.x) * kThreads + Index(threadIdx.x); idx < total;
       idx += Index(gridDim.x) * kThreads) {
    const Index w = idx % p.in_cols;
    Index t = idx / p.in_cols;
    const Index h = t % p.in_rows;
    t /= p.in_rows;
    const Index c = t % C;
    const Index b = t / C;
    const T* dy_bc = dy + (b * p.out_depth + c * M) * out_plane;  // dy[b, c * M, 0, 0]
    A acc = A(0);
    ForEachDbiTap<kFH, kFW>(p, h, w, [&](Index i, Index j, Index ho, Index wo) {
      const T* f = filter + (i * FW + j) * p.out_depth + c * M;
      const Index o = ho * p.out_cols + wo;
      for (Index m = 0; m < M; ++m) acc += ToAcc(f[m]) * ToAcc(dy_bc[m * out_plane + o]);
    });
    dx[idx] = FromAcc<T>(acc);
  }
}

// ---------------------------------------------------------------------------
// DepthwiseConv2dNativeBackpropFilter, first pass
// ---------------------------------------------------------------------------

// The taps of one chunk: row/column offsets i * dilation_rows and
// j * dilation_cols, and whether the tap exists (the last chunk may be short).
template <typename Index, int kFH, int kFW, int kChunk>
__device__ __forceinline__ void ChunkTaps(const DwParams<Index>& p, Index t0, Index taps,
                                          Index (&di)[kChunk], Index (&dj)[kChunk],
                                          bool (&tv)[kChunk]) {
#pragma unroll
  for (int k = 0; k < kChunk; ++k) {
    const Index t = t0 + k;
    tv[k] = t < taps;
    Index i, j;
    if (kFH > 0) {
      i = k / kFW;  // one chunk holds all taps: t == k
      j = k % kFW;
    } else {
      i = t / p.filter_cols;
      j = t - i * p.filter_cols;
    }
    di[k] = i * p.dilation_rows;
    dj[k] = j * p.dilation_cols;
  }
}

// Calls tap(k, h, w) for each tap k of a chunk (ChunkTaps) that exists and
// whose input pixel (h, w) = (h0 + di[k], w0 + dj[k]) lies inside the image.
template <int kChunk, typename Index, typename Tap>
__device__ __forceinline__ void ForEachChunkTap(const DwParams<Index>& p, const bool (&tv)[kChunk],
                                                const Index (&di)[kChunk],
                                                const Index (&dj)[kChunk], const Index h0,
                                                const Index w0, Tap&& tap) {
#pragma unroll
  for (int k = 0; k < kChunk; ++k) {
    if (!tv[k]) continue;
    const Index h = h0 + di[k];
    const Index w = w0 + dj[k];
    if (h < 0 || h >= p.in_rows || w < 0 || w >= p.in_cols) continue;
    tap(k, h, w);
  }
}

// NHWC. Block (channel tile, split); thread (tx, ty): tx < 2^lane_shift picks
// kV consecutive output channels q0..q0+kV-1 of the tile, ty picks every
// TY-th pixel of the split. With `vec`, out_depth % kV == 0 and dy (and, when
// M == 1, x) are kV-element aligned.
template <typename T, typename Index, int kFH, int kFW, int kChunk, int kV>
__global__ void __launch_bounds__(kThreads, 2)
    DbfNhwcKernel(const DwParams<Index> p, const T* __restrict__ x, const T* __restrict__ dy,
                  Acc<T>* __restrict__ partial, T* __restrict__ out, const Index rows_per_split,
                  const int lane_shift, const bool vec) {
  using A = Acc<T>;
  __shared__ A red[kThreads * kV];
  const int lanes = 1 << lane_shift;
  const int tx = threadIdx.x & (lanes - 1);
  const int ty = threadIdx.x >> lane_shift;
  const int pixel_lanes = kThreads >> lane_shift;
  const Index CM = p.out_depth;
  const Index C = p.in_depth;
  const Index M = p.depth_multiplier;
  const Index taps =
      (kFH > 0 ? Index(kFH) : p.filter_rows) * (kFW > 0 ? Index(kFW) : p.filter_cols);
  const Index q0 = Index(blockIdx.x) * (lanes * kV) + tx * kV;
  bool qv[kV];
  Index cx[kV];
#pragma unroll
  for (int l = 0; l < kV; ++l) {
    qv[l] = q0 + l < CM;
    cx[l] = qv[l] ? (q0 + l) / M : Index(0);
  }
  const bool x_vec = vec && M == 1;
  const Index rows = p.batch * p.out_rows;
  const Index r_begin = Index(blockIdx.y) * rows_per_split;
  const Index r_end = r_begin + rows_per_split < rows ? r_begin + rows_per_split : rows;
  const Index pix_end = r_end * p.out_cols;
  const Index image = p.in_rows * p.in_cols * C;

  for (Index t0 = 0; t0 < taps; t0 += kChunk) {
    Index di[kChunk], dj[kChunk];
    bool tv[kChunk];
    ChunkTaps<Index, kFH, kFW, kChunk>(p, t0, taps, di, dj, tv);
    A acc[kChunk][kV];
#pragma unroll
    for (int k = 0; k < kChunk; ++k) {
#pragma unroll
      for (int l = 0; l < kV; ++l) acc[k][l] = A(0);
    }
    Index pix = r_begin * p.out_cols + ty;
    if (pix < pix_end) {
      Index b, ho, wo;
      SplitPixel(p.out_rows, p.out_cols, pix, b, ho, wo);
      for (; pix < pix_end; pix += pixel_lanes) {
        A dv[kV];
        const T* dy_pix = dy + pix * CM + q0;
        if (vec && qv[0]) {
          LoadVec<T, kV>(dy_pix, dv);
        } else {
#pragma unroll
          for (int l = 0; l < kV; ++l) dv[l] = qv[l] ? ToAcc(dy_pix[l]) : A(0);
        }
        const Index h0 = ho * p.stride_rows - p.pad_top;
        const Index w0 = wo * p.stride_cols - p.pad_left;
        const T* x_img = x + b * image;
        ForEachChunkTap(p, tv, di, dj, h0, w0, [&](int k, Index h, Index w) {
          const T* x_pix = x_img + (h * p.in_cols + w) * C;
          if (x_vec && qv[0]) {
            A xv[kV];
            LoadVec<T, kV>(x_pix + q0, xv);
#pragma unroll
            for (int l = 0; l < kV; ++l) acc[k][l] += xv[l] * dv[l];
          } else {
#pragma unroll
            for (int l = 0; l < kV; ++l) {
              if (qv[l]) acc[k][l] += ToAcc(x_pix[cx[l]]) * dv[l];
            }
          }
        });
        AdvancePixel(p.out_rows, p.out_cols, Index(pixel_lanes), b, ho, wo);
      }
    }
    // Sum the pixel lanes of each (tap, channel) in a fixed tree.
#pragma unroll
    for (int k = 0; k < kChunk; ++k) {
      if (t0 + k >= taps) break;  // uniform over the block
      // No barrier needed before this write: since the last barrier each
      // thread has read only its own slot.
#pragma unroll
      for (int l = 0; l < kV; ++l) red[threadIdx.x * kV + l] = acc[k][l];
      __syncthreads();
      for (int stride = pixel_lanes / 2; stride > 0; stride /= 2) {
        if (ty < stride) {
#pragma unroll
          for (int l = 0; l < kV; ++l) {
            red[threadIdx.x * kV + l] += red[(threadIdx.x + (stride << lane_shift)) * kV + l];
          }
        }
        __syncthreads();
      }
      if (ty == 0) {
        const Index e = (t0 + k) * CM + q0;
#pragma unroll
        for (int l = 0; l < kV; ++l) {
          if (!qv[l]) continue;
          const A v = red[threadIdx.x * kV + l];
          if (out != nullptr) {
            out[e + l] = FromAcc<T>(v);
          } else {
            partial[Index(blockIdx.y) * taps * CM + e + l] = v;
          }
        }
      }
    }
  }
}

// NCHW. Block (output channel q, split); the 256 threads take every 256th
// pixel of the split, so rows are read contiguously whatever out_cols is.
template <typename T, typename Index, int kFH, int kFW, int kChunk>
__global__ void __launch_bounds__(kThreads, 2)
    DbfNchwKernel(const DwParams<Index> p, const T* __restrict__ x, const T* __restrict__ dy,
                  Acc<T>* __restrict__ partial, T* __restrict__ out, const Index rows_per_split) {
  using A = Acc<T>;
  __shared__ A red[kThreads];
  const Index CM = p.out_depth;
  const Index q = blockIdx.x;
  const Index c = q / p.depth_multiplier;
  const Index taps =
      (kFH > 0 ? Index(kFH) : p.filter_rows) * (kFW > 0 ? Index(kFW) : p.filter_cols);
  const Index out_plane = p.out_rows * p.out_cols;
  const Index in_plane = p.in_rows * p.in_cols;
  const Index rows = p.batch * p.out_rows;
  const Index r_begin = Index(blockIdx.y) * rows_per_split;
  const Index r_end = r_begin + rows_per_split < rows ? r_begin + rows_per_split : rows;
  const Index pix_end = r_end * p.out_cols;

  for (Index t0 = 0; t0 < taps; t0 += kChunk) {
    Index di[kChunk], dj[kChunk];
    bool tv[kChunk];
    ChunkTaps<Index, kFH, kFW, kChunk>(p, t0, taps, di, dj, tv);
    A acc[kChunk];
#pragma unroll
    for (int k = 0; k < kChunk; ++k) acc[k] = A(0);
    Index pix = r_begin * p.out_cols + Index(threadIdx.x);
    if (pix < pix_end) {
      Index b, ho, wo;
      SplitPixel(p.out_rows, p.out_cols, pix, b, ho, wo);
      for (; pix < pix_end; pix += kThreads) {
        const A dv = ToAcc(dy[(b * CM + q) * out_plane + ho * p.out_cols + wo]);
        const T* x_plane = x + (b * p.in_depth + c) * in_plane;
        const Index h0 = ho * p.stride_rows - p.pad_top;
        const Index w0 = wo * p.stride_cols - p.pad_left;
        ForEachChunkTap(p, tv, di, dj, h0, w0, [&](int k, Index h, Index w) {
          acc[k] += ToAcc(x_plane[h * p.in_cols + w]) * dv;
        });
        AdvancePixel(p.out_rows, p.out_cols, Index(kThreads), b, ho, wo);
      }
    }
#pragma unroll
    for (int k = 0; k < kChunk; ++k) {
      if (t0 + k >= taps) break;
      red[threadIdx.x] = acc[k];  // own slot: see DbfNhwcKernel
      __syncthreads();
      for (int stride = kThreads / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) red[threadIdx.x] += red[threadIdx.x + stride];
        __syncthreads();
      }
      if (threadIdx.x == 0) {
        const Index e = (t0 + k) * CM + q;
        if (out != nullptr) {
          out[e] = FromAcc<T>(red[0]);
        } else {
          partial[Index(blockIdx.y) * taps * CM + e] = red[0];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Host side: plans and launches
// ---------------------------------------------------------------------------

// Largest element offset or |coordinate| a depthwise kernel computes, plus
// `extra` (the partial-sum buffer's size).
inline int64_t DwIndexBound(const ConvGeometry& s, int64_t extra) {
  const int64_t x = SatMul(SatMul(SatMul(s.batch, s.in_rows), s.in_cols), s.in_depth);
  const int64_t dy = SatMul(SatMul(SatMul(s.batch, s.out_rows), s.out_cols), s.out_depth);
  const int64_t f = SatMul(Taps(s), s.out_depth);
  const int64_t rows = SatAdd(
      SatAdd(SatMul(SatAdd(s.out_rows, 1), s.stride_rows), SatMul(s.filter_rows, s.dilation_rows)),
      SatAdd(s.pad_top, s.in_rows));
  const int64_t cols = SatAdd(
      SatAdd(SatMul(SatAdd(s.out_cols, 1), s.stride_cols), SatMul(s.filter_cols, s.dilation_cols)),
      SatAdd(s.pad_left, s.in_cols));
  int64_t bound = extra;
  for (int64_t v : {x, dy, f, rows, cols, SatAdd(s.batch, 1)}) bound = v > bound ? v : bound;
  return bound;
}

template <typename Index>
DwParams<Index> MakeDwParams(const ConvGeometry& s) {
  DwParams<Index> p;
#define TF_CONVGRAD_DW_COPY_(field) p.field = Index(s.field);
  TF_CONVGRAD_KERNEL_GEOMETRY(TF_CONVGRAD_DW_COPY_)
#undef TF_CONVGRAD_DW_COPY_
  return p;
}

inline FilterVariant PickVariant(const ConvGeometry& s, bool need_m1, const LaunchOptions& o) {
  if (o.force_generic || (need_m1 && s.depth_multiplier != 1)) return FilterVariant::kGeneric;
  if (s.filter_rows == 3 && s.filter_cols == 3) return FilterVariant::k3x3;
  if (s.filter_rows == 5 && s.filter_cols == 5) return FilterVariant::k5x5;
  return FilterVariant::kGeneric;
}

// Names of FilterVariant, in its order.
inline const char* VariantName(FilterVariant v) {
  static constexpr const char* kNames[] = {"3x3", "5x5", "generic"};
  return kNames[static_cast<int>(v)];
}

// ---- DBI ----

template <typename T>
struct DbiPlan {
  FilterVariant variant;
  bool index64;
  int vec_width;  // kV: channels per thread (NHWC)
  bool vec;
  int64_t total;  // work items
  int64_t blocks;
};

template <typename T>
DbiPlan<T> PlanDbi(const ConvGeometry& s, const LaunchOptions& o, const void* filter,
                   const void* dy, const void* dx) {
  DbiPlan<T> plan;
  plan.variant = PickVariant(s, /*need_m1=*/true, o);
  plan.index64 = o.force_index64 || DwIndexBound(s, 0) > kMaxIndex32;
  plan.vec_width = (!s.nchw && plan.variant != FilterVariant::kGeneric) ? kVec16<T> : 1;
  const size_t vec_bytes = sizeof(T) * plan.vec_width;
  plan.vec = plan.vec_width > 1 && s.in_depth % plan.vec_width == 0 &&
             IsAligned(filter, vec_bytes) && IsAligned(dy, vec_bytes) && IsAligned(dx, vec_bytes);
  const int64_t pixels = s.batch * s.in_rows * s.in_cols;
  plan.total = s.nchw ? pixels * s.in_depth : pixels * CeilDiv(s.in_depth, plan.vec_width);
  plan.blocks = Clamp(CeilDiv(plan.total, kThreads), 1, kMaxGridBlocks);
  return plan;
}

template <typename T, typename Index, int kFH, int kFW, int kM>
cudaError_t LaunchDbiVariant(const ConvGeometry& s, const DbiPlan<T>& plan, const T* filter,
                             const T* dy, T* dx, cudaStream_t stream) {
  const DwParams<Index> p = MakeDwParams<Index>(s);
  const dim3 grid(static_cast<unsigned>(plan.blocks));
  if (s.nchw) {
    auto* kernel = &DbiNchwKernel<T, Index, kFH, kFW, kM>;
    TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, dim3(kThreads), stream, p, filter, dy, dx,
                                 Index(plan.total));
    return cudaSuccess;
  }
  constexpr int kV = kFH > 0 ? kVec16<T> : 1;
  auto* kernel = &DbiNhwcKernel<T, Index, kFH, kFW, kM, kV>;
  TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, dim3(kThreads), stream, p, filter, dy, dx,
                               Index(CeilDiv(s.in_depth, kV)), Index(plan.total), plan.vec);
  return cudaSuccess;
}

template <typename T, typename Index>
cudaError_t LaunchDbiIndexed(const ConvGeometry& s, const DbiPlan<T>& plan, const T* filter,
                             const T* dy, T* dx, cudaStream_t stream) {
  switch (plan.variant) {
    case FilterVariant::k3x3:
      return LaunchDbiVariant<T, Index, 3, 3, 1>(s, plan, filter, dy, dx, stream);
    case FilterVariant::k5x5:
      return LaunchDbiVariant<T, Index, 5, 5, 1>(s, plan, filter, dy, dx, stream);
    case FilterVariant::kGeneric:
      break;
  }
  return LaunchDbiVariant<T, Index, -1, -1, -1>(s, plan, filter, dy, dx, stream);
}

template <typename T>
cudaError_t LaunchDbi(const ConvGeometry& s, const LaunchOptions& o, const T* filter, const T* dy,
                      T* dx, cudaStream_t stream) {
  const DbiPlan<T> plan = PlanDbi<T>(s, o, filter, dy, dx);
  return plan.index64 ? LaunchDbiIndexed<T, int64_t>(s, plan, filter, dy, dx, stream)
                      : LaunchDbiIndexed<T, int32_t>(s, plan, filter, dy, dx, stream);
}

template <typename T>
std::string DescribeDbi(const ConvGeometry& s, const LaunchOptions& o) {
  // Alignment is not known here; describe the aligned case.
  const DbiPlan<T> plan = PlanDbi<T>(s, o, nullptr, nullptr, nullptr);
  return Format("dbi.%s.%s.%s.v%d", s.nchw ? "nchw" : "nhwc", VariantName(plan.variant),
                plan.index64 ? "i64" : "i32", plan.vec_width);
}

// ---- DBF ----

constexpr int64_t kDbfTargetBlocks = 1024;  // about 8 resident blocks x 132 SMs
constexpr int64_t kDbfMinPixelsPerThread = 16;

template <typename T>
constexpr int DbfVecWidth() {
  return sizeof(T) == 2 ? 2 : 1;  // 16-bit types: channel pairs, 4-byte accesses
}

template <typename T>
struct DbfPlan {
  FilterVariant variant;
  bool index64;
  int lane_shift;  // NHWC: log2 of the channel lanes per block
  bool vec;
  int64_t tiles;   // blocks along the channels
  int64_t splits;  // blocks along the output rows
  int64_t rows_per_split;
  size_t scratch;  // partial sums (0 when splits == 1)
};

template <typename T>
DbfPlan<T> PlanDbf(const ConvGeometry& s, const LaunchOptions& o, const void* x, const void* dy) {
  using A = Acc<T>;
  DbfPlan<T> plan;
  plan.variant = PickVariant(s, /*need_m1=*/false, o);
  const int64_t cm = s.out_depth;
  constexpr int kV = DbfVecWidth<T>();
  int64_t pixel_lanes = kThreads;
  plan.lane_shift = 0;
  if (s.nchw) {
    plan.tiles = cm;
  } else {
    const int64_t groups = CeilDiv(cm, kV);
    while ((int64_t{1} << plan.lane_shift) < groups && plan.lane_shift < 5) ++plan.lane_shift;
    pixel_lanes = kThreads >> plan.lane_shift;
    plan.tiles = CeilDiv(cm, (int64_t{1} << plan.lane_shift) * kV);
  }
  const size_t vec_bytes = sizeof(T) * kV;
  plan.vec = kV > 1 && cm % kV == 0 && IsAligned(dy, vec_bytes) &&
             (s.depth_multiplier != 1 || IsAligned(x, vec_bytes));
  const int64_t rows = s.batch * s.out_rows;
  const int64_t pixels = rows * s.out_cols;
  const int64_t per_split = SatMul(SatMul(Taps(s), cm), int64_t{sizeof(A)});
  int64_t splits;
  if (o.force_splits > 0) {
    splits = o.force_splits;
  } else {
    splits = CeilDiv(kDbfTargetBlocks, plan.tiles);
    splits = std::min(splits, pixels / (pixel_lanes * kDbfMinPixelsPerThread));
    splits = std::min(splits, kMaxPartialBytes / std::max<int64_t>(per_split, 1));
  }
  splits = Clamp(splits, 1, std::min<int64_t>(std::max<int64_t>(rows, 1), 65535));
  plan.rows_per_split = std::max<int64_t>(CeilDiv(rows, splits), 1);
  plan.splits = std::max<int64_t>(CeilDiv(rows, plan.rows_per_split), 1);
  plan.scratch = plan.splits > 1 ? AlignScratch(size_t(plan.splits) * size_t(per_split)) : 0;
  plan.index64 =
      o.force_index64 || DwIndexBound(s, SatMul(plan.splits, SatMul(Taps(s), cm))) > kMaxIndex32;
  return plan;
}

template <typename T, typename Index, int kFH, int kFW>
cudaError_t LaunchDbfVariant(const ConvGeometry& s, const DbfPlan<T>& plan, const T* x, const T* dy,
                             Acc<T>* partial, T* dw, cudaStream_t stream) {
  constexpr int kChunk = kFH > 0 ? kFH * kFW : kGenericChunk;
  const DwParams<Index> p = MakeDwParams<Index>(s);
  const dim3 grid(static_cast<unsigned>(plan.tiles), static_cast<unsigned>(plan.splits));
  T* direct = plan.splits == 1 ? dw : nullptr;
  if (s.nchw) {
    auto* kernel = &DbfNchwKernel<T, Index, kFH, kFW, kChunk>;
    TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, dim3(kThreads), stream, p, x, dy, partial, direct,
                                 Index(plan.rows_per_split));
  } else {
    auto* kernel = &DbfNhwcKernel<T, Index, kFH, kFW, kChunk, DbfVecWidth<T>()>;
    TF_CONVGRAD_LAUNCH_OR_RETURN(kernel, grid, dim3(kThreads), stream, p, x, dy, partial, direct,
                                 Index(plan.rows_per_split), plan.lane_shift, plan.vec);
  }
  if (plan.splits == 1) return cudaSuccess;
  return SumPartials<T>(partial, plan.splits, Taps(s) * s.out_depth, dw, stream);
}

template <typename T, typename Index>
cudaError_t LaunchDbfIndexed(const ConvGeometry& s, const DbfPlan<T>& plan, const T* x, const T* dy,
                             Acc<T>* partial, T* dw, cudaStream_t stream) {
  switch (plan.variant) {
    case FilterVariant::k3x3:
      return LaunchDbfVariant<T, Index, 3, 3>(s, plan, x, dy, partial, dw, stream);
    case FilterVariant::k5x5:
      return LaunchDbfVariant<T, Index, 5, 5>(s, plan, x, dy, partial, dw, stream);
    case FilterVariant::kGeneric:
      break;
  }
  return LaunchDbfVariant<T, Index, -1, -1>(s, plan, x, dy, partial, dw, stream);
}

template <typename T>
size_t DbfScratchBytes(const ConvGeometry& s, const LaunchOptions& o) {
  return PlanDbf<T>(s, o, nullptr, nullptr).scratch;
}

template <typename T>
cudaError_t LaunchDbf(const ConvGeometry& s, const LaunchOptions& o, const T* x, const T* dy, T* dw,
                      void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  const DbfPlan<T> plan = PlanDbf<T>(s, o, x, dy);
  if (scratch_bytes < plan.scratch || (plan.scratch > 0 && scratch == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (plan.tiles > std::numeric_limits<int32_t>::max()) return cudaErrorInvalidValue;  // grid.x
  Acc<T>* partial = static_cast<Acc<T>*>(scratch);
  return plan.index64 ? LaunchDbfIndexed<T, int64_t>(s, plan, x, dy, partial, dw, stream)
                      : LaunchDbfIndexed<T, int32_t>(s, plan, x, dy, partial, dw, stream);
}

template <typename T>
std::string DescribeDbf(const ConvGeometry& s, const LaunchOptions& o) {
  const DbfPlan<T> plan = PlanDbf<T>(s, o, nullptr, nullptr);
  return Format("dbf.%s.%s.%s grid=%lldx%lld", s.nchw ? "nchw" : "nhwc", VariantName(plan.variant),
                plan.index64 ? "i64" : "i32", static_cast<long long>(plan.tiles),
                static_cast<long long>(plan.splits));
}

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_GPU_DEPTHWISE_BACKPROP_GPU_CU_H_
