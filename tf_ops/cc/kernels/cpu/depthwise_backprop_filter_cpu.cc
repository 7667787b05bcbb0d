// DepthwiseConv2dNativeBackpropFilter on CPU.
//
// dW[i, j, c, m] = sum_{b, ho, wo} x[b, h(ho, i), w(wo, j), c] * dy[b, ho, wo, c * M + m]
//
// Work is split into S "super-tasks", each a contiguous run of (b, ho) output
// rows; S depends only on the geometry. Each super-task accumulates into its
// own partial dW (float for 16-bit T), and the partials are summed in order
// s = 0..S-1, so the result does not depend on the thread count. Input rows are
// packed once per super-task into channel-contiguous rows with every channel
// repeated M times (so the inner loop is a plain vector multiply-add over the
// output channels q = c * M + m) and cached for the next output rows. Filter
// widths 2-7 at stride 1 or 2 (dilation 1) use a sliding window over four
// output columns (RowTapsWindow; for filters up to 3x3, RowsTapsWindow over all
// filter rows at once); the next rows are software-prefetched. At
// stride 1 with filters up to 3 wide, packed input rows carry zero columns for
// the padding, so edge columns run the window kernel too. The partials are
// summed vectorised, each element still in the order s = 0..S-1.
// Scratch: S partials of filter_rows * filter_cols * round_up(C * M, lanes)
// accumulators, capped at 64 MiB, plus per running worker filter_rows packed
// input rows (with their padding columns) and one packed out_backprop row.
#include <atomic>
#include <string>
#include <type_traits>
#include <vector>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {
namespace internal {

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

}  // namespace internal

using internal::AccType;
using internal::DotTile;
using internal::kLanes;
using internal::Layout4;
using internal::PackRow;
using internal::Prefetcher;
using internal::RoundUp;
using internal::RowCache;
using internal::RowTapsFn;
using internal::Scratch;
using internal::ValidRange;

namespace {

using internal::RowsTapsWindow;

template <typename A>
using RowsTapsFn = void (*)(const A* const*, int64_t, int64_t, const A*, int64_t, int64_t, A*,
                            int64_t, int64_t);

// The RowsTapsWindow instance for (filter_rows, filter_cols, stride), or nullptr.
template <typename A>
RowsTapsFn<A> RowsTapsWindowFor(int64_t rows, int64_t cols, int64_t stride) {
#define TF_CONVGRAD_ROWS_CASE(R, K, S) \
  if (rows == R && cols == K && stride == S) return &RowsTapsWindow<A, K, S, R>;
  TF_CONVGRAD_ROWS_CASE(2, 2, 1)
  TF_CONVGRAD_ROWS_CASE(2, 2, 2)
  TF_CONVGRAD_ROWS_CASE(2, 3, 1)
  TF_CONVGRAD_ROWS_CASE(2, 3, 2)
  TF_CONVGRAD_ROWS_CASE(3, 2, 1)
  TF_CONVGRAD_ROWS_CASE(3, 2, 2)
  TF_CONVGRAD_ROWS_CASE(3, 3, 1)
  TF_CONVGRAD_ROWS_CASE(3, 3, 2)
#undef TF_CONVGRAD_ROWS_CASE
  return nullptr;
}

constexpr int64_t kMaxFusedRows = 3;
constexpr int64_t kMaxSuperTasks = 32;
constexpr int64_t kPartialBudgetBytes = int64_t{64} << 20;
// Output rows this narrow always get zero-padded packed input rows.
constexpr int64_t kNarrowCols = 32;
// How dbf runs one (non-empty) geometry: every decision, made by PlanDbf
// before anything runs, then executed by DepthwiseBackpropFilterCpu.
template <typename A>
struct DbfPlan {
  int64_t supers = 1;  // super-tasks, each summing into its own partial dW
  // Per tap column j, the output columns [lo[j], hi[j]) whose input column is
  // inside the input; [mid_lo, mid_hi): those of every tap column.
  std::vector<int64_t> lo, hi;
  int64_t mid_lo = 0, mid_hi = 0;
  // Float NHWC out_backprop rows with a whole number of vectors per pixel
  // already have the packed layout.
  bool dy_in_place = false;
  RowTapsFn<A> window_fn = nullptr;  // tap spacing 1, stride 1 or 2: the windowed form
  RowTapsFn<A> taps_fn = nullptr;    // all taps of one filter row (window_fn or RowTaps)
  RowsTapsFn<A> rows_fn = nullptr;   // all filter rows at once (window form only)
  bool zero_pad_rows = false;        // input rows packed with zero columns for the padding
  bool in_place = false;             // input rows used as they are
  int64_t lead = 0;                  // zero columns before input column 0
  int64_t row_cols = 0;              // columns of a packed input row
  bool prefetch = false;             // software prefetch of the next rows

