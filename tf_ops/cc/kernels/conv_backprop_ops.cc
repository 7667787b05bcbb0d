// CPU kernels of the three ops: the CPU launcher of the shared OpKernel
// (conv_backprop_op.h), a thin adapter to the TF-free compute cores in cpu/.
#include <algorithm>
#include <cstdint>

#include "tf_ops/cc/kernels/conv_backprop_op.h"
#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"

namespace tensorflow {
namespace convgrad {
namespace {

// Runs the cores' tasks on TF's intra-op thread pool, one task per block: the
// cores already size their tasks (a few dozen at most), and their results do
// not depend on which thread runs which task.
tf_convgrad::ParallelFor ThreadPoolFor(OpKernelContext* ctx) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return
      [workers](int64_t total, int64_t /*cost*/, const std::function<void(int64_t, int64_t)>& fn) {
        if (total <= 0) return;
        if (total == 1 || workers->NumThreads() <= 1) {
          fn(0, total);
          return;
        }
        workers->ParallelFor(total,
                             thread::ThreadPool::SchedulingParams(
                                 thread::ThreadPool::SchedulingStrategy::kFixedBlockSize,
                                 /*cost_per_unit=*/std::nullopt, /*block_size=*/1),
                             fn);
      };
}

}  // namespace

template <typename T>
struct ConvBackpropLauncher<CPUDevice, T> {
  // No instruction-set level for the cores (TF_CONVGRAD_ISA asks for one this
  // CPU lacks, or is misspelt): fail rather than run anything.
  static absl::Status Available(const ConvBackpropAttrs& attrs) {
    const char* isa_error = tf_convgrad::CpuIsaError();
    if (isa_error == nullptr) return absl::OkStatus();
    return errors::InvalidArgument(attrs.label, ": ", isa_error);
  }

  static absl::Status Fill(OpKernelContext*, const ConvBackpropAttrs&, T value, int64_t n,
                           T* output) {
    std::fill(output, output + n, value);
    return absl::OkStatus();
  }

  static absl::Status Run(OpKernelContext* ctx, const ConvBackpropAttrs& attrs,
                          const tf_convgrad::ConvGeometry& geometry, const T* first,
                          const T* out_backprop, T* output) {
    const tf_convgrad::ParallelFor parallel_for = ThreadPoolFor(ctx);
    bool ok = false;
    switch (attrs.kind) {
      case OpKind::kConv2DBackpropFilter:
        ok = tf_convgrad::Conv2DBackpropFilterCpu<T>(geometry, first, out_backprop, output,
                                                     parallel_for);
        break;
      case OpKind::kDepthwiseBackpropFilter:
        ok = tf_convgrad::DepthwiseBackpropFilterCpu<T>(geometry, first, out_backprop, output,
                                                        parallel_for);
        break;
      case OpKind::kDepthwiseBackpropInput:
        ok = tf_convgrad::DepthwiseBackpropInputCpu<T>(geometry, first, out_backprop, output,
                                                       parallel_for);
        break;
    }
    if (ok) return absl::OkStatus();
    return errors::ResourceExhausted(attrs.label, ": could not allocate CPU scratch memory");
  }
};

namespace {
TF_CONVGRAD_REGISTER_KERNELS(CPU)
}  // namespace

}  // namespace convgrad
}  // namespace tensorflow
