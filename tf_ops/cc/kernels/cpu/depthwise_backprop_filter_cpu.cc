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
#include <type_traits>
#include <vector>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

using internal::AccType;
using internal::DotTile;
using internal::kLanes;
using internal::Layout4;
using internal::PackRow;
using internal::Prefetcher;
using internal::RoundUp;
using internal::RowCache;
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
  int64_t supers = std::min(units, kMaxSuperTasks);
  supers = std::max<int64_t>(
      1, std::min<int64_t>(supers, kPartialBudgetBytes / (partial * int64_t{sizeof(A)})));
  Scratch<A> partials(supers * partial);
  if (!partials.ok()) return false;

  const Layout4 xl{g.in_rows, g.in_cols, g.in_depth, g.nchw};
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw};
  std::vector<int64_t> lo(g.filter_cols), hi(g.filter_cols);
  for (int64_t j = 0; j < g.filter_cols; ++j) {
    ValidRange(j * g.dilation_cols - g.pad_left, g.stride_cols, g.in_cols, g.out_cols, &lo[j],
               &hi[j]);
  }
  // Float NHWC out_backprop rows with a whole number of vectors per pixel
  // already have the packed layout; so do input rows if also M == 1.
  const bool dy_in_place = std::is_same<T, A>::value && !g.nchw && padded == g.out_depth;
  int64_t mid_lo = 0, mid_hi = g.out_cols;
  for (int64_t j = 0; j < g.filter_cols; ++j) {
    mid_lo = std::max(mid_lo, lo[j]);
    mid_hi = std::min(mid_hi, hi[j]);
  }
  // Tap spacing 1 and stride 1 or 2: the windowed form (fewer loads, more chains).
  const auto window_fn =
      g.dilation_cols == 1 ? internal::RowTapsWindowFor<A>(g.filter_cols, g.stride_cols) : nullptr;
  const auto taps_fn = window_fn ? window_fn : internal::RowTapsFor<A>(g.filter_cols);
  // Input rows packed with zero columns for the padding (from input column
  // -pad_left on), so that every output column runs the window kernel and none
  // goes tap by tap. Only for stride 1 and filters up to 3 wide (measured: at
  // stride 2 or on 5-wide filters the window's extra products over the zeros
  // cost more than the edges save), where rows are packed anyway or are
  // narrow, so that the edge columns are a large share of the work.
  const bool has_edges = mid_lo > 0 || mid_hi < g.out_cols;
  const bool in_place_possible = dy_in_place && M == 1;
  const bool zero_pad_rows = window_fn != nullptr && has_edges && g.stride_cols == 1 &&
                             g.filter_cols <= 3 &&
                             (!in_place_possible || g.out_cols <= kNarrowCols);
  const bool in_place = in_place_possible && !zero_pad_rows;
  // All filter rows at once where the window kernel applies (see RowsTapsWindow).
  const auto rows_fn =
      window_fn ? RowsTapsWindowFor<A>(g.filter_rows, g.filter_cols, g.stride_cols) : nullptr;
  const int64_t lead = zero_pad_rows ? g.pad_left : 0;  // zero columns before input column 0
  const int64_t row_cols =
      zero_pad_rows ? std::max(lead + g.in_cols, (g.out_cols - 1) * g.stride_cols + g.filter_cols)
                    : g.in_cols;
  // Software prefetch only where the tensors do not stay cached between calls.
  const bool prefetch = internal::WorthPrefetching(g, sizeof(T));
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
