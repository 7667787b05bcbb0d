"""Gradient registrations for the three ops, with the structure of TF's nn_grad.py.

* Conv2DBackpropFilter(x, sizes, dy):    dx = conv2d_backprop_input(shape(x), g, dy),
                                         d(dy) = conv2d(x, g)
* DepthwiseBackpropFilter(x, sizes, dy): dx = DepthwiseBackpropInput(shape(x), g, dy),
                                         d(dy) = depthwise_conv2d(x, g)
* DepthwiseBackpropInput(sizes, f, dy):  df = DepthwiseBackpropFilter(g, shape(f), dy),
                                         d(dy) = depthwise_conv2d(g, f)

all with the op's own attributes (TF's nn_grad.py; docs/SEMANTICS.md, "Gradient registrations
(nn_grad.py) and TF's second-order gaps"). ``conv2d``, ``conv2d_backprop_input`` and
``depthwise_conv2d`` are the differentiable blocks of :mod:`tf_convgrad._conv2d_blocks` and
:mod:`tf_convgrad._depthwise_blocks`: they honour NCHW, dilations (with strides), unequal strides,
explicit padding and groups on CPU, where TF's own second-order path refuses or ignores them, and
their gradients call our ops again, so gradients of every order work.

Graph-mode safety: a gradient is built at trace time, before any kernel has validated the op.
When the op's attributes or static shapes are invalid (for example a zero stride), the op fails
at run time with its own InvalidArgumentError, as it does eagerly. The gradient then builds no
convolution at all (a zero stride must never reach TF's Conv2D or Grappler's cost model, which
divide by it): it returns zeros that depend on the op's output and on an assertion naming the
problem, so running the gradient raises the op's own error.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from . import _attrs, _xla, ops
from ._conv2d_blocks import conv2d_backprop_input_block, conv2d_block
from ._depthwise_blocks import depthwise_conv2d_block
from ._optable import OPS


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


def _gradient(op, grad, key: str, other: Callable, forward: Callable, other_key: str | None):
    """The gradients of op ``key`` (a row of the op table) for the gradient ``grad`` of its output.

    The op's tensor operand (``input`` or ``filter``) and ``grad`` are the forward convolution's
    input and filter, in that order or the other way round. Returns ``[d(first input),
    d(second input), d(out_backprop)]``: ``other(operand, grad, dy, attrs)`` for the operand,
    ``forward(input, filter, attrs)`` for ``out_backprop``, None for the sizes.

    Args:
        op: The op being differentiated.
        grad: The gradient of its output.
        key: Its key in the op table.
        other: Builds the operand's gradient.
        forward: The differentiable forward block.
        other_key: The other op of ours that ``other`` runs, if any (for the XLA message).
    """
    row = OPS[key]
    attrs = _attrs.from_op(op)
    dy = op.inputs[2]
    operand_first = row.operand == "input"
    operand = op.inputs[0] if operand_first else op.inputs[1]
    x, w = (operand, grad) if operand_first else (grad, operand)
    kind = "depthwise" if row.depthwise else "conv"
    problem = _attrs.problem(kind, x.shape, w.shape, attrs, out_shape=dy.shape)
    if problem:
        like = [operand, None, dy] if operand_first else [None, operand, dy]
        return _deferred_error(op, problem, like)
    others = [OPS[other_key].registered] if other_key else []
    _xla.check_not_xla(f"the gradient of {op.type}", [op.type, *others])
    d_operand = other(operand, grad, dy, attrs)
    d_dy = forward(x, w, attrs)
    return [d_operand, None, d_dy] if operand_first else [None, d_operand, d_dy]


@tf.RegisterGradient(OPS["cbf"].registered)
def _conv2d_backprop_filter_grad(op, grad):
    def dx(x, g, dy, attrs):
        return conv2d_backprop_input_block(tf.shape(x), g, dy, attrs, x.shape)

    return _gradient(op, grad, "cbf", dx, conv2d_block, None)


@tf.RegisterGradient(OPS["dbf"].registered)
def _depthwise_backprop_filter_grad(op, grad):
    def dx(x, g, dy, attrs):
        return ops.depthwise_conv2d_native_backprop_input(tf.shape(x), g, dy, **attrs)

    return _gradient(op, grad, "dbf", dx, depthwise_conv2d_block, "dbi")


@tf.RegisterGradient(OPS["dbi"].registered)
def _depthwise_backprop_input_grad(op, grad):
    def df(f, g, dy, attrs):
        return ops.depthwise_conv2d_native_backprop_filter(g, tf.shape(f), dy, **attrs)

    return _gradient(op, grad, "dbi", df, depthwise_conv2d_block, "dbf")
