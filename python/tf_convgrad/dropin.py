"""Drop-in: TensorFlow's own convolutions differentiate through tf_convgrad's ops.

After :func:`enable`, the gradients TensorFlow builds for its ``Conv2D`` and
``DepthwiseConv2dNative`` ops (and for the transposed forms that appear in higher-order
gradients and ``Conv2DTranspose``) use our kernels:

* ``Conv2D(x, w)``: dx is TF's ``Conv2DBackpropInput``, dw is ``ConvGrad>Conv2DBackpropFilter``.
* ``Conv2DBackpropInput(sizes, w, dy)``: dw is ours, d(dy) TF's ``Conv2D``.
* ``DepthwiseConv2dNative(x, f)``: dx is ``ConvGrad>DepthwiseConv2dNativeBackpropInput``, df is
  ``ConvGrad>DepthwiseConv2dNativeBackpropFilter``.
* ``DepthwiseConv2dNativeBackpropInput`` / ``...BackpropFilter``: the other depthwise gradient is
  ours, d(dy) TF's ``DepthwiseConv2dNative``.

so a training graph traced under ``enable()`` holds none of TF's ``Conv2DBackpropFilter``,
``DepthwiseConv2dNativeBackpropFilter`` or ``DepthwiseConv2dNativeBackpropInput``. The forward
ops stay TF's. Gradients are chosen when they are built: in eager ``GradientTape`` code, at
``tape.gradient``; in a ``tf.function`` (a Keras training step), when it is traced. A function
traced before ``enable()`` keeps the gradients it traced with (Keras: call ``enable()`` before
the first ``fit``/``train_on_batch``, or ``model.compile`` again afterwards).

Under XLA (``jit_compile=True``) a custom op cannot be compiled, so inside an XLA context the
replaced functions hand over to TF's own gradient functions: such graphs run TF's kernels.

The swap goes through TF's private gradient registry, in one module
(:mod:`tf_convgrad._tf_gradient_registry`) that checks its shape at import; ``enable()`` raises
``RuntimeError`` with the reason when the installed TensorFlow no longer has that shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from . import _tf_gradient_registry as _registry
from . import ops

__all__ = ["disable", "enable", "is_enabled"]

_LOCK = threading.RLock()
_enabled = False
# TF's own gradient functions, as registered when tf_convgrad was imported.
_TF_GRADIENTS: dict[str, Callable] = (
    {} if _registry.PROBLEM else {t: _registry.lookup(t) for t in _registry.OP_TYPES}
)


# --------------------------------------------------------------------------------------------
# Attributes, as TF stores them (bytes for strings, lists, possibly None on the eager path)


def _text(value: Any, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _get(op, name: str, default: Any) -> Any:
    try:
        value = op.get_attr(name)
    except (KeyError, ValueError):
        return default
    return default if value is None else value


def _attrs(op) -> dict[str, Any]:
    """The five attributes every one of our ops takes, normalised."""
    return {
        "strides": [int(v) for v in _get(op, "strides", [1, 1, 1, 1])],
        "padding": _text(_get(op, "padding", None), "VALID"),
        "explicit_paddings": [int(v) for v in _get(op, "explicit_paddings", [])],
        "data_format": _text(_get(op, "data_format", None), "NHWC"),
        "dilations": [int(v) for v in _get(op, "dilations", [1, 1, 1, 1])],
    }


def _cudnn(op) -> bool:
    return bool(_get(op, "use_cudnn_on_gpu", True))


def _skipped(op) -> tuple:
    """Inputs whose gradient the eager tape does not need (TF passes their indices)."""
    return tuple(getattr(op, "skip_input_indices", None) or ())


def _like(t, reference):
    """``t`` with ``reference``'s static shape where graph shape inference left it open."""
    if t is not None and not tf.executing_eagerly():
        t.set_shape(t.shape.merge_with(reference.shape))
    return t


# --------------------------------------------------------------------------------------------
# Gradient functions (same structure and attributes as TF's nn_grad.py)


def _conv2d_grad(op, grad):
    x, w = op.inputs[0], op.inputs[1]
    attrs, skip = _attrs(op), _skipped(op)
    dx = dw = None
    if 0 not in skip:
        dx = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=grad, use_cudnn_on_gpu=_cudnn(op),
            **attrs,
        )  # fmt: skip
    if 1 not in skip:
        dw = _like(ops.conv2d_backprop_filter(x, tf.shape(w), grad, **attrs), w)
    return [dx, dw]


def _conv2d_backprop_input_grad(op, grad):
    w, dy = op.inputs[1], op.inputs[2]
    attrs, skip = _attrs(op), _skipped(op)
    dw = ddy = None
    if 1 not in skip:
        dw = _like(ops.conv2d_backprop_filter(grad, tf.shape(w), dy, **attrs), w)
    if 2 not in skip:
        ddy = tf.raw_ops.Conv2D(input=grad, filter=w, use_cudnn_on_gpu=_cudnn(op), **attrs)
    return [None, dw, ddy]


