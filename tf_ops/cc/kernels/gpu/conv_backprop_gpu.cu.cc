// The one dispatch point of the GPU kernels: argument checks, empty problems,
// then the element type's entry point (conv_backprop_gpu_<type>.cu.cc).
#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu.h"

#include <string>

#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu_impl.cu.h"

namespace tf_convgrad {
namespace gpu {
namespace internal {

TF_CONVGRAD_DECLARE_GPU_TYPE(__half)
TF_CONVGRAD_DECLARE_GPU_TYPE(__nv_bfloat16)
TF_CONVGRAD_DECLARE_GPU_TYPE(float)
TF_CONVGRAD_DECLARE_GPU_TYPE(double)

namespace {

// Consistency of the shape with the op; the callers (the TF adapter, the
// harness) have validated it against the tensors already.
bool ShapeIsValid(Op op, const ConvGeometry& s) {
  const int64_t sizes[] = {
      s.batch,    s.in_rows,   s.in_cols, s.in_depth, s.filter_rows,      s.filter_cols, s.out_rows,
      s.out_cols, s.out_depth, s.pad_top, s.pad_left, s.depth_multiplier, s.groups};
  for (int64_t v : sizes) {
    if (v < 0) return false;
  }
  if (s.stride_rows < 1 || s.stride_cols < 1 || s.dilation_rows < 1 || s.dilation_cols < 1) {
    return false;
  }
  if (s.nchw != 0 && s.nchw != 1) return false;
  switch (op) {
    case Op::kConv2DBackpropFilter:
      return s.groups >= 1 && s.in_depth % s.groups == 0 && s.out_depth % s.groups == 0 &&
             s.in_depth / s.groups >= 1;
    case Op::kDepthwiseBackpropFilter:
    case Op::kDepthwiseBackpropInput:
      return s.groups == 1 && SatMul(s.in_depth, s.depth_multiplier) == s.out_depth;
  }
  return false;
}

int64_t OutputElements(Op op, const ConvGeometry& s) {
  const int64_t taps = SatMul(s.filter_rows, s.filter_cols);
  switch (op) {
    case Op::kConv2DBackpropFilter:
      return SatMul(SatMul(taps, s.in_depth / s.groups), s.out_depth);
    case Op::kDepthwiseBackpropFilter:
      return SatMul(taps, s.out_depth);
    case Op::kDepthwiseBackpropInput:
      break;
  }
  return SatMul(SatMul(SatMul(s.batch, s.in_rows), s.in_cols), s.in_depth);
}

// True when no product contributes to any output: the result is all zeros.
bool SumIsEmpty(Op op, const ConvGeometry& s) {
  const int64_t dy = SatMul(SatMul(SatMul(s.batch, s.out_rows), s.out_cols), s.out_depth);
  if (dy == 0) return true;
  if (op == Op::kDepthwiseBackpropInput) {
    return SatMul(SatMul(s.filter_rows, s.filter_cols), s.out_depth) == 0;
  }
  return SatMul(SatMul(SatMul(s.batch, s.in_rows), s.in_cols), s.in_depth) == 0;
}

size_t ElementBytes(DType dtype) {
  switch (dtype) {
    case DType::kHalf:
    case DType::kBFloat16:
      return 2;
    case DType::kFloat:
      return 4;
    case DType::kDouble:
      break;
  }
  return 8;
}

bool DTypeIsValid(DType dtype) {
  return dtype == DType::kHalf || dtype == DType::kBFloat16 || dtype == DType::kFloat ||
         dtype == DType::kDouble;
}

// out[i] = value for i < n (a grid-stride loop).
template <typename U>
__global__ void __launch_bounds__(kThreads) FillKernel(U* __restrict__ out, int64_t n, U value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    out[i] = value;
  }
}

template <typename U>
cudaError_t FillWith(void* output, int64_t n, uint64_t bits, cudaStream_t stream) {
  const int64_t blocks = Clamp(CeilDiv(n, kThreads), 1, kMaxGridBlocks);
  TF_CONVGRAD_LAUNCH_OR_RETURN(&FillKernel<U>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads),
                               stream, static_cast<U*>(output), n, static_cast<U>(bits));
  return cudaSuccess;
}

bool IsDefaultStream(cudaStream_t stream) {
  return stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread;
}

}  // namespace
}  // namespace internal

