"""Forward convolutions whose gradients run on tf_convgrad's ops: the public ``tf_convgrad.nn``.

* :func:`conv2d` (like ``tf.nn.conv2d``): its filter gradient is our ``Conv2DBackpropFilter``.
* :func:`depthwise_conv2d` (like ``tf.nn.depthwise_conv2d``): its filter and input gradients are
  our ``DepthwiseConv2dNativeBackpropFilter`` and ``DepthwiseConv2dNativeBackpropInput``.

Both accept every attribute the backprop ops accept, on CPU: ``NHWC`` and ``NCHW``, unequal
strides, dilations together with strides, explicit (asymmetric) padding, and for :func:`conv2d`
grouped filters (input depth = groups x filter in-depth). Each normalises and checks its
arguments (:mod:`tf_convgrad._attrs`) and hands them to a differentiable block, a
``tf.custom_gradient`` function built from our ops (:mod:`tf_convgrad._conv2d_blocks`,
:mod:`tf_convgrad._depthwise_blocks`); the registered gradients of the three ops
(:mod:`tf_convgrad.grads`) use the same blocks, so gradients of every order run on our ops for
the filter gradients.

Under ``tf.function(jit_compile=True)`` (XLA) these functions raise
``tf.errors.UnimplementedError`` with an explanation: XLA cannot compile a custom op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from . import _attrs, _xla
from ._conv2d_blocks import conv2d_block
from ._depthwise_blocks import depthwise_conv2d_block
from ._optable import OPS

__all__ = ["conv2d", "depthwise_conv2d"]


def _convolve(
    api: str,
    kind: str,
    block: Callable,
    op_keys: tuple[str, ...],
    args: tuple[Any, ...],
    name: str | None,
):
    """Checks ``args`` (input, filter, strides, padding, data_format, dilations) and runs
    ``block`` on them under a name scope, refusing XLA for the ops ``op_keys``."""
    input, filters, strides, padding, data_format, dilations = args
    with tf.name_scope(name or api.removeprefix("tf_convgrad.")):
        x = tf.convert_to_tensor(input)
        w = tf.convert_to_tensor(filters, dtype_hint=x.dtype)
        if w.dtype != x.dtype:
            raise ValueError(f"{api}: input is {x.dtype.name} but the filter is {w.dtype.name}")
        attrs = _attrs.normalize(api, strides, padding, data_format, dilations)
        problem = _attrs.problem(kind, x.shape, w.shape, attrs)
        if problem:
            raise ValueError(f"{api}: {problem}")
        _xla.check_not_xla(api, [OPS[key].registered for key in op_keys])
        return block(x, w, attrs)


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None, name=None):
    """2-D convolution (``tf.nn.conv2d``) whose filter gradient is our Conv2DBackpropFilter.

    Beyond TF's CPU kernels, the forward pass and both gradients work for NCHW, dilations
    (also together with strides > 1) and grouped filters (input depth = groups x
    ``filters.shape[2]``). Gradients of every order are available.

    Args:
      input: 4-D tensor, ``[batch, height, width, depth]`` (NHWC) or ``[batch, depth, height,
        width]`` (NCHW); half, bfloat16, float or double.
      filters: ``[kh, kw, depth / groups, out_depth]`` tensor of the same dtype.
      strides: An int or a list of 1, 2 or 4 ints (4: in ``data_format`` order).
      padding: ``"SAME"``, ``"VALID"``, or explicit ``[before, after]`` pairs: 4 (in
        ``data_format`` order, zero for batch and depth) or 2 (height, width).
      data_format: ``"NHWC"`` or ``"NCHW"``.
      dilations: None, an int or a list of 1, 2 or 4 ints.
      name: Optional name scope.

    Returns:
      The convolution, in ``data_format``.

    Raises:
      ValueError: On invalid arguments or statically inconsistent shapes.
      tf.errors.UnimplementedError: Inside ``tf.function(jit_compile=True)``.
    """
    return _convolve(
        "tf_convgrad.conv2d", "conv", conv2d_block, ("cbf",),
        (input, filters, strides, padding, data_format, dilations), name,
    )  # fmt: skip


def depthwise_conv2d(
    input, filter, strides, padding, data_format="NHWC", dilations=None, name=None
):
    """Depthwise convolution (``tf.nn.depthwise_conv2d``) whose gradients are our ops.

    The filter gradient is our DepthwiseConv2dNativeBackpropFilter and the input gradient our
    DepthwiseConv2dNativeBackpropInput. Beyond TF's CPU kernels: NCHW, unequal strides, and
    dilations together with strides > 1.

    Args:
      input: 4-D tensor in ``data_format``.
      filter: ``[kh, kw, depth, depth_multiplier]`` tensor of the same dtype.
      strides: An int or a list of 1, 2 or 4 ints (4: in ``data_format`` order, as for
        ``tf.nn.depthwise_conv2d``).
      padding: ``"SAME"``, ``"VALID"`` or explicit pairs, as for :func:`conv2d`.
      data_format: ``"NHWC"`` or ``"NCHW"``.
      dilations: None, an int or a list of 1, 2 or 4 ints (``tf.nn.depthwise_conv2d``'s
        2-element ``dilations`` works as is).
      name: Optional name scope.

    Returns:
      The depthwise convolution, depth ``depth * depth_multiplier``, channel ``c * M + m``.

    Raises:
      ValueError: On invalid arguments or statically inconsistent shapes.
      tf.errors.UnimplementedError: Inside ``tf.function(jit_compile=True)``.
    """
    return _convolve(
        "tf_convgrad.depthwise_conv2d", "depthwise", depthwise_conv2d_block, ("dbi", "dbf"),
        (input, filter, strides, padding, data_format, dilations), name,
    )  # fmt: skip
