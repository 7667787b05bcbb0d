// The facts every layer shares, TF-free and CUDA-free: which op, and the
// geometry of one validated convolution. Validation (conv_backprop_common.cc)
// fills the geometry once; the CPU cores (cpu/) and the GPU launchers (gpu/)
// read the very same struct, and the GPU harness builds it with ctypes.
#ifndef TF_OPS_CC_KERNELS_CONV_GEOMETRY_H_
#define TF_OPS_CC_KERNELS_CONV_GEOMETRY_H_

#include <cstdint>

namespace tf_convgrad {

// The three ops (short names cbf, dbf, dbi). The values are part of the GPU
// harness's C ABI (tfcg_launch's `op`).
enum class Op : int32_t {
  kConv2DBackpropFilter = 0,     // cbf: dW, HWIO [fh, fw, in_depth / groups, out_depth]
  kDepthwiseBackpropFilter = 1,  // dbf: dW [fh, fw, in_depth, depth_multiplier]
  kDepthwiseBackpropInput = 2,   // dbi: dx, input-shaped, in the geometry's data format
};

// The element types every op supports, one X(T, arg) each (the CPU cores'
// instantiations and tables, the kernel registrations).
#define TF_CONVGRAD_TYPES(X, arg) \
  X(Eigen::half, arg) X(Eigen::bfloat16, arg) X(float, arg) X(double, arg)

// Sizes of one convolution, all validated and non-negative. `in_*` describe
// the forward input (x or dx), `out_*` the forward output (dy). Depthwise ops:
// out_depth == in_depth * depth_multiplier, groups == 1. Conv2DBackpropFilter:
// filter in-depth == in_depth / groups, depth_multiplier == 1.
// A flat C struct of 18 int64 in this order: the GPU harness mirrors it field
// by field (SHAPE_FIELDS in tests/gpu/harness/capi.py).
struct ConvGeometry {
  int64_t batch = 0;
  int64_t in_rows = 0, in_cols = 0, in_depth = 0;
  int64_t filter_rows = 0, filter_cols = 0;
  int64_t groups = 1;            // Conv2DBackpropFilter only.
  int64_t depth_multiplier = 1;  // Depthwise ops only.
  int64_t out_rows = 0, out_cols = 0, out_depth = 0;
  int64_t stride_rows = 1, stride_cols = 1;
  int64_t dilation_rows = 1, dilation_cols = 1;
  int64_t pad_top = 0, pad_left = 0;  // Bottom/right pads only set out_*.
  int64_t nchw = 0;                   // 0: NHWC, 1: NCHW (filters are HWIO either way).
};
static_assert(sizeof(ConvGeometry) == 18 * sizeof(int64_t),
              "ConvGeometry must stay a flat C struct of 18 int64");

}  // namespace tf_convgrad

#endif  // TF_OPS_CC_KERNELS_CONV_GEOMETRY_H_
