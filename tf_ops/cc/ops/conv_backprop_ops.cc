// Op definitions: each mirrors its TensorFlow 2.21 twin exactly (inputs,
// output, attributes, allowed values, defaults) under the "ConvGrad>" prefix.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace convgrad {
namespace {

// The output shape is the value of the sizes input (input `index`) when that
// is a constant, else four unknown dimensions.
absl::Status SizesInputShape(shape_inference::InferenceContext* c, int index) {
  shape_inference::ShapeHandle s;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(index, &s));
  TF_RETURN_IF_ERROR(c->WithRank(s, 4, &s));
  c->set_output(0, s);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("ConvGrad>Conv2DBackpropFilter")
    .Input("input: T")
    .Input("filter_sizes: int32")
    .Input("out_backprop: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("strides: list(int)")
    .Attr("use_cudnn_on_gpu: bool = true")
    .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")
    .Attr("explicit_paddings: list(int) = []")
    .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")
    .Attr("dilations: list(int) = [1, 1, 1, 1]")
    .SetShapeFn([](shape_inference::InferenceContext* c) { return SizesInputShape(c, 1); })
    .Doc(R"doc(
Gradient of Conv2D with respect to the filter; mirrors tf.raw_ops.Conv2DBackpropFilter.
Supports NHWC and NCHW, dilations, grouped filters (input depth = groups * filter
in-depth) and asymmetric explicit padding on every device; half and bfloat16 accumulate
in float32; results are deterministic.
)doc");

REGISTER_OP("ConvGrad>DepthwiseConv2dNativeBackpropFilter")
    .Input("input: T")
    .Input("filter_sizes: int32")
    .Input("out_backprop: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("strides: list(int)")
    .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")
    .Attr("explicit_paddings: list(int) = []")
    .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")
    .Attr("dilations: list(int) = [1, 1, 1, 1]")
    .SetShapeFn([](shape_inference::InferenceContext* c) { return SizesInputShape(c, 1); })
    .Doc(R"doc(
Gradient of DepthwiseConv2dNative with respect to the filter; mirrors
tf.raw_ops.DepthwiseConv2dNativeBackpropFilter. Unlike TensorFlow it honours dilations and
accepts unequal row and column strides.
)doc");

REGISTER_OP("ConvGrad>DepthwiseConv2dNativeBackpropInput")
    .Input("input_sizes: int32")
    .Input("filter: T")
    .Input("out_backprop: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("strides: list(int)")
    .Attr("padding: {'SAME', 'VALID', 'EXPLICIT'}")
    .Attr("explicit_paddings: list(int) = []")
    .Attr("data_format: {'NHWC', 'NCHW'} = 'NHWC'")
    .Attr("dilations: list(int) = [1, 1, 1, 1]")
    .SetShapeFn([](shape_inference::InferenceContext* c) { return SizesInputShape(c, 0); })
    .Doc(R"doc(
Gradient of DepthwiseConv2dNative with respect to the input; mirrors
tf.raw_ops.DepthwiseConv2dNativeBackpropInput. Unlike TensorFlow it honours dilations and
accepts unequal row and column strides.
)doc");

}  // namespace convgrad
}  // namespace tensorflow
