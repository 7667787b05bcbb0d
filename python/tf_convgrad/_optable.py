"""The op table: every name each of the three ops goes by, in one place.

No TensorFlow and no NumPy (the GPU harness loads it without TF). The short key (``"cbf"``,
``"dbf"``, ``"dbi"``) is the one naming convention for ops in code, file names and test ids;
``label`` (``"CBF"``...) is how reports print it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BY_TF_NAME", "KEYS", "OPS", "Op", "op"]


class Op(NamedTuple):
    """One of the three ops.

    Attributes:
        key: Short name in code and test ids: ``"cbf"``, ``"dbf"`` or ``"dbi"``.
        label: Short name in reports: ``"CBF"``, ``"DBF"`` or ``"DBI"``.
        tf_name: TensorFlow's op (``tf.raw_ops.<tf_name>``), whose arguments ours take.
        registered: Our op's registered name (``ConvGrad>...``).
        function: The wrapper in ``tf_convgrad`` (and in :mod:`tf_convgrad.tools.reference`).
        sizes: The int32 sizes argument: ``"filter_sizes"`` or ``"input_sizes"``.
        operand: The tensor argument besides ``out_backprop``: ``"input"`` or ``"filter"``.
        depthwise: True for the two depthwise ops.
    """

    key: str
    label: str
    tf_name: str
    registered: str
    function: str
    sizes: str
    operand: str
    depthwise: bool


OPS: dict[str, Op] = {
    o.key: o
    for o in (
        Op("cbf", "CBF", "Conv2DBackpropFilter", "ConvGrad>Conv2DBackpropFilter",
           "conv2d_backprop_filter", "filter_sizes", "input", False),
        Op("dbf", "DBF", "DepthwiseConv2dNativeBackpropFilter",
           "ConvGrad>DepthwiseConv2dNativeBackpropFilter",
           "depthwise_conv2d_native_backprop_filter", "filter_sizes", "input", True),
        Op("dbi", "DBI", "DepthwiseConv2dNativeBackpropInput",
           "ConvGrad>DepthwiseConv2dNativeBackpropInput",
           "depthwise_conv2d_native_backprop_input", "input_sizes", "filter", True),
    )
}  # fmt: skip

#: The keys, in table order.
KEYS = tuple(OPS)

#: The same rows, by TensorFlow's op name.
BY_TF_NAME: dict[str, Op] = {o.tf_name: o for o in OPS.values()}


def op(name: str) -> Op:
    """The row for any of an op's names (key, label, TF name or registered name), any case.

    Raises:
        ValueError: If no op goes by ``name``.
    """
    lowered = str(name).lower()
    for o in OPS.values():
        if lowered in (o.key, o.tf_name.lower(), o.registered.lower()):
            return o
    raise ValueError(
        f"unknown op {name!r}; expected one of "
        + ", ".join(f"{o.label}/{o.tf_name}" for o in OPS.values())
    )
