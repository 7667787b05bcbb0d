// DepthwiseConv2dNativeBackpropInput on CPU.
//
// dx[b, h, w, c] = sum over taps (i, j) and m, with h = ho * s_h - pad_top + i * d_h and
//                  w = wo * s_w - pad_left + j * d_w, of f[i, j, c, m] * dy[b, ho, wo, c * M + m]
//
// Each worker owns whole rows (b, h) of dx, so no two workers write the same
// element and no reduction is needed. For one row it gathers, for every column
// w and vector of channels, all contributing (i, j, m) terms into registers in
// a fixed order (float for 16-bit T, double for double), then rounds once.
//
// Two paths:
// * windowed (dilation_cols == 1 and at most 7 taps per column phase, so every
//   filter width up to 7 at any stride): blocks of 7 or 8 pixels of one column phase
//   share a sliding window of out_backprop columns held in registers; see
//   WindowedBackpropInput below.
// * gather (everything else): per pixel, or 4 pixels that share their terms. The
//   filter is repacked as [tap][m][c] and out_backprop rows as [wo][m][c],
//   channels padded to the vector width. Scratch: the packed filter, plus per
//   running worker one dx row and filter_rows packed out_backprop rows.
#include <atomic>
#include <type_traits>
#include <vector>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

using internal::AccType;
using internal::CeilDiv;
using internal::kLanes;
using internal::Layout4;
using internal::PackRowSplit;
using internal::Prefetcher;
using internal::RoundUp;
using internal::RowCache;
using internal::Scratch;

namespace {

// The terms of one dx pixel: contributing filter rows (with their packed
// out_backprop rows) and (tap column, output column) pairs.
template <typename A>
struct Gather {
  const int64_t* row_i;
  const A* const* row_ptr;
  int64_t rows;
  const int64_t* pair_j;
  const int64_t* pair_wo;
  int64_t pairs;
  const A* filt;
  int64_t filter_cols, multiplier, padded;

  // dst[0 : NB vectors] = sum over (i, j, m) of f[i, j, m, c0:] * dy[i][wo, m, c0:], with NB
  // independent accumulators so the FMA chains overlap; fixed order.
  template <int NB>
  void Run(int64_t c0, A* dst) const {
    constexpr int64_t V = internal::kLanes<A>;
    internal::Vec<A> r[NB] = {};
    for (int64_t k = 0; k < rows; ++k) {
      const A* f_row = filt + row_i[k] * filter_cols * multiplier * padded + c0;
      const A* dy_row = row_ptr[k] + c0;
      for (int64_t p = 0; p < pairs; ++p) {
        const A* f = f_row + pair_j[p] * multiplier * padded;
        const A* d = dy_row + pair_wo[p] * multiplier * padded;
        for (int64_t m = 0; m < multiplier; ++m, f += padded, d += padded) {
          for (int b = 0; b < NB; ++b) {
            r[b] += internal::LoadVec(f + b * V) * internal::LoadVec(d + b * V);
          }
        }
      }
    }
    for (int b = 0; b < NB; ++b) internal::StoreVec(dst + b * V, r[b]);
  }

  // The same sum for kPixels pixels w, w + s, w + 2s, ... whose (i, j) terms are
  // identical and whose output columns are wo, wo + 1, wo + 2, ...: one vector of
  // channels, kPixels independent accumulators (same order per pixel as Run).
  static constexpr int kPixels = 4;
  void RunPixels(int64_t c0, A* dst, int64_t dst_step) const {
    internal::Vec<A> r[kPixels] = {};
    const int64_t wo_step = multiplier * padded;
    for (int64_t k = 0; k < rows; ++k) {
      const A* f_row = filt + row_i[k] * filter_cols * multiplier * padded + c0;
      const A* dy_row = row_ptr[k] + c0;
      for (int64_t p = 0; p < pairs; ++p) {
        const A* f = f_row + pair_j[p] * multiplier * padded;
        const A* d = dy_row + pair_wo[p] * wo_step;
        for (int64_t m = 0; m < multiplier; ++m, f += padded, d += padded) {
          const internal::Vec<A> fv = internal::LoadVec(f);
          for (int t = 0; t < kPixels; ++t) r[t] += fv * internal::LoadVec(d + t * wo_step);
        }
      }
    }
    for (int t = 0; t < kPixels; ++t) internal::StoreVec(dst + t * dst_step, r[t]);
  }

