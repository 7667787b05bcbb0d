// GPU kernels of the three ops: the GPU launcher of the shared OpKernel
// (conv_backprop_op.h), a thin adapter to the TF-free launchers in gpu/
// (conv_backprop_gpu.h). All work goes on the op's TensorFlow stream; scratch
// comes from allocate_temp; half and bfloat16 are handed over as 16-bit
// storage. Built only with -DTF_CONVGRAD_WITH_CUDA=ON (see CMakeLists.txt).
#include <cstdint>
#include <cstring>

#include "tf_ops/cc/kernels/conv_backprop_op.h"
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

absl::Status CudaStatus(const ConvBackpropAttrs& attrs, cudaError_t error) {
  if (error == cudaSuccess) return absl::OkStatus();
  return errors::Internal(attrs.label, ": GPU kernel launch failed: ", cudaGetErrorName(error),
                          " (", cudaGetErrorString(error), ")");
}

// The op's CUDA stream.
absl::Status GetCudaStream(OpKernelContext* ctx, const ConvBackpropAttrs& attrs,
                           cudaStream_t* cuda_stream) {
  DeviceContext* device_context = ctx->op_device_context();
  stream_executor::Stream* stream = device_context != nullptr ? device_context->stream() : nullptr;
  if (stream == nullptr) return errors::Internal(attrs.label, ": no GPU stream for this op");
  *cuda_stream = static_cast<cudaStream_t>(stream->platform_specific_handle().stream);
  if (*cuda_stream == nullptr) {
    return errors::Internal(attrs.label, ": the GPU stream has no CUDA handle");
  }
  return absl::OkStatus();
}

}  // namespace

template <typename T>
struct ConvBackpropLauncher<GPUDevice, T> {
  static absl::Status Available(const ConvBackpropAttrs&) { return absl::OkStatus(); }

  static absl::Status Fill(OpKernelContext* ctx, const ConvBackpropAttrs& attrs, T value, int64_t n,
                           T* output) {
    cudaStream_t stream;
    TF_RETURN_IF_ERROR(GetCudaStream(ctx, attrs, &stream));
    uint64_t bits = 0;
    std::memcpy(&bits, static_cast<const void*>(&value), sizeof(T));
    return CudaStatus(attrs, gpu::Fill(GpuDType<T>::value, output, n, bits, stream));
  }

  static absl::Status Run(OpKernelContext* ctx, const ConvBackpropAttrs& attrs,
                          const tf_convgrad::ConvGeometry& geometry, const T* first,
                          const T* out_backprop, T* output) {
    cudaStream_t stream;
    TF_RETURN_IF_ERROR(GetCudaStream(ctx, attrs, &stream));
    const size_t scratch_bytes =
        gpu::ScratchBytes(attrs.kind, GpuDType<T>::value, geometry, nullptr);
    Tensor scratch;
    void* scratch_data = nullptr;
    if (scratch_bytes > 0) {
      TF_RETURN_IF_ERROR(ctx->allocate_temp(
          DT_INT8, TensorShape({static_cast<int64_t>(scratch_bytes)}), &scratch));
      scratch_data = scratch.flat<int8_t>().data();
    }
    return CudaStatus(attrs, gpu::Launch(attrs.kind, GpuDType<T>::value, geometry, first,
                                         out_backprop, output, scratch_data, scratch_bytes, stream,
                                         /*options=*/nullptr));
  }
};

namespace {
TF_CONVGRAD_REGISTER_KERNELS(GPU)
}  // namespace

}  // namespace convgrad
}  // namespace tensorflow
