"""Gradient registrations for the three ops, with the structure of TF's nn_grad.py.

* Conv2DBackpropFilter(x, sizes, dy):       dx = Conv2DBackpropInput(shape(x), g, dy),
                                            d(dy) = Conv2D(x, g)
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


def depthwise_conv2d_forward(
    x, f, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward depthwise convolution with every attribute the backprop ops accept.

    Pads explicitly, runs a stride-1 (dilated) VALID depthwise convolution and subsamples
    by the strides, so unequal strides and dilation with stride work on every device.
    """
    nchw = data_format == "NCHW"
    if nchw:
        x = tf.transpose(x, [0, 2, 3, 1])
    h, w = (2, 3) if nchw else (1, 2)
    sh, sw, dh, dw = strides[h], strides[w], dilations[h], dilations[w]
    shape, fshape = tf.shape(x), tf.shape(f)
    if padding == "EXPLICIT":
        pads = [
            (explicit_paddings[2 * h], explicit_paddings[2 * h + 1]),
            (explicit_paddings[2 * w], explicit_paddings[2 * w + 1]),
        ]
    elif padding == "SAME":
        pads = [
            _same_pads(shape[1], fshape[0], sh, dh),
            _same_pads(shape[2], fshape[1], sw, dw),
        ]
    else:
        pads = [(0, 0), (0, 0)]
    x = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
    if dh == 1 and dw == 1 and sh == sw:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, sh, sw, 1], padding="VALID")
    else:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID", dilations=[dh, dw])
        y = y[:, ::sh, ::sw, :]
    if nchw:
        y = tf.transpose(y, [0, 3, 1, 2])
    return y


@tf.RegisterGradient(ops.CONV2D_BACKPROP_FILTER)
def _conv2d_backprop_filter_grad(op, grad):
    attrs = _attrs(op, with_cudnn=True)
    x, dy = op.inputs[0], op.inputs[2]
    return [
        tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=grad, out_backprop=dy, **attrs
        ),
        None,
        tf.raw_ops.Conv2D(input=x, filter=grad, **attrs),
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