  // RunPixels for the common case where the pairs' output columns are consecutive and
  // descending (pair_wo[p] = pair_wo[0] - p, e.g. stride 1 and dilation 1): pixel t's term p
  // reads out_backprop column pair_wo[kPairs - 1] + u with u = t + kPairs - 1 - p, so each of
  // the kPairs + kPixels - 1 columns is loaded once and feeds every pixel that uses it.
  template <int kPairs>
  void RunWindow(int64_t c0, A* dst, int64_t dst_step) const {
    internal::Vec<A> r[kPixels] = {};
    const int64_t wo_step = multiplier * padded;
    for (int64_t k = 0; k < rows; ++k) {
      const A* f_row = filt + row_i[k] * filter_cols * multiplier * padded + c0;
      const A* dy_row = row_ptr[k] + pair_wo[kPairs - 1] * wo_step + c0;
      for (int64_t m = 0; m < multiplier; ++m) {
        internal::Vec<A> fv[kPairs];
        for (int p = 0; p < kPairs; ++p) {
          fv[p] = internal::LoadVec(f_row + pair_j[p] * multiplier * padded + m * padded);
        }
        for (int u = 0; u < kPairs + kPixels - 1; ++u) {
          const internal::Vec<A> d = internal::LoadVec(dy_row + u * wo_step + m * padded);
          for (int t = 0; t < kPixels; ++t) {
            const int p = kPairs - 1 - (u - t);
            if (p >= 0 && p < kPairs) r[t] += fv[p] * d;
          }
        }
      }
    }
    for (int t = 0; t < kPixels; ++t) internal::StoreVec(dst + t * dst_step, r[t]);
  }

  // RunWindow<pairs> when it applies to this pixel block, else RunPixels.
  void RunBlock(bool consecutive, int64_t c0, A* dst, int64_t dst_step) const {
    if (consecutive) {
      switch (pairs) {
        case 1:
          return RunWindow<1>(c0, dst, dst_step);
        case 2:
          return RunWindow<2>(c0, dst, dst_step);
        case 3:
          return RunWindow<3>(c0, dst, dst_step);
        case 4:
          return RunWindow<4>(c0, dst, dst_step);
        case 5:
          return RunWindow<5>(c0, dst, dst_step);
        case 6:
          return RunWindow<6>(c0, dst, dst_step);
        case 7:
          return RunWindow<7>(c0, dst, dst_step);
        default:
          break;
      }
    }
    RunPixels(c0, dst, dst_step);
  }
};

}  // namespace

// Rounds dx row (b, h) from the accumulator row a ([w][padded]) into dx.
template <typename T, typename A>
void StoreDxRow(const A* a, int64_t padded, const Layout4& xl, int64_t b, int64_t h,
                T* input_backprop) {
  const int64_t C = xl.depth;
  if (!xl.nchw) {
    T* out = input_backprop + xl.Offset(b, h, 0, 0);
    for (int64_t w = 0; w < xl.cols; ++w) internal::ConvertFromAcc(a + w * padded, out + w * C, C);
  } else {
    for (int64_t c = 0; c < C; ++c) {
      T* out = input_backprop + xl.Offset(b, h, 0, c);
      for (int64_t w = 0; w < xl.cols; ++w) out[w] = internal::FromAcc<T, A>(a[w * padded + c]);
    }
  }
}

