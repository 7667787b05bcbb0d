"""Forward convolutions from TensorFlow's basic ops, for every attribute the backprop ops accept.

TF's CPU convolution kernels refuse NCHW, grouped or dilated ``Conv2D`` and unequal depthwise
strides. These helpers cover what they refuse, on every device, with plain TF ops: the input is
moved to NHWC and padded explicitly, then

* :func:`depthwise_conv2d_forward` runs a stride-1 (dilated) VALID depthwise convolution and
  subsamples it by the strides;
* :func:`conv2d_forward` contracts one strided slice of the input per filter tap with that tap's
  weights (``einsum``), group by group; :func:`conv2d_backprop_input` is its adjoint.

The differentiable blocks (:mod:`tf_convgrad._conv2d_blocks`, :mod:`tf_convgrad._depthwise_blocks`)
use TF's kernels where they apply and these helpers for the rest; the tests use them as an
independent forward oracle.
"""

from __future__ import annotations

import tensorflow as tf

from . import _geometry

__all__ = [
    "conv2d_backprop_input",
    "conv2d_forward",
    "depthwise_conv2d_forward",
    "to_nchw",
    "to_nhwc",
]


def to_nhwc(x):
    """An NCHW tensor in NHWC."""
    return tf.transpose(x, [0, 2, 3, 1])


def to_nchw(x):
    """An NHWC tensor in NCHW."""
    return tf.transpose(x, [0, 3, 1, 2])


def _same_pads(size, k: int, stride: int, dilation: int):
    """(before, after) SAME pads of a dimension whose size is a tensor: TF's rule
    (:func:`tf_convgrad._geometry.windowed_output_size`) in TF ops."""
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride
    needed = tf.maximum(0, (out - 1) * stride + eff - size)
    return needed // 2, needed - needed // 2


def _nhwc_padded(x, filter_hw, strides, padding, explicit_paddings, data_format, dilations):
    """Moves x to NHWC and applies the op's padding explicitly.

    Returns (padded x, (stride_h, stride_w), (dilation_h, dilation_w)).
    """
    stride_hw, dilation_hw, pads_h, pads_w = _geometry.check_attrs(
        strides, padding, explicit_paddings, data_format, dilations
    )
    if data_format == "NCHW":
        x = to_nhwc(x)
    if padding == "SAME":
        shape = tf.shape(x)
        pads_h = _same_pads(shape[1], filter_hw[0], stride_hw[0], dilation_hw[0])
        pads_w = _same_pads(shape[2], filter_hw[1], stride_hw[1], dilation_hw[1])
    x = tf.pad(x, [[0, 0], list(pads_h), list(pads_w), [0, 0]])
    return x, stride_hw, dilation_hw


def depthwise_conv2d_forward(
    x, f, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward depthwise convolution with every attribute the backprop ops accept.

    Pads explicitly, runs a stride-1 (dilated) VALID depthwise convolution and subsamples
    by the strides, so unequal strides and dilation with stride work on every device. Its own
    gradient is TF's (stride 1, NHWC), used only where a caller differentiates it directly.
    """
    x, (sh, sw), (dh, dw) = _nhwc_padded(
        x, tf.shape(f), strides, padding, explicit_paddings, data_format, dilations
    )
    if dh == 1 and dw == 1 and sh == sw:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, sh, sw, 1], padding="VALID")
    else:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID", dilations=[dh, dw])
        y = y[:, ::sh, ::sw, :]
    return to_nchw(y) if data_format == "NCHW" else y


def conv2d_forward(
    x, w, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward (grouped) Conv2D with every attribute Conv2DBackpropFilter accepts.

    One strided slice of the padded input per filter tap, contracted with that tap's
    weights group by group (groups = input depth / w.shape[2]). Needs a static filter
    height and width. Works for NCHW, dilations and groups on every device, where TF's
    CPU Conv2D kernels refuse them. Built from slices and einsum only, so its own gradient
    involves no convolution kernel at all.
    """
    if w.shape.rank != 4 or w.shape[0] is None or w.shape[1] is None:
        raise ValueError(
            "tf_convgrad: a grouped or dilated Conv2D needs a filter of static height and "
            f"width, got filter shape {w.shape}"
        )
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
    return to_nchw(y) if data_format == "NCHW" else y


def conv2d_backprop_input(input_sizes, w, dy, **attrs):
    """The adjoint of :func:`conv2d_forward` in its input: d(input) for output gradient dy."""
    x0 = tf.zeros(input_sizes, dtype=dy.dtype)
    with tf.GradientTape() as tape:
        tape.watch(x0)
        y = conv2d_forward(x0, w, **attrs)
    return tape.gradient(y, x0, output_gradients=dy)
