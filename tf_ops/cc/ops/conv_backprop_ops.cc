// Op definitions: each mirrors its TensorFlow 2.21 twin exactly (inputs,
// output, attributes, allowed values, defaults) under the "ConvGrad>" prefix.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace convgrad {
namespace {

// The output shape is the value of the sizes input (input `kIndex`) when that
// is a constant, else four unknown dimensions.
template <int kIndex>
absl::Status SizesInputShape(shape_inference::InferenceContext* c) {
  shape_inference::ShapeHandle s;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(kIndex, &s));
  TF_RETURN_IF_ERROR(c->WithRank(s, 4, &s));
  c->set_output(0, s);
  return absl::OkStatus();
}

// The ops' documentation (cbf, dbf, dbi).
constexpr char kCbfDoc[] = R"doc(
Gradient of Conv2D with respect to the filter; mirrors tf.raw_ops.Conv2DBackpropFilter.
Supports NHWC and NCHW, dilations, grouped filters (input depth = groups * filter
in-depth) and asymmetric explicit padding on every device; half and bfloat16 accumulate
in float32; results are deterministic.
)doc";
constexpr char kDbfDoc[] = R"doc(
Gradient of DepthwiseConv2dNative with respect to the filter; mirrors
tf.raw_ops.DepthwiseConv2dNativeBackpropFilter. Unlike TensorFlow it honours dilations and
accepts unequal row and column strides.
)doc";
constexpr char kDbiDoc[] = R"doc(
Gradient of DepthwiseConv2dNative with respect to the input; mirrors
tf.raw_ops.DepthwiseConv2dNativeBackpropInput. Unlike TensorFlow it honours dilations and
accepts unequal row and column strides.
)doc";

}  // namespace

// Every op: its first two inputs (the sizes input, at index `sizes_index`,
// among them), out_backprop, the output, T, strides, the attributes only it
// has (`own_attrs`: Conv2DBackpropFilter's use_cudnn_on_gpu), then the window
// attributes, in TensorFlow's order.
// clang-format off
#define TF_CONVGRAD_REGISTER_OP(name, input0, input1, sizes_index, own_attrs) \
  REGISTER_OP(name)                                                           \
      .Input(input0)                                                          \
      .Input(input1)                                                          \
      .Input("out_backprop: T")                                               \
      .Output("output: T")                                                    \
      .Attr("T: {half, bfloat16, float, double}")                             \
      .Attr("strides: list(int)")                                             \
      own_attrs                                                               \
      .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")                         \
      .Attr("explicit_paddings: list(int) = []")                              \
      .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")                         \
      .Attr("dilations: list(int) = [1, 1, 1, 1]")                            \
      .SetShapeFn(SizesInputShape<sizes_index>)
// clang-format on

TF_CONVGRAD_REGISTER_OP("ConvGrad>Conv2DBackpropFilter", "input: T", "filter_sizes: int32", 1,
                        .Attr("use_cudnn_on_gpu: bool = true"))
    .Doc(kCbfDoc);

TF_CONVGRAD_REGISTER_OP("ConvGrad>DepthwiseConv2dNativeBackpropFilter", "input: T",
                        "filter_sizes: int32", 1, )
    .Doc(kDbfDoc);

TF_CONVGRAD_REGISTER_OP("ConvGrad>DepthwiseConv2dNativeBackpropInput", "input_sizes: int32",
                        "filter: T", 0, )
    .Doc(kDbiDoc);

#undef TF_CONVGRAD_REGISTER_OP

}  // namespace convgrad
}  // namespace tensorflow
