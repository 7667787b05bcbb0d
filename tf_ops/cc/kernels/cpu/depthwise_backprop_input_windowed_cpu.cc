// dbi's windowed path (see depthwise_backprop_input_cpu.h), run as planned by
// PlanDbi (depthwise_backprop_input_cpu.cc).
//
// The windowed path: dilation_cols == 1 and at most kMaxPairs taps per column
// phase, which covers every filter width up to 7 at any stride.
//
// Columns are split by phase: the pixels w = w0, w0 + s, w0 + 2s, ... (w0 < s)
// receive from the same taps j_p = j0 + p * s (p < P), and pixel t of the phase
// reads out_backprop column base + t - p for tap p. So a block of B pixels
// needs P + B - 1 consecutive columns, each loaded once into a register and
// used by every pixel it feeds. B is 8, or 7 where that wastes fewer pixel
// slots (phases of 7, 14 or 28 pixels: 12.5% of the kernel's work with 8).
//
// out_backprop rows are packed as [channel block][m][column][lanes], columns
// zero-padded on both sides so that every pixel (edges included) runs the same
// unrolled kernel, and the loads of one block are constant offsets from one
// pointer. The filter is packed as [channel block][m][i][j][lanes].
// Summation order for a dx element: contributing rows in decreasing i, then m,
// then taps in decreasing j; it depends only on the geometry.
// Scratch: the packed filter, plus per running worker filter_rows packed rows
// of round_up(C, lanes) * M * (columns + padding) accumulators and, unless dx
// is NHWC with C a multiple of the lanes, one dx row.
#include <atomic>
#include <type_traits>
#include <vector>

#include "tf_ops/cc/kernels/cpu/depthwise_backprop_input_cpu.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

using internal::AccType;
using internal::CeilDiv;
using internal::kLanes;
using internal::Layout4;
using internal::Prefetcher;
using internal::RoundUp;
using internal::RowCache;
using internal::Scratch;

namespace {

// What one row's blocks share: per contributing filter row k, the packed
// out_backprop row (at channel block 0, m 0, the phase's first column) and the
// packed filter (at channel block 0, m 0, row i_k, tap j0); and the strides.
template <typename A>
struct WindowArgs {
  const A* const* drow;
  const A* const* frow;
  int64_t nrows, multiplier;
  int64_t d_m_stride, d_cb_stride;                 // packed out_backprop
  int64_t f_m_stride, f_cb_stride, f_pair_stride;  // packed filter
  int64_t dst_step;                                // dx, between the block's pixels
  bool stream;                                     // non-temporal dx stores
  // 16-bit streaming by whole lines: every call's channel blocks come in pairs
  // (cb0 even) that fill a 64-byte aligned line per pixel.
  bool stream_pairs;
};

// B pixels (nvalid of them stored) whose window starts `off` elements into the
// packed rows, for channel blocks [cb0, cb1); dst is pixel 0 at channel 0, of
// type O: dx itself (rounded to it if 16-bit) or an accumulator row.
template <typename O, typename A, int P, int B>
void WindowBlock(const WindowArgs<A>& w, int64_t off, O* dst, int64_t nvalid, int64_t cb0,
                 int64_t cb1) {
  constexpr int64_t V = kLanes<A>;
  constexpr bool k16 = sizeof(O) == 2;
  off += cb0 * w.d_cb_stride;
  dst += cb0 * V;
  // Whole-line pairs: the first block's results are held until the second's are done.
  const bool pairs = k16 && w.stream_pairs && nvalid == B;
  internal::Vec<A> held[B] = {};
  for (int64_t cb = cb0; cb < cb1; ++cb, off += w.d_cb_stride, dst += V) {
    internal::Vec<A> r[B] = {};
    for (int64_t k = 0; k < w.nrows; ++k) {
      const A* d = w.drow[k] + off;
      const A* f = w.frow[k] + cb * w.f_cb_stride;
      for (int64_t m = 0; m < w.multiplier; ++m, d += w.d_m_stride, f += w.f_m_stride) {
        internal::Vec<A> fv[P];
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) fv[p] = internal::LoadVec(f + p * w.f_pair_stride);
#pragma GCC unroll 16
        for (int u = 0; u < P + B - 1; ++u) {
          const internal::Vec<A> dv = internal::LoadVec(d + u * V);
#pragma GCC unroll 8
          for (int t = 0; t < B; ++t) {
            const int p = P - 1 - (u - t);
            if (p >= 0 && p < P) r[t] += fv[p] * dv;
          }
        }
      }
    }
    if constexpr (k16) {
      if (pairs) {
        if ((cb - cb0) % 2 == 0) {
#pragma GCC unroll 8
          for (int t = 0; t < B; ++t) held[t] = r[t];
        } else {
#pragma GCC unroll 8
          for (int t = 0; t < B; ++t) {
            internal::StreamLineFromAcc<O, A>(dst - V + t * w.dst_step, held[t], r[t]);
          }
        }
        continue;
      }
    }
    if (nvalid == B && w.stream) {
#pragma GCC unroll 8
      for (int t = 0; t < B; ++t) internal::StoreFromAcc<O, A, true>(dst + t * w.dst_step, r[t]);
    } else {
#pragma GCC unroll 8
      for (int t = 0; t < B; ++t) {
        if (t < nvalid) internal::StoreFromAcc<O, A>(dst + t * w.dst_step, r[t]);
      }
    }
  }
}

