// DepthwiseConv2dNativeBackpropInput on CPU.
//
// dx[b, h, w, c] = sum over taps (i, j) and m, with h = ho * s_h - pad_top + i * d_h and
//                  w = wo * s_w - pad_left + j * d_w, of f[i, j, c, m] * dy[b, ho, wo, c * M + m]
//
// Each worker owns whole rows (b, h) of dx, so no two workers write the same
// element and no reduction is needed. For one row it walks the filter rows i
// whose output row ho exists, and for each tap column j the output columns wo
// that land inside the row, accumulating f[i, j, :, m] * dy[b, ho, wo, :, m] into
// a float (double for double) row buffer in a fixed order. The filter is
// repacked once as [tap][m][c] and out_backprop rows as [wo][m][c], channels
// padded to the vector width, so the inner loop is a contiguous multiply-add.
// Scratch: the packed filter, plus per running worker one dx row and
// filter_rows packed out_backprop rows.
#include <atomic>
#include <vector>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"

namespace tf_convgrad {

using internal::AccType;
using internal::kLanes;
using internal::Layout4;
using internal::PackRowSplit;
using internal::RoundUp;
using internal::RowCache;
using internal::Scratch;
using internal::ValidRange;

template <typename T>
bool DepthwiseBackpropInputCpu(const ConvGeometry& g, const T* filter, const T* out_backprop,
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
          filt.get()[(t * M + m) * padded + c] =
              internal::ToAcc<T, A>(filter[(t * C + c) * M + m]);
        }
      }
    }
  }
  const Layout4 dl{g.out_rows, g.out_cols, g.out_depth, g.nchw};
  std::vector<int64_t> lo(g.filter_cols), hi(g.filter_cols);
  for (int64_t j = 0; j < g.filter_cols; ++j) {
    ValidRange(j * g.dilation_cols - g.pad_left, g.stride_cols, g.in_cols, g.out_cols, &lo[j],
               &hi[j]);
  }
  std::atomic<bool> failed{false};
  const int64_t cost =
      nothing ? g.in_cols * C
              : std::max<int64_t>(1, taps * M * g.out_cols * padded / std::max<int64_t>(
                                                                  1, g.stride_rows));
  parallel_for(units, cost, [&](int64_t u_begin, int64_t u_end) {
    RowCache<A> rows;
    Scratch<A> acc(g.in_cols * padded);
    if ((!nothing && !rows.Init(g.filter_rows, g.out_cols * M * padded)) || !acc.ok()) {
      failed = true;
      return;
    }
    for (int64_t u = u_begin; u < u_end; ++u) {
      const int64_t b = u / g.in_rows, h = u % g.in_rows;
      A* a = acc.get();
      std::fill(a, a + g.in_cols * padded, A(0));
      for (int64_t i = 0; i < g.filter_rows && !nothing; ++i) {
        const int64_t t = h + g.pad_top - i * g.dilation_rows;
        if (t < 0 || t % g.stride_rows != 0) continue;
        const int64_t ho = t / g.stride_rows;
        if (ho >= g.out_rows) continue;
        const A* dy = rows.Get(b * g.out_rows + ho, [&](A* p) {
          PackRowSplit(out_backprop, dl, b, ho, M, padded, p);
        });
        for (int64_t j = 0; j < g.filter_cols; ++j) {
          const A* f = filt.get() + (i * g.filter_cols + j) * M * padded;
          for (int64_t wo = lo[j]; wo < hi[j]; ++wo) {
            A* dst = a + (wo * g.stride_cols - g.pad_left + j * g.dilation_cols) * padded;
            const A* d = dy + wo * M * padded;
            for (int64_t m = 0; m < M; ++m) {
              const A* fm = f + m * padded;
              const A* dm = d + m * padded;
              for (int64_t c = 0; c < padded; ++c) dst[c] += fm[c] * dm[c];
            }
          }
        }
      }
      if (!g.nchw) {
        T* out = input_backprop + xl.Offset(b, h, 0, 0);
        for (int64_t w = 0; w < g.in_cols; ++w) {
          for (int64_t c = 0; c < C; ++c) out[w * C + c] = internal::FromAcc<T, A>(a[w * padded + c]);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          T* out = input_backprop + xl.Offset(b, h, 0, c);
          for (int64_t w = 0; w < g.in_cols; ++w) out[w] = internal::FromAcc<T, A>(a[w * padded + c]);
        }
      }
    }
  });
  return !failed;
}

#define TF_CONVGRAD_INSTANTIATE(T)                                                          \
  template bool DepthwiseBackpropInputCpu<T>(const ConvGeometry&, const T*, const T*, T*, \
                                             const ParallelFor&);
TF_CONVGRAD_INSTANTIATE(Eigen::half)
TF_CONVGRAD_INSTANTIATE(Eigen::bfloat16)
TF_CONVGRAD_INSTANTIATE(float)
TF_CONVGRAD_INSTANTIATE(double)
#undef TF_CONVGRAD_INSTANTIATE

}  // namespace tf_convgrad
