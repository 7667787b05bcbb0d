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

inline DwShape ToDwShape(const ConvShape& s) {
  DwShape d;
  d.batch = s.batch;
  d.in_rows = s.in_rows;
  d.in_cols = s.in_cols;
  d.in_depth = s.in_depth;
  d.multiplier = s.depth_multiplier;
  d.filter_rows = s.filter_rows;
  d.filter_cols = s.filter_cols;
  d.out_rows = s.out_rows;
  d.out_cols = s.out_cols;
  d.stride_rows = s.stride_rows;
  d.stride_cols = s.stride_cols;
  d.dilation_rows = s.dilation_rows;
  d.dilation_cols = s.dilation_cols;
  d.pad_top = s.pad_top;
  d.pad_left = s.pad_left;
  d.nchw = s.nchw != 0;
  return d;
}

// Conv2DBackpropFilter with one input channel per group is the depthwise
// filter gradient with in_depth = groups and multiplier = out_depth / groups:
// dW[i, j, 0, g * Ng + n] and depthwise dW[i, j, g, n] are the same element.
inline bool CbfIsDepthwise(const ConvShape& s) { return s.in_depth == s.groups; }

inline DwShape CbfAsDepthwise(const ConvShape& s) {
  DwShape d = ToDwShape(s);
  d.in_depth = s.groups;
  d.multiplier = s.out_depth / s.groups;
  return d;
}

inline CbfShape ToCbfShape(const ConvShape& s) {
  CbfShape c;
  c.batch = s.batch;
  c.in_rows = s.in_rows;
  c.in_cols = s.in_cols;
  c.in_depth = s.in_depth;
  c.filter_rows = s.filter_rows;
  c.filter_cols = s.filter_cols;
  c.groups = s.groups;
  c.out_rows = s.out_rows;
  c.out_cols = s.out_cols;
  c.out_depth = s.out_depth;
  c.stride_rows = s.stride_rows;
  c.stride_cols = s.stride_cols;
  c.dilation_rows = s.dilation_rows;
  c.dilation_cols = s.dilation_cols;
  c.pad_top = s.pad_top;
  c.pad_left = s.pad_left;
  c.nchw = s.nchw != 0;
  return c;
}

template <typename T>
size_t ScratchBytesT(Op op, const ConvShape& s, const LaunchOptions& o) {
  switch (op) {
    case Op::kDepthwiseBackpropFilter:
      return DbfScratchBytes<T>(ToDwShape(s), o);
    case Op::kConv2DBackpropFilter:
      return CbfIsDepthwise(s) ? DbfScratchBytes<T>(CbfAsDepthwise(s), o)
                               : PlanCbf<T>(ToCbfShape(s), o).scratch;
    case Op::kDepthwiseBackpropInput:
      break;
  }
  return 0;
}

// Runs the kernels; the caller has handled empty outputs and empty sums.
template <typename T>
cudaError_t LaunchT(Op op, const ConvShape& s, const T* first, const T* dy, T* out, void* scratch,
                    size_t scratch_bytes, cudaStream_t stream, const LaunchOptions& o) {
  switch (op) {
    case Op::kDepthwiseBackpropFilter:
      return LaunchDbf<T>(ToDwShape(s), o, first, dy, out, scratch, scratch_bytes, stream);
    case Op::kConv2DBackpropFilter:
      return CbfIsDepthwise(s) ? LaunchDbf<T>(CbfAsDepthwise(s), o, first, dy, out, scratch,
                                              scratch_bytes, stream)
                               : LaunchCbfGemm<T>(ToCbfShape(s), o, first, dy, out, scratch,
                                                  scratch_bytes, stream);
    case Op::kDepthwiseBackpropInput:
      return LaunchDbi<T>(ToDwShape(s), o, first, dy, out, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
std::string DescribeT(Op op, const ConvShape& s, const LaunchOptions& o) {
  switch (op) {
    case Op::kDepthwiseBackpropFilter:
      return DescribeDbf<T>(ToDwShape(s), o);
    case Op::kConv2DBackpropFilter:
      return CbfIsDepthwise(s) ? "cbf->" + DescribeDbf<T>(CbfAsDepthwise(s), o)
                               : DescribeCbfGemm<T>(ToCbfShape(s), o);
    case Op::kDepthwiseBackpropInput:
      return DescribeDbi<T>(ToDwShape(s), o);
  }
  return "?";
}

#define TF_CONVGRAD_DECLARE_GPU_TYPE(T)                                                       \
  extern template size_t ScratchBytesT<T>(Op, const ConvShape&, const LaunchOptions&);        \
  extern template cudaError_t LaunchT<T>(Op, const ConvShape&, const T*, const T*, T*, void*, \
                                         size_t, cudaStream_t, const LaunchOptions&);         \
  extern template std::string DescribeT<T>(Op, const ConvShape&, const LaunchOptions&);

#define TF_CONVGRAD_INSTANTIATE_GPU_TYPE(T)                                                    \
  template size_t ScratchBytesT<T>(Op, const ConvShape&, const LaunchOptions&);                \
  template cudaError_t LaunchT<T>(Op, const ConvShape&, const T*, const T*, T*, void*, size_t, \
                                  cudaStream_t, const LaunchOptions&);                         \
  template std::string DescribeT<T>(Op, const ConvShape&, const LaunchOptions&);

}  // namespace internal
}  // namespace gpu
}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_GPU_CONV_BACKPROP_GPU_IMPL_CU_H_
