// Per-element-type entry points behind the one dispatch point in
// conv_backprop_gpu.cu.cc. Each conv_backprop_gpu_<type>.cu.cc instantiates
// them for one type, so nvcc compiles the four types in parallel.
#ifndef TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_IMPL_CU_H_
#define TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_IMPL_CU_H_

#include <string>

#include "tf_ops/cc/kernels/gpu/conv2d_backprop_filter_gpu.cu.h"
#include "tf_ops/cc/kernels/gpu/conv_backprop_gpu.h"
#include "tf_ops/cc/kernels/gpu/depthwise_backprop_gpu.cu.h"
#include "tf_ops/cc/kernels/gpu/gpu_common.cu.h"

namespace tf_convgrad {
namespace gpu {
namespace internal {

// Conv2DBackpropFilter with one input channel per group is the depthwise
// filter gradient with in_depth = groups and multiplier = out_depth / groups:
// dW[i, j, 0, g * Ng + n] and depthwise dW[i, j, g, n] are the same element.
inline bool CbfIsDepthwise(const ConvGeometry& s) { return s.in_depth == s.groups; }

inline ConvGeometry CbfAsDepthwise(const ConvGeometry& s) {
  ConvGeometry d = s;
  d.in_depth = s.groups;
  d.depth_multiplier = s.out_depth / s.groups;
  d.groups = 1;
  return d;
}

template <typename T>
size_t ScratchBytesT(Op op, const ConvGeometry& s, const LaunchOptions& o) {
  switch (op) {
    case Op::kDepthwiseBackpropFilter:
      return DbfScratchBytes<T>(s, o);
    case Op::kConv2DBackpropFilter:
      return CbfIsDepthwise(s) ? DbfScratchBytes<T>(CbfAsDepthwise(s), o)
                               : PlanCbf<T>(s, o).scratch;
    case Op::kDepthwiseBackpropInput:
      break;
  }
  return 0;
}

// Runs the kernels; the caller has handled empty outputs and empty sums.
template <typename T>
cudaError_t LaunchT(Op op, const ConvGeometry& s, const T* first, const T* dy, T* out,
                    void* scratch, size_t scratch_bytes, cudaStream_t stream,
                    const LaunchOptions& o) {
  switch (op) {
    case Op::kDepthwiseBackpropFilter:
      return LaunchDbf<T>(s, o, first, dy, out, scratch, scratch_bytes, stream);
    case Op::kConv2DBackpropFilter:
      return CbfIsDepthwise(s)
                 ? LaunchDbf<T>(CbfAsDepthwise(s), o, first, dy, out, scratch, scratch_bytes,
                                stream)
                 : LaunchCbfGemm<T>(s, o, first, dy, out, scratch, scratch_bytes, stream);
    case Op::kDepthwiseBackpropInput:
      return LaunchDbi<T>(s, o, first, dy, out, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
std::string DescribeT(Op op, const ConvGeometry& s, const LaunchOptions& o) {
  switch (op) {
    case Op::kDepthwiseBackpropFilter:
      return DescribeDbf<T>(s, o);
    case Op::kConv2DBackpropFilter:
      return CbfIsDepthwise(s) ? "cbf->" + DescribeDbf<T>(CbfAsDepthwise(s), o)
                               : DescribeCbfGemm<T>(s, o);
    case Op::kDepthwiseBackpropInput:
      return DescribeDbi<T>(s, o);
  }
  return "?";
}

#define TF_CONVGRAD_DECLARE_GPU_TYPE(T)                                                          \
  extern template size_t ScratchBytesT<T>(Op, const ConvGeometry&, const LaunchOptions&);        \
  extern template cudaError_t LaunchT<T>(Op, const ConvGeometry&, const T*, const T*, T*, void*, \
                                         size_t, cudaStream_t, const LaunchOptions&);            \
  extern template std::string DescribeT<T>(Op, const ConvGeometry&, const LaunchOptions&);

#define TF_CONVGRAD_INSTANTIATE_GPU_TYPE(T)                                                       \
  template size_t ScratchBytesT<T>(Op, const ConvGeometry&, const LaunchOptions&);                \
  template cudaError_t LaunchT<T>(Op, const ConvGeometry&, const T*, const T*, T*, void*, size_t, \
                                  cudaStream_t, const LaunchOptions&);                            \
  template std::string DescribeT<T>(Op, const ConvGeometry&, const LaunchOptions&);

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_IMPL_CU_H_