// The general path: any dilation and filter width.
template <typename T>
bool GatherBackpropInput(const ConvGeometry& g, const T* filter, const T* out_backprop,
                         T* input_backprop, const ParallelFor& parallel_for) {
  using A = typename AccType<T>::type;
  constexpr int64_t V = kLanes<A>;
  const int64_t C = g.in_depth, M = g.depth_multiplier;
  const int64_t taps = g.filter_rows * g.filter_cols;
  const int64_t units = g.batch * g.in_rows;
  if (units == 0 || g.in_cols == 0 || C == 0) return true;
  const Layout4 xl{g.in_rows, g.in_cols, C, g.nchw};
  const bool nothing = M == 0 || taps == 0 || g.out_rows == 0 || g.out_cols == 0;
  const int64_t padded = RoundUp(C, V);

  // Filter as [tap][m][c] (HWIO [fh, fw, C, M] has f[t, c, m] at (t * C + c) * M + m).
  Scratch<A> filt(nothing ? 1 : taps * M * padded);
  if (!filt.ok()) return false;
  if (!nothing) {
    std::fill(filt.get(), filt.get() + taps * M * padded, A(0));
    for (int64_t t = 0; t < taps; ++t) {
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t m = 0; m < M; ++m) {
          filt.get()[(t * M + m) * padded + c] = internal::ToAcc<T, A>(filter[(t * C + c) * M + m]);
        }
      }
    }
  }
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw};
  // For every input column w, the (tap column j, output column wo) pairs with
  // wo * s_w - pad_left + j * d_w == w, in increasing j.
  std::vector<int64_t> pair_begin(g.in_cols + 1, 0), pair_j, pair_wo;
  for (int64_t w = 0; w < g.in_cols; ++w) {
    for (int64_t j = 0; j < g.filter_cols && !nothing; ++j) {
      const int64_t t = w + g.pad_left - j * g.dilation_cols;
      if (t < 0 || t % g.stride_cols != 0 || t / g.stride_cols >= g.out_cols) continue;
      pair_j.push_back(j);
      pair_wo.push_back(t / g.stride_cols);
    }
    pair_begin[w + 1] = static_cast<int64_t>(pair_j.size());
  }
  // regular[w]: pixels w + t * s_w (t < kPixels) exist and share w's terms,
  // shifted by t output columns, so RunPixels can do them together.
  constexpr int64_t kPixels = Gather<A>::kPixels;
  std::vector<char> regular(g.in_cols, 0), consecutive(g.in_cols, 0);
  for (int64_t w = 0; w + (kPixels - 1) * g.stride_cols < g.in_cols; ++w) {
    const int64_t n = pair_begin[w + 1] - pair_begin[w];
    bool ok = n > 0;
    for (int64_t t = 1; t < kPixels && ok; ++t) {
      const int64_t w2 = w + t * g.stride_cols;
      ok = pair_begin[w2 + 1] - pair_begin[w2] == n;
      for (int64_t p = 0; p < n && ok; ++p) {
        ok = pair_j[pair_begin[w2] + p] == pair_j[pair_begin[w] + p] &&
             pair_wo[pair_begin[w2] + p] == pair_wo[pair_begin[w] + p] + t;
      }
    }
    regular[w] = ok;
    if (ok) {
      bool run = true;
      for (int64_t p = 1; p < n && run; ++p) {
        run = pair_wo[pair_begin[w] + p] == pair_wo[pair_begin[w]] - p;
      }
      consecutive[w] = run;
    }
  }
  // Rows of float NHWC out_backprop with M == 1 and a whole number of vectors
  // per pixel already have the packed layout.
  const bool in_place = std::is_same<T, A>::value && !g.nchw && M == 1 && padded == C;
  std::atomic<bool> failed{false};
  const int64_t cost = std::max<int64_t>(
      1, g.in_cols * padded * (nothing ? 1 : M * taps / (g.stride_rows * g.stride_cols) + 1));
  // Each task packs its own rows, so give it enough dx rows to reuse them.
  const int64_t tasks =
      std::min(internal::kMaxTasks, std::max<int64_t>(1, units / (4 * g.filter_rows + 1)));
  internal::ForRanges(parallel_for, units, tasks, cost, [&](int64_t u_begin, int64_t u_end) {
    RowCache<A> rows;
    Scratch<A> acc(g.in_cols * padded);
    if ((!nothing && !rows.Init(g.filter_rows, g.out_cols * M * padded)) || !acc.ok()) {
      failed = true;
      return;
    }
    std::vector<int64_t> row_i;
    std::vector<const A*> row_ptr;
    for (int64_t u = u_begin; u < u_end; ++u) {
      const int64_t b = u / g.in_rows, h = u % g.in_rows;
      // The packed out_backprop rows this input row receives from, one per
      // contributing filter row i. At most filter_rows rows are fetched, so
      // the cache keeps all of them alive.
      row_i.clear();
      row_ptr.clear();
      // Increasing ho (decreasing i), so that the LRU cache keeps the rows the
      // next dx row needs.
      for (int64_t i = g.filter_rows - 1; i >= 0 && !nothing; --i) {
        const int64_t t = h + g.pad_top - i * g.dilation_rows;
        if (t < 0 || t % g.stride_rows != 0 || t / g.stride_rows >= g.out_rows) continue;
        const int64_t ho = t / g.stride_rows;
        row_i.push_back(i);
        row_ptr.push_back(in_place
                              ? reinterpret_cast<const A*>(out_backprop + dl.Offset(b, ho, 0, 0))
                              : rows.Get(b * g.out_rows + ho, [&](A* p) {
                                  PackRowSplit(out_backprop, dl, b, ho, M, padded, p);
                                }));
      }
      A* a = acc.get();
      auto gather_at = [&](int64_t w) {
        return Gather<A>{row_i.data(),
                         row_ptr.data(),
                         static_cast<int64_t>(row_i.size()),
                         pair_j.data() + pair_begin[w],
                         pair_wo.data() + pair_begin[w],
                         pair_begin[w + 1] - pair_begin[w],
                         filt.get(),
                         g.filter_cols,
                         M,
                         padded};
      };
      // Columns in stride phase order: w, w + s, ... share their terms' shape.
      for (int64_t phase = 0; phase < std::min(g.stride_cols, g.in_cols); ++phase) {
        for (int64_t w = phase; w < g.in_cols;) {
          const Gather<A> gather = gather_at(w);
          if (regular[w]) {
            for (int64_t c0 = 0; c0 < padded; c0 += V) {
              gather.RunBlock(consecutive[w], c0, a + w * padded + c0, g.stride_cols * padded);
            }
            w += kPixels * g.stride_cols;
            continue;
          }
          int64_t c0 = 0;
          for (; c0 + 4 * V <= padded; c0 += 4 * V) {
            gather.template Run<4>(c0, a + w * padded + c0);
          }
          for (; c0 < padded; c0 += V) gather.template Run<1>(c0, a + w * padded + c0);
          w += g.stride_cols;
        }
      }
      StoreDxRow(a, padded, xl, b, h, input_backprop);
    }
  });
  return !failed;
}