template <typename O, typename A>
using WindowBlockFn = void (*)(const WindowArgs<A>&, int64_t, O*, int64_t, int64_t, int64_t);

template <typename O, typename A, int B>
WindowBlockFn<O, A> WindowBlockFor(int64_t pairs) {
  switch (pairs) {
    case 1:
      return &WindowBlock<O, A, 1, B>;
    case 2:
      return &WindowBlock<O, A, 2, B>;
    case 3:
      return &WindowBlock<O, A, 3, B>;
    case 4:
      return &WindowBlock<O, A, 4, B>;
    case 5:
      return &WindowBlock<O, A, 5, B>;
    case 6:
      return &WindowBlock<O, A, 6, B>;
    case 7:
      return &WindowBlock<O, A, 7, B>;
    default:
      return nullptr;
  }
}

template <typename O, typename A>
WindowBlockFn<O, A> WindowBlockFor(int64_t pairs, int64_t block) {
  return block == 7 ? WindowBlockFor<O, A, 7>(pairs) : WindowBlockFor<O, A, 8>(pairs);
}

// Packs out_backprop row (b, ho) as [channel block][m][column - col_lo][lanes],
// zeros in the padding columns and lanes. (A function with by-value arguments:
// the stores go through memcpy, which may alias anything a lambda captures.)
template <typename T, typename A>
void PackWindowRow(const T* out_backprop, const Layout4 dl, int64_t b, int64_t ho, int64_t C,
                   int64_t M, int64_t col_lo, int64_t ncols, A* dst) {
  constexpr int64_t V = kLanes<A>;
  const int64_t nb = CeilDiv(C, V), out_cols = dl.cols;
  const int64_t plane = ncols * V;
  for (int64_t q = 0; q < nb * M; ++q) {
    A* p = dst + q * plane;
    std::fill(p, p + (-col_lo) * V, A(0));
    std::fill(p + (out_cols - col_lo) * V, p + plane, A(0));
  }
  if (nb * V != C) {
    for (int64_t m = 0; m < M; ++m) {
      A* p = dst + ((nb - 1) * M + m) * plane;
      for (int64_t col = -col_lo; col < out_cols - col_lo; ++col) {
        std::fill(p + col * V + C % V, p + (col + 1) * V, A(0));
      }
    }
  }
  if (!dl.nchw && M == 1 && nb * V == C) {
    // One channel block at a time: sequential stores, strided loads. (16-bit
    // per pixel with the channel blocks inner took 1.17-1.32x longer per
    // call: bfloat16, one thread, 14x14x672 k5 to 113x113x96 s2.)
    const T* src = out_backprop + dl.Offset(b, ho, 0, 0);
    for (int64_t cb = 0; cb < nb; ++cb) {
      A* p = dst + cb * plane - col_lo * V;
      const T* sc = src + cb * V;
      for (int64_t wo = 0; wo < out_cols; ++wo) {
        if constexpr (std::is_same<T, A>::value) {
          internal::StoreVec(p + wo * V, internal::LoadVec(sc + wo * C));
        } else {
          internal::ConvertToAcc(sc + wo * C, p + wo * V, V);
        }
      }
    }
  } else if (!dl.nchw) {
    const T* src = out_backprop + dl.Offset(b, ho, 0, 0);
    for (int64_t wo = 0; wo < out_cols; ++wo, src += C * M) {
      A* p = dst + (wo - col_lo) * V;
      for (int64_t cb = 0; cb < nb; ++cb) {
        const int64_t lanes = std::min(V, C - cb * V);
        const T* sc = src + cb * V * M;
        if (M == 1 && lanes == V) {  // whole vector: fixed trip count, vectorised
          if constexpr (std::is_same<T, A>::value) {
            internal::StoreVec(p + cb * plane, internal::LoadVec(sc));
          } else {
            internal::ConvertToAcc(sc, p + cb * plane, V);
          }
        } else if (M == 1) {
          A* pc = p + cb * plane;
          for (int64_t l = 0; l < lanes; ++l) pc[l] = internal::ToAcc<T, A>(sc[l]);
        } else {
          for (int64_t m = 0; m < M; ++m) {
            A* pc = p + (cb * M + m) * plane;
            for (int64_t l = 0; l < lanes; ++l) pc[l] = internal::ToAcc<T, A>(sc[l * M + m]);
          }
        }
      }
    }
  } else {
    for (int64_t q = 0; q < C * M; ++q) {
      const T* src = out_backprop + dl.Offset(b, ho, 0, q);
      const int64_t c = q / M, m = q % M;
      A* p = dst + ((c / V) * M + m) * plane + (-col_lo) * V + c % V;
      for (int64_t wo = 0; wo < out_cols; ++wo) p[wo * V] = internal::ToAcc<T, A>(src[wo]);
    }
  }
}

}  // namespace

