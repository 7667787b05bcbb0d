"""Gradient registrations for the three ops, with the structure of TF's nn_grad.py.

* Conv2DBackpropFilter(x, sizes, dy):    dx = conv2d_backprop_input(shape(x), g, dy),
                                         d(dy) = conv2d(x, g)
* DepthwiseBackpropFilter(x, sizes, dy): dx = DepthwiseBackpropInput(shape(x), g, dy),
                                         d(dy) = depthwise_conv2d(x, g)
* DepthwiseBackpropInput(sizes, f, dy):  df = DepthwiseBackpropFilter(g, shape(f), dy),
                                         d(dy) = depthwise_conv2d(g, f)

all with the op's own attributes (TF's nn_grad.py; docs/SEMANTICS.md, "Gradient registrations
(nn_grad.py) and TF's second-order gaps"). ``conv2d``,
``conv2d_backprop_input`` and ``depthwise_conv2d`` are the differentiable blocks of
:mod:`tf_convgrad.nn`: they honour NCHW, dilations (with strides), unequal strides, explicit
padding and groups on CPU, where TF's own second-order path refuses or ignores them, and their
gradients call our ops again, so gradients of every order work.

Graph-mode safety: a gradient is built at trace time, before any kernel has validated the op.
When the op's attributes or static shapes are invalid (for example a zero stride), the op fails
at run time with its own InvalidArgumentError, as it does eagerly. The gradient then builds no
convolution at all (a zero stride must never reach TF's Conv2D or Grappler's cost model, which
divide by it): it returns zeros that depend on the op's output and on an assertion naming the
problem and on the op's output, so running the gradient raises the op's own error.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from . import nn, ops

# Kept importable from here for existing callers.
from .nn import conv2d_backprop_input, conv2d_forward, depthwise_conv2d_forward

__all__ = ["conv2d_backprop_input", "conv2d_forward", "depthwise_conv2d_forward"]


def _attrs(op) -> dict[str, Any]:
    return {
        "strides": list(op.get_attr("strides")),
        "padding": op.get_attr("padding").decode(),
        "explicit_paddings": list(op.get_attr("explicit_paddings")),
        "data_format": op.get_attr("data_format").decode(),
        "dilations": list(op.get_attr("dilations")),
    }


def _attr_problem(attrs: dict[str, Any]) -> str | None:
    """What makes the attributes invalid for our ops (and for the gradient's building blocks)."""
    data_format = attrs["data_format"]
    if data_format not in ("NHWC", "NCHW"):
        return f"invalid data_format {data_format}"
    n, c = (0, 3) if data_format == "NHWC" else (0, 1)
    for name in ("strides", "dilations"):
        values = attrs[name]
        if len(values) != 4:
            return f"{name} must have 4 values, got {values}"
        if values[n] != 1 or values[c] != 1:
            return f"{name} in the batch and depth dimensions must be 1, got {values}"
        if min(values) < 1:
            return f"{name} must be >= 1, got {values}"
    explicit = attrs["explicit_paddings"]
    if attrs["padding"] == "EXPLICIT":
        if len(explicit) != 8 or min(explicit) < 0:
            return f"explicit_paddings must be 8 values >= 0, got {explicit}"
        if explicit[2 * n : 2 * n + 2] != [0, 0] or explicit[2 * c : 2 * c + 2] != [0, 0]:
            return f"explicit padding in the batch or depth dimensions: {explicit}"
    elif explicit:
        return "explicit_paddings must be empty unless padding is EXPLICIT"
    return None


def _deferred_error(op, problem: str, like: list) -> list:
    """Zero gradients that run only after ``op`` and an assertion that names ``problem``."""
    message = f"{op.type}: cannot differentiate ({problem}); the op's output sums to"
    # A data input (not a control dependency, which Grappler may drop along with the constants
    # it lands on) makes the assertion wait for the op, so the op's own error comes first.
    total = tf.reduce_sum(op.outputs[0])
    check = tf.debugging.Assert(False, [message, total])
    with tf.control_dependencies([check]):
        total = tf.identity(total)
    return [None if t is None else tf.zeros_like(t) + tf.cast(total * 0, t.dtype) for t in like]


def _problem(kind: str, input_shape, filter_shape, dy, attrs) -> str | None:
    return _attr_problem(attrs) or nn.geometry_problem(
        kind, input_shape, filter_shape, attrs, out_shape=dy.shape
    )


@tf.RegisterGradient(ops.CONV2D_BACKPROP_FILTER)
def _conv2d_backprop_filter_grad(op, grad):
    attrs = _attrs(op)
    x, dy = op.inputs[0], op.inputs[2]
    problem = _problem("conv", x.shape, grad.shape, dy, attrs)
    if problem:
        return _deferred_error(op, problem, [x, None, dy])
    nn.check_not_xla(f"the gradient of {op.type}", [op.type])
    return [
        nn.conv2d_backprop_input_block(tf.shape(x), grad, dy, attrs, x.shape),
        None,
        nn.conv2d_block(x, grad, attrs),
    ]


@tf.RegisterGradient(ops.DEPTHWISE_BACKPROP_FILTER)
def _depthwise_backprop_filter_grad(op, grad):
    attrs = _attrs(op)
    x, dy = op.inputs[0], op.inputs[2]
    problem = _problem("depthwise", x.shape, grad.shape, dy, attrs)
    if problem:
        return _deferred_error(op, problem, [x, None, dy])
    nn.check_not_xla(f"the gradient of {op.type}", [op.type, ops.DEPTHWISE_BACKPROP_INPUT])
    return [
        ops.depthwise_conv2d_native_backprop_input(tf.shape(x), grad, dy, **attrs),
        None,
        nn.depthwise_conv2d_block(x, grad, attrs),
    ]


@tf.RegisterGradient(ops.DEPTHWISE_BACKPROP_INPUT)
def _depthwise_backprop_input_grad(op, grad):
    attrs = _attrs(op)
    f, dy = op.inputs[1], op.inputs[2]
    problem = _problem("depthwise", grad.shape, f.shape, dy, attrs)
    if problem:
        return _deferred_error(op, problem, [None, f, dy])
    nn.check_not_xla(f"the gradient of {op.type}", [op.type, ops.DEPTHWISE_BACKPROP_FILTER])
    return [
        None,
        ops.depthwise_conv2d_native_backprop_filter(grad, tf.shape(f), dy, **attrs),
        nn.depthwise_conv2d_block(grad, f, attrs),
    ]
