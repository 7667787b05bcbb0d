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

import tensorflow as tf

from . import _attrs, ops
from . import _tf_gradient_registry as _registry
from ._optable import OPS

__all__ = ["disable", "enable", "is_enabled"]

_LOCK = threading.RLock()
_enabled = False
# TF's own gradient functions, as registered when tf_convgrad was imported.
_TF_GRADIENTS: dict[str, Callable] = (
    {} if _registry.PROBLEM else {t: _registry.lookup(t) for t in _registry.OP_TYPES}
)


def _cudnn(op) -> bool:
    return bool(_attrs.get_attr(op, "use_cudnn_on_gpu", True))


def _like(t, reference):
    """``t`` with ``reference``'s static shape where graph shape inference left it open."""
    if not tf.executing_eagerly():
        t.set_shape(t.shape.merge_with(reference.shape))
    return t


# --------------------------------------------------------------------------------------------
# Gradient functions (same structure and attributes as TF's nn_grad.py)
#
# Each of the five ops computes one tensor of a convolution from the other two: the input x, the
# filter w or the output y. Its gradient with respect to a tensor input computes that input's
# role from the op's other tensor and ``grad``, which takes the role of the op's output:
#
#   Conv2D(x, w) -> y                        dx = TF's Conv2DBackpropInput(w, g), dw = CBF(x, g)
#   Conv2DBackpropInput(sizes, w, y) -> x    dw = CBF(g, y),  dy = TF's Conv2D(g, w)
#   DepthwiseConv2dNative(x, w) -> y         dx = DBI(w, g),  dw = DBF(x, g)
#   DepthwiseConv2dNativeBackpropInput(sizes, w, y) -> x    dw = DBF(g, y), dy = TF's forward(g, w)
#   DepthwiseConv2dNativeBackpropFilter(x, sizes, y) -> w   dx = DBI(g, y), dy = TF's forward(x, g)
#
# The functions below compute one role from a dict of the three (the role computed holds the
# tensor whose gradient it is: its shape is the sizes argument).


def _conv_input(t, attrs, op):
    return tf.raw_ops.Conv2DBackpropInput(
        input_sizes=tf.shape(t["x"]), filter=t["w"], out_backprop=t["y"],
        use_cudnn_on_gpu=_cudnn(op), **attrs,
    )  # fmt: skip


def _conv_filter(t, attrs, op):
    return _like(ops.conv2d_backprop_filter(t["x"], tf.shape(t["w"]), t["y"], **attrs), t["w"])


def _conv_output(t, attrs, op):
    return tf.raw_ops.Conv2D(input=t["x"], filter=t["w"], use_cudnn_on_gpu=_cudnn(op), **attrs)


def _depthwise_input(t, attrs, op):
    dx = ops.depthwise_conv2d_native_backprop_input(tf.shape(t["x"]), t["w"], t["y"], **attrs)
    return _like(dx, t["x"])


def _depthwise_filter(t, attrs, op):
    dw = ops.depthwise_conv2d_native_backprop_filter(t["x"], tf.shape(t["w"]), t["y"], **attrs)
    return _like(dw, t["w"])


def _depthwise_output(t, attrs, op):
    return tf.raw_ops.DepthwiseConv2dNative(input=t["x"], filter=t["w"], **attrs)


_CONV = {"x": _conv_input, "w": _conv_filter, "y": _conv_output}
_DEPTHWISE = {"x": _depthwise_input, "w": _depthwise_filter, "y": _depthwise_output}

# Op type -> (its family's functions, the roles of its inputs (None: the sizes), its output's).
_ROLES: dict[str, tuple[dict[str, Callable], tuple[str | None, ...], str]] = {
    "Conv2D": (_CONV, ("x", "w"), "y"),
    "Conv2DBackpropInput": (_CONV, (None, "w", "y"), "x"),
    "DepthwiseConv2dNative": (_DEPTHWISE, ("x", "w"), "y"),
    OPS["dbi"].tf_name: (_DEPTHWISE, (None, "w", "y"), "x"),
    OPS["dbf"].tf_name: (_DEPTHWISE, ("x", None, "y"), "w"),
}
assert set(_ROLES) == set(_registry.OP_TYPES)


def _ours(op, grad) -> list:
    """Our gradient of one of the five ops: one per input, None for the sizes and for the inputs
    the eager tape does not need (TF passes their indices as ``op.skip_input_indices``)."""
    family, roles, output = _ROLES[op.type]
    tensors = {role: t for role, t in zip(roles, op.inputs, strict=True) if role}
    tensors[output] = grad
    attrs = _attrs.from_op(op)
    skip = tuple(getattr(op, "skip_input_indices", None) or ())
    return [
        None if role is None or i in skip else family[role](tensors, attrs, op)
        for i, role in enumerate(roles)
    ]


def _outside_xla(op_type: str) -> Callable:
    """Our gradient, or TF's own where XLA compiles it (custom ops cannot be compiled)."""

    def gradient(op, grad):
        if _registry.building_for_xla():
            return _TF_GRADIENTS[op_type](op, grad)
        return _ours(op, grad)

    gradient.__name__ = f"tf_convgrad_{op_type}_grad"
    gradient.__doc__ = f"tf_convgrad.enable()'s gradient for TF's {op_type}."
    return gradient


_REPLACEMENTS: dict[str, Callable] = {t: _outside_xla(t) for t in _registry.OP_TYPES}


# --------------------------------------------------------------------------------------------
# Cost-free stand-ins (for `bench --train`'s measured ceiling; not an API)


def _zeros_after(like, after):
    """Zeros of ``like``'s shape and dtype, computed from one element of ``after``: a tensor that
    costs only its own write, yet keeps every op that produces ``after`` in the graph (a result
    from ``like`` alone would let TF prune the gradient ops upstream)."""
    zero = tf.cast(tf.reshape(after, [-1])[0], like.dtype) * 0
    return _like(tf.broadcast_to(zero, tf.shape(like)), like)


class _StandIns:
    """While active, the roles that run our ops (the conv filter gradient, the depthwise input and
    filter gradients) build :func:`_zeros_after` the incoming gradient instead: the training
    step as it would run if our three ops took no time beyond writing their results. TF's other
    gradients are untouched. Affects gradients built (traced) while active, under
    :func:`enable`; holds the module's lock meanwhile."""

    _ROLES = ((_CONV, "w"), (_DEPTHWISE, "x"), (_DEPTHWISE, "w"))

    def __enter__(self) -> _StandIns:
        _LOCK.acquire()
        self._saved = [family[role] for family, role in self._ROLES]
        for family, role in self._ROLES:
            family[role] = lambda t, attrs, op, role=role: _zeros_after(t[role], t["y"])
        return self

    def __exit__(self, *exc_info) -> None:
        for (family, role), function in zip(self._ROLES, self._saved, strict=True):
            family[role] = function
        _LOCK.release()


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
