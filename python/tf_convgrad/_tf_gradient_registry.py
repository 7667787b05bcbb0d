"""The one module that touches TensorFlow's private gradient registry.

TensorFlow keeps the gradient function of each op type in
``tensorflow.python.framework.ops._gradient_registry``, a ``registry.Registry`` whose
``_registry`` dict maps an op type to ``{"type": function, "location": ...}``. Both the eager tape
(``backprop._gradient_function``) and graph differentiation (``ops.get_gradient_function``) look
functions up there, at the moment a gradient is built. TF has no public way to replace a
registered function (``tf.RegisterGradient`` refuses a second registration), so
:mod:`tf_convgrad.dropin` swaps the ``"type"`` value of an entry in place, through :func:`swap`.

This is the whole private surface: the registry object, its ``_registry`` dict and the
``"type"`` key; and, to keep custom ops out of XLA-compiled gradients, the ``_attrs`` of the
object that builds a ``tf.function``'s backward graph (:func:`building_for_xla`; TF's XLA-context
test itself is :func:`tf_convgrad._xla.in_xla_context`). :data:`PROBLEM` says, at import,
whether TF's registry still has the expected shape (checked against TF 2.21.0, which the package
pins); ``dropin.enable()`` refuses with that message instead of doing nothing when it does not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from . import _xla
from ._optable import OPS

# Op types whose TF gradient functions tf_convgrad can replace (see dropin.py): those whose
# gradients run the TF twin of one of our ops (the two depthwise twins among them).
OP_TYPES = (
    "Conv2D",
    "Conv2DBackpropInput",
    "DepthwiseConv2dNative",
    OPS["dbi"].tf_name,
    OPS["dbf"].tf_name,
)

_TYPE_KEY = "type"


def _find_registry():
    from tensorflow.python.framework import ops as tf_ops  # noqa: PLC0415 - private on purpose

    return getattr(tf_ops, "_gradient_registry", None)


def check(registry, op_types: Iterable[str] = OP_TYPES) -> str | None:
    """What is wrong with ``registry`` for our use, or None when it has the expected shape."""
    if registry is None:
        return "tensorflow.python.framework.ops._gradient_registry does not exist"
    table = getattr(registry, "_registry", None)
    if not isinstance(table, dict):
        return f"the gradient registry ({type(registry).__name__}) has no '_registry' dict"
    if not callable(getattr(registry, "lookup", None)):
        return "the gradient registry has no lookup() method"
    for op_type in op_types:
        entry = table.get(op_type)
        if not isinstance(entry, dict) or not callable(entry.get(_TYPE_KEY)):
            return f"the gradient registry has no function for {op_type!r} under {_TYPE_KEY!r}"
        try:
            looked_up = registry.lookup(op_type)
        except LookupError as error:
            return f"the gradient registry's lookup({op_type!r}) failed: {error}"
        if looked_up is not entry[_TYPE_KEY]:
            return f"the gradient registry's lookup({op_type!r}) does not read '_registry'"
    return None


_REGISTRY = _find_registry()
PROBLEM: str | None = check(_REGISTRY)


def lookup(op_type: str) -> Callable:
    """The gradient function TF uses now for ``op_type``."""
    return _REGISTRY._registry[op_type][_TYPE_KEY]


def swap(op_type: str, function: Callable) -> Callable:
    """Makes ``function`` the gradient of ``op_type``; returns the one it replaces."""
    entry = _REGISTRY._registry[op_type]
    previous = entry[_TYPE_KEY]
    entry[_TYPE_KEY] = function
    return previous


# Classes of TF's polymorphic_function/concrete_function.py that build backward functions; their
# ``_attrs`` hold the forward function's attributes, ``_XlaMustCompile`` among them.
_BACKWARD_BUILDERS = (
    "_DelayedRewriteGradientFunctions",
    "_TapeGradientFunctions",
    "_FirstOrderTapeGradientFunctions",
    "_HigherOrderTapeGradientFunctions",
)
_XLA_ATTR = "_XlaMustCompile"


def _truthy(value) -> bool:
    return bool(getattr(value, "b", value))


def building_for_xla() -> bool:
    """Whether the gradient being built now will be compiled by XLA.

    True inside a ``jit_compile=True`` function being traced (the default graph or one of its
    outer graphs is in an XLA context), and while TF builds the backward function of a
    ``jit_compile=True`` function differentiated from outside it (Keras 3 runs grouped
    convolutions in such a nested function): TF builds that graph lazily, outside any XLA
    context, from an object whose ``_attrs`` say ``_XlaMustCompile``.
    """
    import tensorflow as tf  # noqa: PLC0415

    if tf.executing_eagerly():
        return False
    if _xla.in_xla_context():
        return True
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__name__ in _BACKWARD_BUILDERS:
            attrs = getattr(owner, "_attrs", None)
            if hasattr(attrs, "get") and _truthy(attrs.get(_XLA_ATTR, False)):
                return True
        frame = frame.f_back
    return False
