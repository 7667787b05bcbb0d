"""Gradient registrations for the three ops, with the structure of TF's nn_grad.py.

* Conv2DBackpropFilter(x, sizes, dy):       dx = Conv2DBackpropInput(shape(x), g, dy),
                                            d(dy) = Conv2D(x, g)
                                            (TF's kernels for NHWC, undilated, ungrouped cases;
                                            otherwise conv2d_forward below and its adjoint)
* DepthwiseBackpropFilter(x, sizes, dy):    dx = DepthwiseBackpropInput(shape(x), g, dy),
                                            d(dy) = depthwise_conv2d(x, g)
* DepthwiseBackpropInput(sizes, f, dy):     df = DepthwiseBackpropFilter(g, shape(f), dy),
                                            d(dy) = depthwise_conv2d(g, f)
all with the op's own attributes. The depthwise gradients use our own ops and a forward
depthwise convolution that honours dilations, unequal strides, explicit padding and NCHW
(TF's raw DepthwiseConv2dNative refuses dilations, unequal strides and NCHW on CPU).
"""

from __future__ import annotations

import tensorflow as tf

from . import ops


def _attrs(op, with_cudnn=False):
    attrs = {
        "strides": list(op.get_attr("strides")),
        "padding": op.get_attr("padding").decode(),
        "explicit_paddings": list(op.get_attr("explicit_paddings")),
        "data_format": op.get_attr("data_format").decode(),
        "dilations": list(op.get_attr("dilations")),
    }
    if with_cudnn:
        attrs["use_cudnn_on_gpu"] = op.get_attr("use_cudnn_on_gpu")
    return attrs


def _same_pads(size, k, stride, dilation):
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride
    needed = tf.maximum(0, (out - 1) * stride + eff - size)
    return needed // 2, needed - needed // 2


def _nhwc_padded(x, fshape, strides, padding, explicit_paddings, data_format, dilations):
    """Moves x to NHWC and applies the op's padding explicitly.

    Returns (padded x, (stride_h, stride_w), (dilation_h, dilation_w)).
    """
    nchw = data_format == "NCHW"
    if nchw:
        x = tf.transpose(x, [0, 2, 3, 1])
    h, w = (2, 3) if nchw else (1, 2)
    shape = tf.shape(x)
    if padding == "EXPLICIT":
        pads = [
            (explicit_paddings[2 * h], explicit_paddings[2 * h + 1]),
            (explicit_paddings[2 * w], explicit_paddings[2 * w + 1]),
        ]
    elif padding == "SAME":
        pads = [
            _same_pads(shape[1], fshape[0], strides[h], dilations[h]),
            _same_pads(shape[2], fshape[1], strides[w], dilations[w]),
        ]
    else:
        pads = [(0, 0), (0, 0)]
    x = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
    return x, (strides[h], strides[w]), (dilations[h], dilations[w])


def depthwise_conv2d_forward(
    x, f, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward depthwise convolution with every attribute the backprop ops accept.

    Pads explicitly, runs a stride-1 (dilated) VALID depthwise convolution and subsamples
    by the strides, so unequal strides and dilation with stride work on every device.
    """
    x, (sh, sw), (dh, dw) = _nhwc_padded(
        x, tf.shape(f), strides, padding, explicit_paddings, data_format, dilations
    )
    if dh == 1 and dw == 1 and sh == sw:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, sh, sw, 1], padding="VALID")
    else:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID", dilations=[dh, dw])
        y = y[:, ::sh, ::sw, :]
    if data_format == "NCHW":
        y = tf.transpose(y, [0, 3, 1, 2])
    return y


def conv2d_forward(
    x, w, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward (grouped) Conv2D with every attribute Conv2DBackpropFilter accepts.

    One strided slice of the padded input per filter tap, contracted with that tap's
    weights group by group (groups = input depth / w.shape[2]). Needs a static filter
    height and width. Works for NCHW, dilations and groups on every device, where TF's
    CPU Conv2D kernels refuse them.
    """
    kh, kw = int(w.shape[0]), int(w.shape[1])
    x, (sh, sw), (dh, dw) = _nhwc_padded(
        x, (kh, kw), strides, padding, explicit_paddings, data_format, dilations
    )
    shape, wshape = tf.shape(x), tf.shape(w)
    cf, co = wshape[2], wshape[3]
    groups = shape[3] // cf
    oh = (shape[1] - ((kh - 1) * dh + 1)) // sh + 1
    ow = (shape[2] - ((kw - 1) * dw + 1)) // sw + 1
    y = tf.zeros(tf.stack([shape[0], oh, ow, groups, co // groups]), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            xs = x[
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
                :,
            ]
            xs = tf.reshape(xs, tf.stack([shape[0], oh, ow, groups, cf]))
            wt = tf.reshape(w[i, j], tf.stack([cf, groups, co // groups]))
            y += tf.einsum("bhwgc,cgo->bhwgo", xs, wt)
    y = tf.reshape(y, tf.stack([shape[0], oh, ow, co]))
    if data_format == "NCHW":
        y = tf.transpose(y, [0, 3, 1, 2])
    return y


def conv2d_backprop_input(input_sizes, w, dy, **attrs):
    """The adjoint of conv2d_forward in its input: d(input) for output gradient dy."""
    x0 = tf.zeros(input_sizes, dtype=dy.dtype)
    with tf.GradientTape() as tape:
        tape.watch(x0)
        y = conv2d_forward(x0, w, **attrs)
    return tape.gradient(y, x0, output_gradients=dy)


def _tf_cpu_conv_supports(x, grad, attrs):
    """True when TF's own Conv2D / Conv2DBackpropInput handle the case on every device."""
    in_depth = x.shape[-1] if attrs["data_format"] == "NHWC" else x.shape[1]
    return (
        attrs["data_format"] == "NHWC"
        and all(d == 1 for d in attrs["dilations"])
        and in_depth is not None
        and grad.shape[2] is not None
        and in_depth == grad.shape[2]
    )


@tf.RegisterGradient(ops.CONV2D_BACKPROP_FILTER)
def _conv2d_backprop_filter_grad(op, grad):
    attrs = _attrs(op, with_cudnn=True)
    x, dy = op.inputs[0], op.inputs[2]
    if _tf_cpu_conv_supports(x, grad, attrs) or grad.shape[0] is None or grad.shape[1] is None:
        return [
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=grad, out_backprop=dy, **attrs
            ),
            None,
            tf.raw_ops.Conv2D(input=x, filter=grad, **attrs),
        ]
    attrs.pop("use_cudnn_on_gpu")
    return [
        conv2d_backprop_input(tf.shape(x), grad, dy, **attrs),
        None,
        conv2d_forward(x, grad, **attrs),
    ]


@tf.RegisterGradient(ops.DEPTHWISE_BACKPROP_FILTER)
def _depthwise_backprop_filter_grad(op, grad):
    attrs = _attrs(op)
    x, dy = op.inputs[0], op.inputs[2]
    return [
        ops.depthwise_conv2d_native_backprop_input(tf.shape(x), grad, dy, **attrs),
        None,
        depthwise_conv2d_forward(x, grad, **attrs),
    ]


@tf.RegisterGradient(ops.DEPTHWISE_BACKPROP_INPUT)
def _depthwise_backprop_input_grad(op, grad):
    attrs = _attrs(op)
    f, dy = op.inputs[1], op.inputs[2]
    return [
        None,
        ops.depthwise_conv2d_native_backprop_filter(grad, tf.shape(f), dy, **attrs),
        depthwise_conv2d_forward(grad, f, **attrs),
    ]
