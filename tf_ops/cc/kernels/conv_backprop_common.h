// Attribute parsing and shape validation shared by the three ops: one place
// for every check, all in 64-bit (128-bit where a product could overflow),
// returning InvalidArgument with the op's name in the message. The checks and
// their order follow TensorFlow's native CPU kernels (Conv2DBackpropFilter's
// ConvBackpropComputeDimensionsV2 and the depthwise ops' dimension checks),
// minus the refusals of features we implement: NCHW, dilations (honoured by
// the depthwise ops too, and therefore validated there), unequal depthwise
// strides and grouped Conv2DBackpropFilter.
#ifndef TF_OPS_CC_KERNELS_CONV_BACKPROP_COMMON_H_
#define TF_OPS_CC_KERNELS_CONV_BACKPROP_COMMON_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_ops/cc/kernels/conv_geometry.h"

namespace tensorflow {
namespace convgrad {

using OpKind = ::tf_convgrad::Op;

// The ops, one X(kind, registered name, sizes input, a, b) each (a and b are
// passed through): the labels of the messages and the kernel registrations of
// both devices.
#define TF_CONVGRAD_OPS(X, a, b)                                                                 \
  X(kConv2DBackpropFilter, "ConvGrad>Conv2DBackpropFilter", "filter_sizes", a, b)                \
  X(kDepthwiseBackpropFilter, "ConvGrad>DepthwiseConv2dNativeBackpropFilter", "filter_sizes", a, \
    b)                                                                                           \
  X(kDepthwiseBackpropInput, "ConvGrad>DepthwiseConv2dNativeBackpropInput", "input_sizes", a, b)

enum class PaddingKind { kValid, kSame, kExplicit };

// Attributes, parsed and checked once when the kernel is constructed.
struct ConvBackpropAttrs {
  OpKind kind;
  std::string label;  // "ConvGrad>Conv2DBackpropFilter", ...
  std::vector<int32_t> strides, dilations;
  PaddingKind padding;
  std::vector<int64_t> explicit_paddings;
  bool nchw;
};

absl::Status ParseConvBackpropAttrs(OpKernelConstruction* ctx, OpKind kind,
                                    ConvBackpropAttrs* attrs);

// Reads the int32 `filter_sizes` / `input_sizes` input into a shape: a vector,
// every entry >= 0, the element count within int64.
absl::Status ShapeFromSizesTensor(const ConvBackpropAttrs& attrs, const char* name,
                                  const Tensor& sizes, TensorShape* shape);

// Checks ranks, depths, batch and spatial sizes against the attributes and
// fills the geometry the compute cores use. `input` is the forward input's
// shape (dx's shape for the input gradient), `filter` the HWIO filter shape.
absl::Status ComputeConvBackpropGeometry(const ConvBackpropAttrs& attrs, const TensorShape& input,
                                         const TensorShape& filter, const TensorShape& out_backprop,
                                         tf_convgrad::ConvGeometry* geometry);

// What an adapter's Compute needs once the op's inputs are validated.
struct PreparedConvBackprop {
  const Tensor* data = nullptr;  // the forward input, or the filter for the input gradient
  const Tensor* out_backprop = nullptr;
  tf_convgrad::ConvGeometry geometry;
  Tensor* output = nullptr;  // output 0, allocated
};

// The shared start of Compute on every device: reads the sizes input, checks
// everything against the attributes, and allocates output 0, refusing sizes
// whose byte count (element_bytes each) cannot be represented before asking
// the allocator.
absl::Status PrepareConvBackprop(OpKernelContext* ctx, const ConvBackpropAttrs& attrs,
                                 int64_t element_bytes, PreparedConvBackprop* prepared);

}  // namespace convgrad
}  // namespace tensorflow

#endif  // TF_OPS_CC_KERNELS_CONV_BACKPROP_COMMON_H_