def _depthwise_grad(op, grad):
    x, f = op.inputs[0], op.inputs[1]
    attrs, skip = _attrs(op), _skipped(op)
    dx = df = None
    if 0 not in skip:
        dx = _like(ops.depthwise_conv2d_native_backprop_input(tf.shape(x), f, grad, **attrs), x)
    if 1 not in skip:
        df = _like(ops.depthwise_conv2d_native_backprop_filter(x, tf.shape(f), grad, **attrs), f)
    return [dx, df]


def _depthwise_backprop_input_grad(op, grad):
    f, dy = op.inputs[1], op.inputs[2]
    attrs, skip = _attrs(op), _skipped(op)
    df = ddy = None
    if 1 not in skip:
        df = _like(ops.depthwise_conv2d_native_backprop_filter(grad, tf.shape(f), dy, **attrs), f)
    if 2 not in skip:
        ddy = tf.raw_ops.DepthwiseConv2dNative(input=grad, filter=f, **attrs)
    return [None, df, ddy]


def _depthwise_backprop_filter_grad(op, grad):
    x, dy = op.inputs[0], op.inputs[2]
    attrs, skip = _attrs(op), _skipped(op)
    dx = ddy = None
    if 0 not in skip:
        dx = _like(ops.depthwise_conv2d_native_backprop_input(tf.shape(x), grad, dy, **attrs), x)
    if 2 not in skip:
        ddy = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=grad, **attrs)
    return [dx, None, ddy]


_OURS: dict[str, Callable] = {
    "Conv2D": _conv2d_grad,
    "Conv2DBackpropInput": _conv2d_backprop_input_grad,
    "DepthwiseConv2dNative": _depthwise_grad,
    "DepthwiseConv2dNativeBackpropInput": _depthwise_backprop_input_grad,
    "DepthwiseConv2dNativeBackpropFilter": _depthwise_backprop_filter_grad,
}
assert set(_OURS) == set(_registry.OP_TYPES)


def _outside_xla(op_type: str) -> Callable:
    """Our gradient, or TF's own where XLA compiles it (custom ops cannot be compiled)."""
    ours = _OURS[op_type]

    def gradient(op, grad):
        if _registry.building_for_xla():
            return _TF_GRADIENTS[op_type](op, grad)
        return ours(op, grad)

    gradient.__name__ = f"tf_convgrad_{ours.__name__.lstrip('_')}"
    gradient.__doc__ = f"tf_convgrad.enable()'s gradient for TF's {op_type}."
    return gradient


_REPLACEMENTS: dict[str, Callable] = {t: _outside_xla(t) for t in _registry.OP_TYPES}


# --------------------------------------------------------------------------------------------
# The switch


class _Restore:
    """Returned by :func:`enable` and :func:`disable`; as a context manager, restores the state
    that was in force before the call when the ``with`` block ends."""

    def __init__(self, previous: bool, now: bool):
        self._previous, self._now = previous, now

    def __enter__(self) -> _Restore:
        return self

    def __exit__(self, *exc_info) -> None:
        _set(self._previous)

    def __repr__(self) -> str:
        return f"<tf_convgrad {'enabled' if self._now else 'disabled'}; previously " + (
            "enabled>" if self._previous else "disabled>"
        )


def _set(on: bool) -> bool:
    """Installs our gradient functions (on) or TF's (off); returns the previous state."""
    global _enabled
    if _registry.PROBLEM:
        if not on:  # nothing was ever swapped
            return False
        raise RuntimeError(
            "tf_convgrad.enable() cannot replace TensorFlow's gradient functions in TensorFlow "
            f"{tf.__version__}: {_registry.PROBLEM}. tf_convgrad supports TensorFlow 2.21.0; use "
            "tf_convgrad.layers or tf_convgrad.conv2d/depthwise_conv2d, which need no registry."
        )
    with _LOCK:
        previous = _enabled
        table = _REPLACEMENTS if on else _TF_GRADIENTS
        for op_type, function in table.items():
            _registry.swap(op_type, function)
        _enabled = on
    return previous


def enable() -> _Restore:
    """Makes TensorFlow differentiate its own convolutions with tf_convgrad's kernels.

    From this call on, gradients built for TF's ``Conv2D`` use ``ConvGrad>Conv2DBackpropFilter``
    for the filter gradient (the input gradient stays TF's ``Conv2DBackpropInput``), and those of
    ``DepthwiseConv2dNative`` use ``ConvGrad>DepthwiseConv2dNativeBackpropInput`` and
    ``ConvGrad>DepthwiseConv2dNativeBackpropFilter``: eager ``GradientTape`` code, every
    ``tf.function`` traced afterwards, Keras ``fit``, ``keras.applications`` models.

    Returns:
        An object that, used as a context manager (``with tf_convgrad.enable(): ...``), restores
        the previous state on exit; nesting works.

    Raises:
        RuntimeError: If the installed TensorFlow's gradient registry does not have the shape
            this module relies on (it is checked at import).
    """
    return _Restore(_set(True), True)


def disable() -> _Restore:
    """Restores TensorFlow's own gradient functions (also usable as a context manager)."""
    return _Restore(_set(False), False)


def is_enabled() -> bool:
    """Whether TF's convolution gradients currently run on tf_convgrad's ops."""
    return _enabled