  // e.g. "dbf supers=32 taps=window rows=fused dy=in-place x=zero-padded"; for logs.
  std::string Describe() const {
    return "dbf supers=" + std::to_string(supers) + " taps=" +
           (window_fn ? "window"
            : taps_fn ? "row"
                      : "tile") +
           " rows=" + (rows_fn ? "fused" : "each") +
           " dy=" + (dy_in_place ? "in-place" : "packed") + " x=" +
           (in_place        ? "in-place"
            : zero_pad_rows ? "zero-padded"
                            : "packed") +
           (prefetch ? " prefetch" : "");
  }
};

template <typename T>
DbfPlan<typename AccType<T>::type> PlanDbf(const ConvGeometry& g) {
  using A = typename AccType<T>::type;
  constexpr int V = static_cast<int>(kLanes<A>);
  DbfPlan<A> plan;
  const int64_t taps = g.filter_rows * g.filter_cols;
  const int64_t units = g.batch * g.out_rows;
  const int64_t M = g.depth_multiplier;
  const int64_t padded = RoundUp(g.out_depth, V);
  const int64_t partial = taps * padded;
  int64_t supers = std::min(units, kMaxSuperTasks);
  supers = std::max<int64_t>(
      1, std::min<int64_t>(supers, kPartialBudgetBytes / (partial * int64_t{sizeof(A)})));
  plan.supers = supers;

  std::vector<int64_t>& lo = plan.lo;
  std::vector<int64_t>& hi = plan.hi;
  lo.resize(g.filter_cols);
  hi.resize(g.filter_cols);
  for (int64_t j = 0; j < g.filter_cols; ++j) {
    ValidRange(j * g.dilation_cols - g.pad_left, g.stride_cols, g.in_cols, g.out_cols, &lo[j],
               &hi[j]);
  }
  // Float NHWC out_backprop rows with a whole number of vectors per pixel
  // already have the packed layout; so do input rows if also M == 1.
  plan.dy_in_place = std::is_same<T, A>::value && !g.nchw && padded == g.out_depth;
  int64_t mid_lo = 0, mid_hi = g.out_cols;
  for (int64_t j = 0; j < g.filter_cols; ++j) {
    mid_lo = std::max(mid_lo, lo[j]);
    mid_hi = std::min(mid_hi, hi[j]);
  }
  plan.mid_lo = mid_lo;
  plan.mid_hi = mid_hi;
  // Tap spacing 1 and stride 1 or 2: the windowed form (fewer loads, more chains).
  plan.window_fn =
      g.dilation_cols == 1 ? internal::RowTapsWindowFor<A>(g.filter_cols, g.stride_cols) : nullptr;
  plan.taps_fn = plan.window_fn ? plan.window_fn : internal::RowTapsFor<A>(g.filter_cols);
  // Input rows packed with zero columns for the padding (from input column
  // -pad_left on), so that every output column runs the window kernel and none
  // goes tap by tap. Only for stride 1 and filters up to 3 wide (measured: at
  // stride 2 or on 5-wide filters the window's extra products over the zeros
  // cost more than the edges save), where rows are packed anyway or are
  // narrow, so that the edge columns are a large share of the work.
  const bool has_edges = mid_lo > 0 || mid_hi < g.out_cols;
  const bool in_place_possible = plan.dy_in_place && M == 1;
  plan.zero_pad_rows = plan.window_fn != nullptr && has_edges && g.stride_cols == 1 &&
                       g.filter_cols <= 3 && (!in_place_possible || g.out_cols <= kNarrowCols);
  plan.in_place = in_place_possible && !plan.zero_pad_rows;
  // All filter rows at once where the window kernel applies (see RowsTapsWindow).
  plan.rows_fn =
      plan.window_fn ? RowsTapsWindowFor<A>(g.filter_rows, g.filter_cols, g.stride_cols) : nullptr;
  plan.lead = plan.zero_pad_rows ? g.pad_left : 0;
  plan.row_cols = plan.zero_pad_rows ? std::max(plan.lead + g.in_cols,
                                                (g.out_cols - 1) * g.stride_cols + g.filter_cols)
                                     : g.in_cols;
  // Software prefetch only where the tensors do not stay cached between calls.
  plan.prefetch = internal::WorthPrefetching(g, sizeof(T));
  return plan;
}

}  // namespace