namespace {

// ---------------------------------------------------------------------------
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
constexpr int64_t kMaxPairs = 7;

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

// The block size for a phase of `count` pixels: 7 where it leaves fewer unused
// pixel slots than 8, else 8.
int64_t PhaseBlock(int64_t count) { return RoundUp(count, 7) < RoundUp(count, 8) ? 7 : 8; }

// One column phase: pixels w0 + t * s (t < count) with taps j0 + p * s (p < pairs);
// pixel t's tap p reads packed column base + t - p (relative to the packed row start).
struct Phase {
  int64_t w0, count, j0, pairs, base, block;
};

bool UseWindowed(const ConvGeometry& g) {
  if (g.dilation_cols != 1) return false;
  return CeilDiv(g.filter_cols, g.stride_cols) <= kMaxPairs;
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

template <typename T>
bool WindowedBackpropInput(const ConvGeometry& g, const T* filter, const T* out_backprop,
                           T* input_backprop, const ParallelFor& parallel_for) {
  using A = typename AccType<T>::type;
  constexpr int64_t V = kLanes<A>;
  const int64_t C = g.in_depth, M = g.depth_multiplier;
  const int64_t KR = g.filter_rows, KC = g.filter_cols, s = g.stride_cols;
  const int64_t nb = CeilDiv(C, V);  // channel blocks
  const int64_t padded = nb * V;

  // Phases and the packed column range [col_lo, col_hi) they read.
  std::vector<Phase> phases;
  int64_t col_lo = 0, col_hi = g.out_cols;
  for (int64_t w0 = 0; w0 < std::min(s, g.in_cols); ++w0) {
    Phase ph;
    ph.w0 = w0;
    ph.count = (g.in_cols - w0 + s - 1) / s;
    ph.j0 = (w0 + g.pad_left) % s;
    ph.pairs = ph.j0 < KC ? CeilDiv(KC - ph.j0, s) : 0;
    const int64_t wo0 = (w0 + g.pad_left - ph.j0) / s;  // tap j0's column for t = 0
    ph.base = wo0 - (ph.pairs - 1);
    ph.block = PhaseBlock(ph.count);
    col_lo = std::min(col_lo, ph.base);
    col_hi = std::max(col_hi, wo0 + RoundUp(ph.count, ph.block));
    phases.push_back(ph);
  }
  const int64_t ncols = col_hi - col_lo;
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
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw};
  const Layout4 xl{g.in_rows, g.in_cols, C, g.nchw};
  // Packs out_backprop row (b, ho) as [cb][m][column - col_lo][lanes].
  // NHWC with whole vectors per pixel: blocks store straight into dx (rounding
  // to T when it is 16-bit), with no accumulator row and no conversion pass.
  const bool direct = !g.nchw && padded == C;
  // Software prefetch only where the tensors do not stay cached between calls.
  const bool prefetch = internal::WorthPrefetching(g, sizeof(T));
  std::atomic<bool> failed{false};
  const int64_t cost =
      std::max<int64_t>(1, g.in_cols * padded * (M * KR * KC / (g.stride_rows * s) + 1));
  int64_t blocks_per_row = 0;
  for (const Phase& ph : phases) blocks_per_row += CeilDiv(ph.count, ph.block);
  // Loop order within a phase. At stride 1 with more than one block, channel
  // block outermost (one channel block per call): the packed rows' part for one
  // channel block (nrows x ncols vectors) stays in L1 across the blocks.
  // Measured 4-21% faster than block outermost on the stride-1 layers of `bench`
  // (tools/cpu_cores_bench.cc), and 7-10% slower on the stride-2 ones, which
  // keep block outermost (all channel blocks per call).
  int64_t cb_step = s == 1 && blocks_per_row > 1 ? 1 : nb;
  // A dx larger than kStreamBytes is written around the caches (no read for
  // ownership: measured 7.4 -> 4.8 ms on 16x56x56x144), when 64-byte aligned;
  // a smaller one stays cached for its consumer.
  constexpr int64_t kStreamBytes = int64_t{4} << 20;
  const bool big = direct &&
                   g.batch * g.in_rows * g.in_cols * C * int64_t{sizeof(T)} > kStreamBytes &&
                   reinterpret_cast<uintptr_t>(input_backprop) % 64 == 0;
  // A 16-bit vector is half a cache line. Non-temporal stores of half lines
  // whose other half comes a whole row later (one channel block per call) ran
  // 1.2-1.6x slower than cached stores (bfloat16, one thread, 14x14x384 to
  // 112x112x32). Two channel blocks per call write whole lines, and stream
  // where their packed rows (2 x KR x ncols vectors) still fit in half of L1:
  // bfloat16 14x14x384, 14x14x576 and 14x14x672 k5 10-18% faster; 28x28x192
  // k7 (32 KiB of rows) 5% slower, so it keeps one block. WindowBlock streams
  // such pairs (and stride 2's all-block calls, nb even) as one 64-byte store
  // per pixel: on two threads 4-33% faster than two half-line stores on eight
  // bfloat16 layers (14x14x384 to 29x29x192 s2).
  constexpr int64_t kHalfL1Bytes = 16 << 10;
  if (sizeof(T) == 2 && big && cb_step == 1 && nb % 2 == 0 &&
      2 * KR * ncols * V * int64_t{sizeof(A)} <= kHalfL1Bytes) {
    cb_step = 2;
  }
  const bool stream = big && (sizeof(T) * V == 64 || cb_step == 2 || cb_step == nb);
  // With nb even, pixels (C * sizeof(T) bytes apart) and even channel blocks
  // start 64-byte lines of the aligned dx, and calls start at even blocks.
  const bool stream_pairs = stream && sizeof(T) == 2 && nb % 2 == 0;
  const int64_t calls_per_row = blocks_per_row * CeilDiv(nb, cb_step);
  // Each task packs its own rows, so give it enough dx rows (4 * KR) to reuse them;
  // a multiple of 4 tasks where there are several, so that 2 or 4 threads finish
  // together (batch-1 112x112x32: 9 tasks -> 12, about 5% faster on 2 threads).
  const int64_t units = g.batch * g.in_rows;
  int64_t tasks = std::min(internal::kMaxTasks, std::max<int64_t>(1, units / (4 * KR)));
  if (tasks > 1) tasks = std::min(units, RoundUp(tasks, 4));
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

}  // namespace

template <typename T>
bool DepthwiseBackpropInputCpu(const ConvGeometry& g, const T* filter, const T* out_backprop,
                               T* input_backprop, const ParallelFor& parallel_for) {
  const bool empty = g.batch * g.in_rows == 0 || g.in_cols == 0 || g.in_depth == 0;
  const bool nothing = g.depth_multiplier == 0 || g.filter_rows * g.filter_cols == 0 ||
                       g.out_rows == 0 || g.out_cols == 0;
  if (!empty && !nothing && UseWindowed(g)) {
    return WindowedBackpropInput(g, filter, out_backprop, input_backprop, parallel_for);
  }
  return GatherBackpropInput(g, filter, out_backprop, input_backprop, parallel_for);
}

TF_CONVGRAD_INSTANTIATE_CPU_CORE(DepthwiseBackpropInputCpu)

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
