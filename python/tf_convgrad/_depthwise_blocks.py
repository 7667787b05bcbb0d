"""A differentiable depthwise convolution whose gradients are our two depthwise ops.

::

    y = depthwise_conv2d(x, f)         dx = DBI(f, dy),                    df = DBF(x, dy)

with ``DBI`` = ``ConvGrad>DepthwiseConv2dNativeBackpropInput`` and ``DBF`` =
``ConvGrad>DepthwiseConv2dNativeBackpropFilter``, whose registered gradients
(:mod:`tf_convgrad.grads`) use this block again, so gradients of every order run on our ops. The
value comes from TF's ``DepthwiseConv2dNative`` for equal strides without dilation (NCHW
transposed around it), else from the pad + stride-1 + subsample helper of
:mod:`tf_convgrad._forward`. The attributes come normalised and checked (:mod:`tf_convgrad._attrs`).
"""

from __future__ import annotations

import tensorflow as tf

from . import _attrs, _forward, ops

__all__ = ["depthwise_conv2d_block"]


def _depthwise_value(x, f, attrs):
    """Forward depthwise convolution: TF's kernel for equal strides without dilation, else the
    pad + stride-1 + subsample helper."""
    s = attrs["strides"]
    h, w, _ = _attrs.hw_index(attrs["data_format"])
    if s[h] != s[w] or any(d != 1 for d in attrs["dilations"]):
        return _forward.depthwise_conv2d_forward(x, f, **attrs)
    if attrs["data_format"] == "NCHW":
        y = tf.raw_ops.DepthwiseConv2dNative(
            input=_forward.to_nhwc(x), filter=f, **_attrs.to_nhwc(attrs)
        )
        return _forward.to_nchw(y)
    return tf.raw_ops.DepthwiseConv2dNative(input=x, filter=f, **attrs)


def depthwise_conv2d_block(x, f, attrs):
    """Differentiable depthwise convolution; its gradients are our DBI and DBF."""

    @tf.custom_gradient
    def _depthwise(x, f):
        def grad(dy):
            dx = ops.depthwise_conv2d_native_backprop_input(tf.shape(x), f, dy, **attrs)
            df = ops.depthwise_conv2d_native_backprop_filter(x, tf.shape(f), dy, **attrs)
            return dx, df

        return _depthwise_value(x, f, attrs), grad

    return _depthwise(x, f)