template <typename T>
bool DepthwiseBackpropFilterCpu(const ConvGeometry& g, const T* input, const T* out_backprop,
                                T* filter_backprop, const ParallelFor& parallel_for) {
  using A = typename AccType<T>::type;
  constexpr int V = static_cast<int>(kLanes<A>);
  const int64_t taps = g.filter_rows * g.filter_cols;
  const int64_t out_elems = taps * g.out_depth;
  const int64_t units = g.batch * g.out_rows;
  if (out_elems == 0) return true;
  if (units == 0 || g.out_cols == 0 || g.in_rows == 0 || g.in_cols == 0) {
    std::fill(filter_backprop, filter_backprop + out_elems, T(0));
    return true;
  }
  const int64_t M = g.depth_multiplier;
  const int64_t padded = RoundUp(g.out_depth, V);
  const int64_t partial = taps * padded;
  const DbfPlan<A> plan = PlanDbf<T>(g);
  const int64_t supers = plan.supers;
  Scratch<A> partials(supers * partial);
  if (!partials.ok()) return false;

  const Layout4 xl{g.in_rows, g.in_cols, g.in_depth, g.nchw != 0};
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw != 0};
  const std::vector<int64_t>& lo = plan.lo;
  const std::vector<int64_t>& hi = plan.hi;
  const int64_t mid_lo = plan.mid_lo, mid_hi = plan.mid_hi;
  const bool dy_in_place = plan.dy_in_place, zero_pad_rows = plan.zero_pad_rows;
  const bool in_place = plan.in_place, prefetch = plan.prefetch;
  const RowTapsFn<A> window_fn = plan.window_fn, taps_fn = plan.taps_fn;
  const RowsTapsFn<A> rows_fn = plan.rows_fn;
  const int64_t lead = plan.lead, row_cols = plan.row_cols;
  std::atomic<bool> failed{false};
  const int64_t cost = (units / supers + 1) * taps * g.out_cols * padded;
  parallel_for(supers, cost, [&](int64_t s_begin, int64_t s_end) {
    RowCache<A> rows;
    Scratch<A> dy_row(g.out_cols * padded);
    if (!rows.Init(g.filter_rows, row_cols * padded) || !dy_row.ok()) {
      failed = true;
      return;
    }
    for (int64_t s = s_begin; s < s_end; ++s) {
      A* acc = partials.get() + s * partial;
      std::fill(acc, acc + partial, A(0));
      const int64_t u_begin = units * s / supers, u_end = units * (s + 1) / supers;
      for (int64_t u = u_begin; u < u_end; ++u) {
        const int64_t b = u / g.out_rows, ho = u % g.out_rows;
        const A* dy = dy_in_place
                          ? reinterpret_cast<const A*>(out_backprop + dl.Offset(b, ho, 0, 0))
                          : dy_row.get();
        if (!dy_in_place) PackRow(out_backprop, dl, b, ho, /*repeat=*/1, padded, dy_row.get());
        const auto x_row_at = [&](int64_t h) -> const A* {
          return in_place
                     ? reinterpret_cast<const A*>(input + xl.Offset(b, h, 0, 0))
                     : rows.Get(b * g.in_rows + h, [&](A* p) {
                         std::fill(p, p + lead * padded, A(0));
                         PackRow(input, xl, b, h, /*repeat=*/M, padded, p + lead * padded);
                         std::fill(p + (lead + g.in_cols) * padded, p + row_cols * padded, A(0));
                       });
        };
        const int64_t h0 = ho * g.stride_rows - g.pad_top;
        // Every filter row inside the input: the window part of all rows in one call.
        const bool fused = rows_fn != nullptr && h0 >= 0 &&
                           h0 + (g.filter_rows - 1) * g.dilation_rows < g.in_rows &&
                           (zero_pad_rows || (mid_lo < mid_hi));
        // Prefetch (into L2) the next output row's out_backprop row and its newest input
        // rows (up to stride_rows of them, at most 3), spread over this row's tap calls, so
        // their loads overlap this row's work.
        Prefetcher pf;
        if (prefetch && u + 1 < units) {
          const int64_t b1 = (u + 1) / g.out_rows, ho1 = (u + 1) % g.out_rows;
          const int64_t h1 = std::min(g.in_rows - 1, ho1 * g.stride_rows - g.pad_top +
                                                         (g.filter_rows - 1) * g.dilation_rows);
          pf.Add(out_backprop + dl.Offset(b1, ho1, 0, 0), g.out_cols * g.out_depth * sizeof(T));
          const int64_t fresh = std::min<int64_t>(3, std::min(g.stride_rows, g.filter_rows));
          for (int64_t h = std::max<int64_t>(0, h1 - fresh + 1); h <= h1; ++h) {
            pf.Add(input + xl.Offset(b1, h, 0, 0), g.in_cols * g.in_depth * sizeof(T));
          }
          pf.Spread((fused ? 1 : g.filter_rows) * (padded / V));
        }
        if (fused) {
          const A* xr[kMaxFusedRows];
          for (int64_t i = 0; i < g.filter_rows; ++i) {
            xr[i] = x_row_at(h0 + i * g.dilation_rows);
            if (!zero_pad_rows) xr[i] += (mid_lo * g.stride_cols - g.pad_left) * padded;
          }
          const int64_t c0 = zero_pad_rows ? 0 : mid_lo;
          const int64_t ncols = zero_pad_rows ? g.out_cols : mid_hi - mid_lo;
          for (int64_t q = 0; q < padded; q += V) {
            pf.Step();
            rows_fn(xr, q, padded, dy + c0 * padded + q, padded, ncols, acc + q,
                    g.filter_cols * padded, padded);
          }
          if (zero_pad_rows) continue;  // every column done; else the edges remain
        }
        for (int64_t i = 0; i < g.filter_rows; ++i) {
          const int64_t h = h0 + i * g.dilation_rows;
          if (h < 0 || h >= g.in_rows) continue;
          const A* x_row = x_row_at(h);
          A* a_row = acc + i * g.filter_cols * padded;
          if (zero_pad_rows) {
            // Every output column, edges included, through the window kernel.
            for (int64_t q = 0; q < padded; q += V) {
              pf.Step();
              window_fn(x_row + q, g.stride_cols * padded, padded, dy + q, padded, g.out_cols,
                        a_row + q, padded);
            }
            continue;
          }
          // Output columns where every tap column is inside the input: all taps at once,
          // each out_backprop vector loaded once (RowTaps); the rest tap by tap.
          if (mid_lo < mid_hi && taps_fn != nullptr && !fused) {
            const A* xp = x_row + (mid_lo * g.stride_cols - g.pad_left) * padded;
            const A* dp = dy + mid_lo * padded;
            for (int64_t q = 0; q < padded; q += V) {
              pf.Step();
              taps_fn(xp + q, g.stride_cols * padded, g.dilation_cols * padded, dp + q, padded,
                      mid_hi - mid_lo, a_row + q, padded);
            }
          }
          for (int64_t j = 0; j < g.filter_cols; ++j) {
            A* a = a_row + j * padded;
            // [lo, hi) minus [mid_lo, mid_hi) when RowTaps covered the middle.
            const int64_t split_lo = taps_fn ? std::min(hi[j], std::max(lo[j], mid_lo)) : hi[j];
            const int64_t split_hi = taps_fn ? std::max(split_lo, mid_hi) : hi[j];
            const int64_t ranges[2][2] = {{lo[j], split_lo}, {split_hi, hi[j]}};
            for (const auto& range : ranges) {
              const int64_t n = range[1] - range[0];
              if (n <= 0) continue;
              const A* xp =
                  x_row + (range[0] * g.stride_cols - g.pad_left + j * g.dilation_cols) * padded;
              const A* dp = dy + range[0] * padded;
              for (int64_t q = 0; q < padded; q += V) {
                DotTile<A>(xp + q, g.stride_cols * padded, dp + q, padded, n, a + q);
              }
            }
          }
        }
      }
    }
  });
  if (failed) return false;

  // Fixed-order reduction of the partials (each element summed s = 0, 1, ...,
  // vectorised across q); HWIO [fh, fw, C, M] flattens to
  // tap * (C * M) + (c * M + m) = tap * out_depth + q.
  internal::ForRanges(parallel_for, taps, internal::kMaxTasks, supers * g.out_depth,
                      [&](int64_t t_begin, int64_t t_end) {
                        for (int64_t t = t_begin; t < t_end; ++t) {
                          // Summed into partial 0's slice.
                          A* __restrict sum = partials.get() + t * padded;
                          for (int64_t s = 1; s < supers; ++s) {
                            const A* __restrict part = sum + s * partial;
                            for (int64_t q = 0; q < padded; ++q) sum[q] += part[q];
                          }
                          internal::ConvertFromAcc(sum, filter_backprop + t * g.out_depth,
                                                   g.out_depth);
                        }
                      });
  return true;
}

TF_CONVGRAD_INSTANTIATE_CPU_CORE(DepthwiseBackpropFilterCpu)

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