template <typename T>
bool WindowedBackpropInput(const ConvGeometry& g, const DbiPlan& plan, const T* filter,
                           const T* out_backprop, T* input_backprop,
                           const ParallelFor& parallel_for) {
  using A = typename AccType<T>::type;
  constexpr int64_t V = kLanes<A>;
  const int64_t C = g.in_depth, M = g.depth_multiplier;
  const int64_t KR = g.filter_rows, KC = g.filter_cols, s = g.stride_cols;
  const int64_t nb = CeilDiv(C, V);  // channel blocks
  const int64_t padded = nb * V;
  const std::vector<Phase>& phases = plan.phases;
  const int64_t col_lo = plan.col_lo, ncols = plan.ncols;
  const int64_t row_elems = nb * M * ncols * V;

  // Filter as [cb][m][i][j][lanes] (HWIO [KR, KC, C, M]).
  Scratch<A> filt(nb * M * KR * KC * V);
  if (!filt.ok()) return false;
  std::fill(filt.get(), filt.get() + nb * M * KR * KC * V, A(0));
  // Lane-contiguous destination runs: with element-wise scatter (c / V, c % V per
  // element) this packing took half of a one-image 7x7x1152 k5 call.
  for (int64_t i = 0; i < KR; ++i) {
    for (int64_t j = 0; j < KC; ++j) {
      const T* src = filter + (i * KC + j) * C * M;
      for (int64_t cb = 0; cb < nb; ++cb) {
        const int64_t lanes = std::min<int64_t>(V, C - cb * V);
        const T* __restrict s_cb = src + cb * V * M;
        for (int64_t m = 0; m < M; ++m) {
          A* __restrict d = filt.get() + (((cb * M + m) * KR + i) * KC + j) * V;
          for (int64_t l = 0; l < lanes; ++l) d[l] = internal::ToAcc<T, A>(s_cb[l * M + m]);
        }
      }
    }
  }
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw != 0};
  const Layout4 xl{g.in_rows, g.in_cols, C, g.nchw != 0};
  const bool direct = plan.direct, prefetch = plan.prefetch;
  const int64_t cb_step = plan.cb_step, calls_per_row = plan.calls_per_row;
  const bool stream = plan.stream, stream_pairs = plan.stream_pairs;
  std::atomic<bool> failed{false};
  const int64_t cost =
      std::max<int64_t>(1, g.in_cols * padded * (M * KR * KC / (g.stride_rows * s) + 1));
  const int64_t units = g.batch * g.in_rows;
  const int64_t tasks = plan.tasks;
  internal::ForRanges(parallel_for, units, tasks, cost, [&](int64_t u_begin, int64_t u_end) {
    RowCache<A> rows;
    Scratch<A> acc(direct ? 1 : g.in_cols * padded);
    if (!rows.Init(std::max<int64_t>(KR, 1), row_elems) || !acc.ok()) {
      failed = true;
      return;
    }
    std::vector<int64_t> row_i, row_ho;
    std::vector<const A*> row_ptr, drow, frow;
    int64_t prefetched = -1;  // key of the last row prefetched
    for (int64_t u = u_begin; u < u_end; ++u) {
      const int64_t b = u / g.in_rows, h = u % g.in_rows;
      row_i.clear();
      row_ho.clear();
      row_ptr.clear();
      // Increasing ho (decreasing i), so that the LRU cache keeps the rows the
      // next dx row needs.
      for (int64_t i = KR - 1; i >= 0; --i) {
        const int64_t t = h + g.pad_top - i * g.dilation_rows;
        if (t < 0 || t % g.stride_rows != 0 || t / g.stride_rows >= g.out_rows) continue;
        const int64_t ho = t / g.stride_rows;
        row_i.push_back(i);
        row_ho.push_back(ho);
        row_ptr.push_back(rows.Get(b * g.out_rows + ho, [&](A* p) {
          PackWindowRow(out_backprop, dl, b, ho, C, M, col_lo, ncols, p);
        }));
      }
      const int64_t nrows = static_cast<int64_t>(row_i.size());
      drow.resize(nrows);
      frow.resize(nrows);
      // Prefetch (into L2), spread over this row's blocks, the out_backprop row that
      // the next dx row will pack, so that its loads overlap this row's arithmetic.
      Prefetcher pf;
      if (prefetch && !row_ho.empty() && row_ho.back() + 1 < g.out_rows &&
          b * g.out_rows + row_ho.back() + 1 > prefetched) {
        prefetched = b * g.out_rows + row_ho.back() + 1;
        pf.Add(out_backprop + dl.Offset(b, row_ho.back() + 1, 0, 0),
               g.out_cols * C * M * int64_t{sizeof(T)});
        pf.Spread(calls_per_row);
      }
      // The row's blocks into a (dx's row, or the accumulator row), whose pixels
      // are pix elements apart.
      auto run_row = [&](auto* a, int64_t pix) {
        using O = std::remove_pointer_t<decltype(a)>;
        for (const Phase& ph : phases) {
          const WindowBlockFn<O, A> fn = WindowBlockFor<O, A>(ph.pairs, ph.block);
          const int64_t B = ph.block;
          O* dst = a + ph.w0 * pix;
          if (fn == nullptr) {  // no tap reaches this phase
            for (int64_t t = 0; t < ph.count; ++t) {
              std::fill(dst + t * s * pix, dst + t * s * pix + padded, O(0));
            }
            continue;
          }
          for (int64_t k = 0; k < nrows; ++k) {
            drow[k] = row_ptr[k] + (ph.base - col_lo) * V;
            frow[k] = filt.get() + (row_i[k] * KC + ph.j0) * V;
          }
          const WindowArgs<A> args{drow.data(), frow.data(),   nrows,       M,
                                   ncols * V,   M * ncols * V, KR * KC * V, M * KR * KC * V,
                                   s * V,       s * pix,       stream,      stream_pairs};
          for (int64_t cb = 0; cb < nb; cb += cb_step) {
            for (int64_t t = 0; t < ph.count; t += B) {
              pf.Step();
              fn(args, t * V, dst + t * s * pix, std::min<int64_t>(B, ph.count - t), cb,
                 std::min(cb + cb_step, nb));
            }
          }
        }
      };
      if (direct) {
        run_row(input_backprop + xl.Offset(b, h, 0, 0), C);
      } else {
        run_row(acc.get(), padded);
        StoreDxRow(acc.get(), padded, xl, b, h, input_backprop);
      }
    }
  });
  return !failed;
}

#define TF_CONVGRAD_INSTANTIATE_(T, unused)                                                       \
  template bool WindowedBackpropInput<T>(const ConvGeometry&, const DbiPlan&, const T*, const T*, \
                                         T*, const ParallelFor&);
TF_CONVGRAD_TYPES(TF_CONVGRAD_INSTANTIATE_, )
#undef TF_CONVGRAD_INSTANTIATE_

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
