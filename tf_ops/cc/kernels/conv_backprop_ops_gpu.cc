// GPU OpKernels for the three ops: a thin adapter from TensorFlow tensors to
// the TF-free launchers in gpu/ (conv_backprop_gpu.h). Validation is the same
// conv_backprop_common code the CPU kernels run; the sizes input lives in host
// memory; all work goes on the op's TensorFlow stream; scratch comes from
// allocate_temp; half and bfloat16 are handed over as 16-bit storage.
// Built only with -DTF_CONVGRAD_WITH_CUDA=ON (see CMakeLists.txt).
#include <cstdint>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf_ops/cc/kernels/conv_backprop_common.h"
#include "tf_ops/cc/kernels/cpu/conv_backprop_cpu.h"
#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu.h"
#include "xla/stream_executor/stream.h"

namespace tensorflow {
namespace convgrad {
namespace {

namespace gpu = ::tf_convgrad::gpu;

// The launchers take element types by storage layout.
template <typename T>
struct GpuDType;
template <>
struct GpuDType<Eigen::half> {
  static_assert(sizeof(Eigen::half) == 2, "binary16 storage");
  static constexpr gpu::DType value = gpu::DType::kHalf;
};
template <>
struct GpuDType<bfloat16> {
  static_assert(sizeof(bfloat16) == 2, "bfloat16 storage");
  static constexpr gpu::DType value = gpu::DType::kBFloat16;
};
template <>
struct GpuDType<float> {
  static constexpr gpu::DType value = gpu::DType::kFloat;
};
template <>
struct GpuDType<double> {
  static constexpr gpu::DType value = gpu::DType::kDouble;
};

gpu::Op GpuOp(OpKind kind) {
  switch (kind) {
    case OpKind::kConv2DBackpropFilter:
      return gpu::Op::kConv2DBackpropFilter;
    case OpKind::kDepthwiseBackpropFilter:
      return gpu::Op::kDepthwiseBackpropFilter;
    case OpKind::kDepthwiseBackpropInput:
      break;
  }
  return gpu::Op::kDepthwiseBackpropInput;
}

gpu::ConvShape GpuShape(const tf_convgrad::ConvGeometry& g) {
  gpu::ConvShape s;
  s.batch = g.batch;
  s.in_rows = g.in_rows;
  s.in_cols = g.in_cols;
  s.in_depth = g.in_depth;
  s.filter_rows = g.filter_rows;
  s.filter_cols = g.filter_cols;
  s.groups = g.groups;
  s.depth_multiplier = g.depth_multiplier;
  s.out_rows = g.out_rows;
  s.out_cols = g.out_cols;
  s.out_depth = g.out_depth;
  s.stride_rows = g.stride_rows;
  s.stride_cols = g.stride_cols;
  s.dilation_rows = g.dilation_rows;
  s.dilation_cols = g.dilation_cols;
  s.pad_top = g.pad_top;
  s.pad_left = g.pad_left;
  s.nchw = g.nchw ? 1 : 0;
  return s;
}

absl::Status CudaStatus(const ConvBackpropAttrs& attrs, cudaError_t error) {
  if (error == cudaSuccess) return absl::OkStatus();
  return errors::Internal(attrs.label, ": GPU kernel launch failed: ", cudaGetErrorName(error),
                          " (", cudaGetErrorString(error), ")");
}

template <typename T>
class ConvBackpropGpuOp : public OpKernel {
 public:
  ConvBackpropGpuOp(OpKernelConstruction* ctx, OpKind kind) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ParseConvBackpropAttrs(ctx, kind, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    PreparedConvBackprop p;  // the sizes input lives in host memory
    OP_REQUIRES_OK(ctx, PrepareConvBackprop(ctx, attrs_, sizeof(T), &p));
    Tensor* output = p.output;
    const Tensor& data = *p.data;
    const Tensor& out_backprop = *p.out_backprop;
    const tf_convgrad::ConvGeometry& geometry = p.geometry;
    if (output->NumElements() == 0) return;

    DeviceContext* device_context = ctx->op_device_context();
    stream_executor::Stream* stream =
        device_context != nullptr ? device_context->stream() : nullptr;
    OP_REQUIRES(ctx, stream != nullptr,
                errors::Internal(attrs_.label, ": no GPU stream for this op"));
    const cudaStream_t cuda_stream =
        static_cast<cudaStream_t>(stream->platform_specific_handle().stream);
    OP_REQUIRES(ctx, cuda_stream != nullptr,
                errors::Internal(attrs_.label, ": the GPU stream has no CUDA handle"));

    const gpu::Op op = GpuOp(attrs_.kind);
    const gpu::ConvShape shape = GpuShape(geometry);
    const size_t scratch_bytes = gpu::ScratchBytes(op, GpuDType<T>::value, shape, nullptr);
    Tensor scratch;
    void* scratch_data = nullptr;
    if (scratch_bytes > 0) {
      OP_REQUIRES_OK(ctx,
                     ctx->allocate_temp(DT_INT8, TensorShape({static_cast<int64_t>(scratch_bytes)}),
                                        &scratch));
      scratch_data = scratch.flat<int8_t>().data();
    }
    // Empty sums (zeros via cudaMemsetAsync on the stream) are handled inside.
    const cudaError_t error = gpu::Launch(
        op, GpuDType<T>::value, shape, data.flat<T>().data(), out_backprop.flat<T>().data(),
        output->flat<T>().data(), scratch_data, scratch_bytes, cuda_stream, /*options=*/nullptr);
    OP_REQUIRES_OK(ctx, CudaStatus(attrs_, error));
  }

 private:
  ConvBackpropAttrs attrs_;
};

template <typename T, OpKind kKind>
class ConvBackpropGpuOpFor : public ConvBackpropGpuOp<T> {
 public:
  explicit ConvBackpropGpuOpFor(OpKernelConstruction* ctx) : ConvBackpropGpuOp<T>(ctx, kKind) {}
};

#define TF_CONVGRAD_REGISTER_GPU(T)                                                   \
  REGISTER_KERNEL_BUILDER(Name("ConvGrad>Conv2DBackpropFilter")                       \
                              .Device(DEVICE_GPU)                                     \
                              .TypeConstraint<T>("T")                                 \
                              .HostMemory("filter_sizes"),                            \
                          ConvBackpropGpuOpFor<T, OpKind::kConv2DBackpropFilter>);    \
  REGISTER_KERNEL_BUILDER(Name("ConvGrad>DepthwiseConv2dNativeBackpropFilter")        \
                              .Device(DEVICE_GPU)                                     \
                              .TypeConstraint<T>("T")                                 \
                              .HostMemory("filter_sizes"),                            \
                          ConvBackpropGpuOpFor<T, OpKind::kDepthwiseBackpropFilter>); \
  REGISTER_KERNEL_BUILDER(Name("ConvGrad>DepthwiseConv2dNativeBackpropInput")         \
                              .Device(DEVICE_GPU)                                     \
                              .TypeConstraint<T>("T")                                 \
                              .HostMemory("input_sizes"),                             \
                          ConvBackpropGpuOpFor<T, OpKind::kDepthwiseBackpropInput>);

TF_CONVGRAD_REGISTER_GPU(Eigen::half);
TF_CONVGRAD_REGISTER_GPU(bfloat16);
TF_CONVGRAD_REGISTER_GPU(float);
TF_CONVGRAD_REGISTER_GPU(double);
#undef TF_CONVGRAD_REGISTER_GPU

}  // namespace
}  // namespace convgrad
}  // namespace tensorflow
