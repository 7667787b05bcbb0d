// dbi's gather path (see depthwise_backprop_input_cpu.h): per pixel, or 4
// pixels that share their terms; any dilation and filter width.
#include <atomic>
#include <type_traits>
#include <vector>

#include "tf_ops/cc/kernels/cpu/depthwise_backprop_input_cpu.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

using internal::AccType;
using internal::kLanes;
using internal::Layout4;
using internal::RoundUp;
using internal::RowCache;
using internal::Scratch;

namespace {

// Packs row r of image b of a tensor with depth C * repeat into
// dst[cols][repeat][padded_depth]: dst[w][k][c] = src[b, r, w, c * repeat + k],
// zeros in the padding lanes (the depthwise "c * M + m" channels split by m).
template <typename T, typename A>
void PackRowSplit(const T* src, const Layout4& l, int64_t b, int64_t r, int64_t repeat,
                  int64_t padded_depth, A* dst) {
  if (repeat == 1) {
    internal::PackRow(src, l, b, r, 1, padded_depth, dst);
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
          d[k * padded_depth + c] = internal::ToAcc<T, A>(s[c * repeat + k]);
      }
    }
  } else {
    for (int64_t q = 0; q < l.depth; ++q) {
      const T* s = src + l.Offset(b, r, 0, q);
      A* d = dst + (q % repeat) * padded_depth + q / repeat;
      for (int64_t w = 0; w < l.cols; ++w) d[w * row] = internal::ToAcc<T, A>(s[w]);
    }
  }
}

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

template <typename T>
bool GatherBackpropInput(const ConvGeometry& g, const T* filter, const T* out_backprop,
                         T* input_backprop, const ParallelFor& parallel_for) {
  using A = typename AccType<T>::type;
  constexpr int64_t V = kLanes<A>;
  const int64_t C = g.in_depth, M = g.depth_multiplier;
  const int64_t taps = g.filter_rows * g.filter_cols;
  const int64_t units = g.batch * g.in_rows;
  if (units == 0 || g.in_cols == 0 || C == 0) return true;
  const Layout4 xl{g.in_rows, g.in_cols, C, g.nchw != 0};
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
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw != 0};
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

#define TF_CONVGRAD_INSTANTIATE_(T, unused)                                         \
  template bool GatherBackpropInput<T>(const ConvGeometry&, const T*, const T*, T*, \
                                       const ParallelFor&);
TF_CONVGRAD_TYPES(TF_CONVGRAD_INSTANTIATE_, )
#undef TF_CONVGRAD_INSTANTIATE_

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
