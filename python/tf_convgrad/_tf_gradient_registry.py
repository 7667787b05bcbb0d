"""The one module that touches TensorFlow's private gradient registry.

TensorFlow keeps the gradient function of each op type in
``tensorflow.python.framework.ops._gradient_registry``, a ``registry.Registry`` whose
``_registry`` dict maps an op type to ``{"type": function, "location": ...}``. Both the eager tape
(``backprop._gradient_function``) and graph differentiation (``ops.get_gradient_function``) look
functions up there, at the moment a gradient is built. TF has no public way to replace a
registered function (``tf.RegisterGradient`` refuses a second registration), so
:mod:`tf_convgrad.dropin` swaps the ``"type"`` value of an entry in place, through :func:`swap`.

This is the whole private surface: the registry object, its ``_registry`` dict and the
``"type"`` key. :data:`PROBLEM` says, at import, whether TF still has that shape (it is checked
against TF 2.21.0, which the package pins); ``dropin.enable()`` refuses with that message instead
of doing nothing when it does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# Op types whose TF gradient functions tf_convgrad can replace (see dropin.py).
OP_TYPES = (
    "Conv2D",
    "Conv2DBackpropInput",
    "DepthwiseConv2dNative",
    "DepthwiseConv2dNativeBackpropInput",
    "DepthwiseConv2dNativeBackpropFilter",
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
