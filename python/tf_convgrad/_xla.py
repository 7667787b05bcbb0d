"""The XLA guard: a clear error where ``jit_compile=True`` would meet a custom op.

XLA cannot compile a custom op. The wrappers (:mod:`tf_convgrad.ops`), the forward functions
(:mod:`tf_convgrad.nn`) and the registered gradients (:mod:`tf_convgrad.grads`) call
:func:`check_not_xla` while tracing, so a ``jit_compile=True`` function fails with an explanation
instead of XLA's bare "no registered kernel" message. A leaf module: it imports only TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

__all__ = ["check_not_xla", "in_xla_context"]

_XLA_HELP = (
    "{api} cannot be compiled with XLA (tf.function(jit_compile=True), or a Keras model "
    "compiled with jit_compile=True): it runs the custom op(s) {ops}, which have no XLA "
    "lowering. Call it from a tf.function without jit_compile (the default). tf_convgrad's "
    "Keras layers set supports_jit=False, so Model.compile(jit_compile='auto') already does "
    "this; do not pass jit_compile=True. See docs/USAGE.md, section 'XLA'."
)


def in_xla_context() -> bool:
    """True while tracing a function that XLA must compile (``jit_compile=True``)."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - TF internals moved; XLA then fails on its own
        return False
    if tf.executing_eagerly():
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def check_not_xla(api: str, op_types: Sequence[str]) -> None:
    """Raises a clear error if called while tracing a ``jit_compile=True`` function.

    Args:
        api: The public name of the calling function, e.g. ``"tf_convgrad.conv2d"``.
        op_types: The custom op types it would create.

    Raises:
        tf.errors.UnimplementedError: Inside an XLA compilation context.
    """
    if in_xla_context():
        raise tf.errors.UnimplementedError(
            None, None, _XLA_HELP.format(api=api, ops=", ".join(op_types))
        )