size_t ScratchBytes(Op op, DType dtype, const ConvGeometry& shape, const LaunchOptions* options) {
  using namespace internal;  // NOLINT(build/namespaces)
  const LaunchOptions o = options != nullptr ? *options : LaunchOptions{};
  if (!DTypeIsValid(dtype) || !ShapeIsValid(op, shape) || OutputElements(op, shape) == 0 ||
      SumIsEmpty(op, shape)) {
    return 0;
  }
  switch (dtype) {
    case DType::kHalf:
      return ScratchBytesT<__half>(op, shape, o);
    case DType::kBFloat16:
      return ScratchBytesT<__nv_bfloat16>(op, shape, o);
    case DType::kFloat:
      return ScratchBytesT<float>(op, shape, o);
    case DType::kDouble:
      return ScratchBytesT<double>(op, shape, o);
  }
  return 0;
}

cudaError_t Launch(Op op, DType dtype, const ConvGeometry& shape, const void* first,
                   const void* out_backprop, void* output, void* scratch, size_t scratch_bytes,
                   cudaStream_t stream, const LaunchOptions* options) {
  using namespace internal;  // NOLINT(build/namespaces)
  const LaunchOptions o = options != nullptr ? *options : LaunchOptions{};
  if (IsDefaultStream(stream) || !DTypeIsValid(dtype) || !ShapeIsValid(op, shape)) {
    return cudaErrorInvalidValue;
  }
  const int64_t out_elems = OutputElements(op, shape);
  if (out_elems == 0) return cudaSuccess;
  if (output == nullptr || out_elems > std::numeric_limits<int64_t>::max() / 8) {
    return cudaErrorInvalidValue;
  }
  if (SumIsEmpty(op, shape)) return Fill(dtype, output, out_elems, /*bits=*/0, stream);
  if (first == nullptr || out_backprop == nullptr) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::kHalf:
      return LaunchT<__half>(op, shape, static_cast<const __half*>(first),
                             static_cast<const __half*>(out_backprop), static_cast<__half*>(output),
                             scratch, scratch_bytes, stream, o);
    case DType::kBFloat16:
      return LaunchT<__nv_bfloat16>(op, shape, static_cast<const __nv_bfloat16*>(first),
                                    static_cast<const __nv_bfloat16*>(out_backprop),
                                    static_cast<__nv_bfloat16*>(output), scratch, scratch_bytes,
                                    stream, o);
    case DType::kFloat:
      return LaunchT<float>(op, shape, static_cast<const float*>(first),
                            static_cast<const float*>(out_backprop), static_cast<float*>(output),
                            scratch, scratch_bytes, stream, o);
    case DType::kDouble:
      return LaunchT<double>(op, shape, static_cast<const double*>(first),
                             static_cast<const double*>(out_backprop), static_cast<double*>(output),
                             scratch, scratch_bytes, stream, o);
  }
  return cudaErrorInvalidValue;
}

cudaError_t Fill(DType dtype, void* output, int64_t elements, uint64_t bits, cudaStream_t stream) {
  using namespace internal;  // NOLINT(build/namespaces)
  if (IsDefaultStream(stream) || !DTypeIsValid(dtype) || elements < 0) return cudaErrorInvalidValue;
  if (elements == 0) return cudaSuccess;
  if (output == nullptr || elements > std::numeric_limits<int64_t>::max() / 8) {
    return cudaErrorInvalidValue;
  }
  if (bits == 0) {
    return cudaMemsetAsync(output, 0, static_cast<size_t>(elements) * ElementBytes(dtype), stream);
  }
  switch (ElementBytes(dtype)) {
    case 2:
      return FillWith<uint16_t>(output, elements, bits, stream);
    case 4:
      return FillWith<uint32_t>(output, elements, bits, stream);
    default:
      return FillWith<uint64_t>(output, elements, bits, stream);
  }
}

const char* KernelDescription(Op op, DType dtype, const ConvGeometry& shape,
                              const LaunchOptions* options) {
  using namespace internal;  // NOLINT(build/namespaces)
  thread_local std::string description;
  const LaunchOptions o = options != nullptr ? *options : LaunchOptions{};
  if (!DTypeIsValid(dtype) || !ShapeIsValid(op, shape)) {
    description = "invalid";
  } else if (OutputElements(op, shape) == 0) {
    description = "empty";
  } else if (SumIsEmpty(op, shape)) {
    description = "zeros";
  } else {
    switch (dtype) {
      case DType::kHalf:
        description = DescribeT<__half>(op, shape, o);
        break;
      case DType::kBFloat16:
        description = DescribeT<__nv_bfloat16>(op, shape, o);
        break;
      case DType::kFloat:
        description = DescribeT<float>(op, shape, o);
        break;
      case DType::kDouble:
        description = DescribeT<double>(op, shape, o);
        break;
    }
  }
  return description.c_str();
}

}  // namespace gpu
}  // namespace tf_convgrad
