// DepthwiseConv2dNativeBackpropInput (dbi) on CPU: plan, then run. PlanDbi
// makes every decision from the geometry (see DbiPlan in
// depthwise_backprop_input_cpu.h); the algorithms execute it.
#include "tf_ops/cc/kernels/cpu/depthwise_backprop_input_cpu.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace tf_convgrad {
namespace TF_CONVGRAD_ISA_NS {

using internal::AccType;
using internal::CeilDiv;
using internal::kLanes;
using internal::RoundUp;

template <typename T>
DbiPlan PlanDbi(const ConvGeometry& g, const T* input_backprop) {
  using A = typename AccType<T>::type;
  constexpr int64_t V = kLanes<A>;
  DbiPlan plan;
  const bool empty = g.batch * g.in_rows == 0 || g.in_cols == 0 || g.in_depth == 0;
  const bool nothing = g.depth_multiplier == 0 || g.filter_rows * g.filter_cols == 0 ||
                       g.out_rows == 0 || g.out_cols == 0;
  if (empty || nothing || !UseWindowed(g)) return plan;  // the gather path
  plan.algorithm = DbiPlan::Algorithm::kWindowed;
  const int64_t C = g.in_depth;
  const int64_t KR = g.filter_rows, KC = g.filter_cols, s = g.stride_cols;
  const int64_t nb = CeilDiv(C, V);  // channel blocks
  const int64_t padded = nb * V;

  // Phases and the packed column range [col_lo, col_hi) they read.
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
    plan.phases.push_back(ph);
  }
  plan.col_lo = col_lo;
  plan.ncols = col_hi - col_lo;
  const int64_t ncols = plan.ncols;

  // 1. NHWC with whole vectors per pixel: blocks store straight into dx
  // (rounding to T when it is 16-bit), with no accumulator row and no
  // conversion pass.
  plan.direct = !g.nchw && padded == C;
  // 2. Software prefetch only where the tensors do not stay cached between calls.
  plan.prefetch = internal::WorthPrefetching(g, sizeof(T));
  int64_t blocks_per_row = 0;
  for (const Phase& ph : plan.phases) blocks_per_row += CeilDiv(ph.count, ph.block);
  // 3. Loop order within a phase. At stride 1 with more than one block, channel
  // block outermost (one channel block per call): the packed rows' part for one
  // channel block (nrows x ncols vectors) stays in L1 across the blocks.
  // Measured 4-21% faster than block outermost on the stride-1 layers of `bench`
  // (tools/cpu_cores_bench.cc), and 7-10% slower on the stride-2 ones, which
  // keep block outermost (all channel blocks per call).
  int64_t cb_step = s == 1 && blocks_per_row > 1 ? 1 : nb;
  // 4. A dx larger than kStreamBytes is written around the caches (no read for
  // ownership: measured 7.4 -> 4.8 ms on 16x56x56x144), when 64-byte aligned;
  // a smaller one stays cached for its consumer.
  constexpr int64_t kStreamBytes = int64_t{4} << 20;
  const bool big = plan.direct &&
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
  plan.cb_step = cb_step;
  plan.stream = big && (sizeof(T) * V == 64 || cb_step == 2 || cb_step == nb);
  // 5. With nb even, pixels (C * sizeof(T) bytes apart) and even channel blocks
  // start 64-byte lines of the aligned dx, and calls start at even blocks.
  plan.stream_pairs = plan.stream && sizeof(T) == 2 && nb % 2 == 0;
  plan.calls_per_row = blocks_per_row * CeilDiv(nb, cb_step);
  // 6. Each task packs its own rows, so give it enough dx rows (4 * KR) to reuse
  // them; a multiple of 4 tasks where there are several, so that 2 or 4 threads
  // finish together (batch-1 112x112x32: 9 tasks -> 12, about 5% faster on 2
  // threads).
  const int64_t units = g.batch * g.in_rows;
  int64_t tasks = std::min(internal::kMaxTasks, std::max<int64_t>(1, units / (4 * KR)));
  if (tasks > 1) tasks = std::min(units, RoundUp(tasks, 4));
  plan.tasks = tasks;
  return plan;
}

std::string DbiPlan::Describe() const {
  if (algorithm == Algorithm::kGather) return "dbi.gather";
  std::string d = "dbi.windowed phases=" + std::to_string(phases.size()) +
                  " cb_step=" + std::to_string(cb_step);
  if (direct) d += " direct";
  if (prefetch) d += " prefetch";
  if (stream) d += stream_pairs ? " stream=lines" : " stream";
  return d + " tasks=" + std::to_string(tasks);
}

template <typename T>
bool DepthwiseBackpropInputCpu(const ConvGeometry& g, const T* filter, const T* out_backprop,
                               T* input_backprop, const ParallelFor& parallel_for) {
  const DbiPlan plan = PlanDbi(g, input_backprop);
  if (plan.algorithm == DbiPlan::Algorithm::kWindowed) {
    return WindowedBackpropInput(g, plan, filter, out_backprop, input_backprop, parallel_for);
  }
  return GatherBackpropInput(g, filter, out_backprop, input_backprop, parallel_for);
}

#define TF_CONVGRAD_INSTANTIATE_PLAN_(T, unused) \
  template DbiPlan PlanDbi<T>(const ConvGeometry&, const T*);
TF_CONVGRAD_TYPES(TF_CONVGRAD_INSTANTIATE_PLAN_, )
#undef TF_CONVGRAD_INSTANTIATE_PLAN_
TF_CONVGRAD_INSTANTIATE_CPU_CORE(DepthwiseBackpropInputCpu)

}  // namespace TF_CONVGRAD_ISA_NS
}  // namespace tf_convgrad
