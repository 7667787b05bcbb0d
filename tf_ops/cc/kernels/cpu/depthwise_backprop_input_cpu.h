// DepthwiseConv2dNativeBackpropInput (dbi) on CPU: the plan and what its two
// algorithms share. depthwise_backprop_input_cpu.cc plans and dispatches;
// depthwise_backprop_input_gather_cpu.cc and depthwise_backprop_input_windowed_cpu.cc
// are the algorithms.
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
//   depthwise_backprop_input_windowed_cpu.cc.
// * gather (everything else): per pixel, or 4 pixels that share their terms. The
//   filter is repacked as [tap][m][c] and out_backprop rows as [wo][m][c],
//   channels padded to the vector width. Scratch: the packed filter, plus per
//   running worker one dx row and filter_rows packed out_backprop rows.
#ifndef TF_OPS_CC_KERNELS_CPU_DEPTHWISE_BACKPROP_INPUT_CPU_H_
#define TF_OPS_CC_KERNELS_CPU_DEPTHWISE_BACKPROP_INPUT_CPU_H_

#include <string>
#include <vector>

#include "tf_ops/cc/kernels/cpu/cpu_common.h"

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

// The windowed path takes at most this many taps per column phase.
constexpr int64_t kMaxPairs = 7;

// The block size for a phase of `count` pixels: 7 where it leaves fewer unused
// pixel slots than 8, else 8.
inline int64_t PhaseBlock(int64_t count) {
  return internal::RoundUp(count, 7) < internal::RoundUp(count, 8) ? 7 : 8;
}

// One column phase: pixels w0 + t * s (t < count) with taps j0 + p * s (p < pairs);
// pixel t's tap p reads packed column base + t - p (relative to the packed row start).
struct Phase {
  int64_t w0, count, j0, pairs, base, block;
};

inline bool UseWindowed(const ConvGeometry& g) {
  if (g.dilation_cols != 1) return false;
  return internal::CeilDiv(g.filter_cols, g.stride_cols) <= kMaxPairs;
}

// How dbi runs one geometry: the algorithm and, for the windowed one, its
// tuning decisions, all made by PlanDbi from the geometry (and dx's
// alignment) before anything runs; WindowedBackpropInput executes them.
struct DbiPlan {
  enum class Algorithm { kGather, kWindowed };
  Algorithm algorithm = Algorithm::kGather;

  // The windowed path's column phases and the packed out_backprop columns
  // [col_lo, col_lo + ncols) they read.
  std::vector<Phase> phases;
  int64_t col_lo = 0, ncols = 0;
  int64_t calls_per_row = 0;  // WindowBlock calls per dx row
  // 1. NHWC with whole vectors per pixel: blocks store straight into dx
  //    (rounding to T when it is 16-bit), with no accumulator row.
  bool direct = false;
  // 2. Software prefetch of the next out_backprop row (large tensors only).
  bool prefetch = false;
  // 3. Channel blocks per WindowBlock call: 1 (channel block outermost), 2
  //    (whole 64-byte lines of 16-bit dx) or all of them (block outermost).
  int64_t cb_step = 0;
  // 4. Non-temporal dx stores (a large, 64-byte aligned dx), 5. as whole
  //    64-byte lines of two 16-bit channel blocks.
  bool stream = false, stream_pairs = false;
  // 6. Parallel tasks over the batch * in_rows dx rows.
  int64_t tasks = 1;

  // e.g. "dbi.windowed phases=2 cb_step=1 direct tasks=12"; for logs.
  std::string Describe() const;
};

// The plan for this geometry and dx (instantiated for every element type).
template <typename T>
DbiPlan PlanDbi(const ConvGeometry& g, const T* input_backprop);

// The general path: any dilation and filter width.
template <typename T>
bool GatherBackpropInput(const ConvGeometry& g, const T* filter, const T* out_backprop,
                         T* input_backprop, const ParallelFor& parallel_for);

// The windowed path (plan.algorithm == kWindowed).
template <typename T>
bool WindowedBackpropInput(const ConvGeometry& g, const DbiPlan& plan, const T* filter,
                           const T* out_backprop, T* input_backprop,
                           const ParallelFor& parallel_for);

// Rounds dx row (b, h) from the accumulator row a ([w][padded]) into dx.
template <typename T, typename A>
inline void StoreDxRow(const A* a, int64_t padded, const internal::Layout4& xl, int64_t b,
                       int64_t h, T* input_backprop) {
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

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_CPU_DEPTHWISE_BACKPROP_INPUT_CPU_H_
