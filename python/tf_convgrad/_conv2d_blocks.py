"""Differentiable Conv2D and Conv2DBackpropInput whose filter gradients are our op.

Two blocks that close under differentiation::

    y  = conv2d(x, w)                  dx = conv2d_backprop_input(w, dy),   dw = CBF(x, dy)
    dx = conv2d_backprop_input(w, dy)  dw = CBF(g, dy),                    d(dy) = conv2d(g, w)

so gradients of every order run on ``ConvGrad>Conv2DBackpropFilter`` (CBF) for the filter.
Values come from TF's kernels wherever they apply: NCHW is transposed to NHWC around them, a
grouped convolution runs one TF op per group, a dilated input gradient uses TF's
Conv2DBackpropInput with the equivalent zero-spread filter; the tap helpers of
:mod:`tf_convgrad._forward` cover grouping that is not known statically. The attributes come
normalised and checked (:mod:`tf_convgrad._attrs`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from . import _attrs, _forward, ops

__all__ = ["conv2d_backprop_input_block", "conv2d_block"]


def _static_groups(in_depth: int | None, w) -> int | None:
    """Groups (input depth / filter in-depth) when both are static, else None."""
    if in_depth is None or w.shape.rank != 4 or not w.shape[2] or in_depth % w.shape[2]:
        return None
    return in_depth // w.shape[2] or None


def _static_in_depth(shape: Any, data_format: str) -> int | None:
    dims = _attrs.static_dims(shape)
    if dims is None or len(dims) != 4:
        return None
    return dims[_attrs.hw_index(data_format)[2]]


def _static(t) -> bool:
    try:
        return tf.get_static_value(t) is not None
    except (TypeError, ValueError):
        return False


def _dilate_filter(w, dilations: tuple[int, int]):
    """The undilated filter equivalent to ``w`` with these (row, column) dilations: zeros
    between the taps, ``(k - 1) * d + 1`` taps per dimension."""
    for axis, d in enumerate(dilations):
        if d == 1:
            continue
        pads = [[0, 0]] * 5
        pads[axis + 1] = [0, d - 1]
        spread = tf.pad(tf.expand_dims(w, axis + 1), pads)  # [.., k, d, ..]
        shape = tf.shape(w)
        merged = tf.concat([shape[:axis], [-1], shape[axis + 1 :]], axis=0)
        w = tf.reshape(spread, merged)
        w = w[: -(d - 1)] if axis == 0 else w[:, : -(d - 1)]
    return w


def _conv2d_value(x, w, attrs):
    """Forward Conv2D with TF's kernel (which handles dilations on CPU), per group when
    grouped; the tap helper when the grouping is not static."""
    nhwc = _attrs.to_nhwc(attrs)
    if attrs["data_format"] == "NCHW":
        x = _forward.to_nhwc(x)
    groups = _static_groups(x.shape[3], w)
    if groups is None:
        y = _forward.conv2d_forward(x, w, **nhwc)
    elif groups == 1:
        y = tf.raw_ops.Conv2D(input=x, filter=w, **nhwc)
    else:
        ys = [
            tf.raw_ops.Conv2D(input=xg, filter=wg, **nhwc)
            for xg, wg in zip(tf.split(x, groups, 3), tf.split(w, groups, 3), strict=True)
        ]
        y = tf.concat(ys, axis=3)
    return _forward.to_nchw(y) if attrs["data_format"] == "NCHW" else y


def _conv2d_backprop_input_value(sizes, w, dy, attrs, input_shape):
    """Conv2DBackpropInput with TF's kernel: dilations through an equivalent zero-spread filter
    (TF's CPU kernel refuses dilations), per group when grouped; the adjoint of the tap helper
    when the grouping is not static."""
    groups = _static_groups(_static_in_depth(input_shape, attrs["data_format"]), w)
    if groups is None:
        return _forward.conv2d_backprop_input(sizes, w, dy, **attrs)
    nhwc = dict(_attrs.to_nhwc(attrs))
    if attrs["data_format"] == "NCHW":
        sizes, dy = tf.gather(sizes, [0, 2, 3, 1]), _forward.to_nhwc(dy)
    w = _dilate_filter(w, (nhwc["dilations"][1], nhwc["dilations"][2]))
    nhwc["dilations"] = [1, 1, 1, 1]
    if groups == 1:
        dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=sizes, filter=w, out_backprop=dy, **nhwc)
    else:
        group_sizes = tf.tensor_scatter_nd_update(sizes, [[3]], [sizes[3] // groups])
        dxs = [
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=group_sizes, filter=wg, out_backprop=dyg, **nhwc
            )
            for wg, dyg in zip(tf.split(w, groups, 3), tf.split(dy, groups, 3), strict=True)
        ]
        dx = tf.concat(dxs, axis=3)
    return _forward.to_nchw(dx) if attrs["data_format"] == "NCHW" else dx


def conv2d_block(x, w, attrs):
    """Differentiable Conv2D; its filter gradient is our Conv2DBackpropFilter."""

    @tf.custom_gradient
    def _conv2d(x, w):
        def grad(dy):
            dx = conv2d_backprop_input_block(tf.shape(x), w, dy, attrs, x.shape)
            dw = ops.conv2d_backprop_filter(x, tf.shape(w), dy, **attrs)
            return dx, dw

        return _conv2d_value(x, w, attrs), grad

    return _conv2d(x, w)


def conv2d_backprop_input_block(sizes, w, dy, attrs, input_shape=None):
    """Differentiable Conv2DBackpropInput (bilinear in ``w`` and ``dy``).

    ``input_shape``: the static input shape when known (it decides whether TF's kernel applies).
    """
    if input_shape is None:
        input_shape = tf.TensorShape(tf.get_static_value(sizes)) if _static(sizes) else None

    @tf.custom_gradient
    def _backprop_input(w, dy):
        def grad(g):
            dw = ops.conv2d_backprop_filter(g, tf.shape(w), dy, **attrs)
            ddy = conv2d_block(g, w, attrs)
            return dw, ddy

        dx = _conv2d_backprop_input_value(sizes, w, dy, attrs, input_shape)
        if input_shape is not None and not tf.executing_eagerly():
            dx.set_shape(input_shape)
        return dx, grad

    return _backprop_input(w, dy)
