"""The five attributes the ops share, in Python: read, normalised and checked in one place.

``strides``, ``padding``, ``explicit_paddings``, ``data_format`` and ``dilations``, as 4-element
lists in ``data_format`` order (the ops' own spelling), travel through the package as one dict:

* :func:`normalize` makes it from the spellings the public functions accept (ints, pairs, 2 or 4
  explicit padding pairs), with messages that name the public function;
* :func:`from_op` reads it from a graph or eager op (TF stores strings as bytes);
* :func:`problem` checks it, and the statically known shapes, before a gradient or a forward
  function builds anything. TF's rules themselves (attribute validity, output size) are stated
  once, in :mod:`tf_convgrad._geometry`, in plain integers; this module applies them to partially
  known TensorFlow shapes.
"""

from __future__ import annotations

import numbers
from typing import Any

import tensorflow as tf

from . import _geometry

__all__ = ["from_op", "get_attr", "hw_index", "normalize", "problem", "static_dims", "to_nhwc"]

Attrs = dict[str, Any]


# --------------------------------------------------------------------------------------------
# The public functions' spellings


def _positions(data_format: str) -> tuple[int, int, int, int]:
    """Positions of (N, C, H, W) in a 4-element list in ``data_format`` order."""
    return (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)


def _ints(value: Any) -> list[int]:
    if isinstance(value, numbers.Integral):
        return [int(value)]
    return [int(v) for v in value]


def _spatial(api: str, name: str, value: Any, data_format: str) -> tuple[int, int]:
    """(H, W) from an int or a list of 1, 2 or 4 values (4 in ``data_format`` order)."""
    if value is None:
        return 1, 1
    values = _ints(value)
    if len(values) == 1:
        pair = (values[0], values[0])
    elif len(values) == 2:
        pair = (values[0], values[1])
    elif len(values) == 4:
        n, c, h, w = _positions(data_format)
        if values[n] != 1 or values[c] != 1:
            raise ValueError(
                f"{api}: {name} in the batch and depth dimensions must be 1, got {values} "
                f"({data_format})"
            )
        pair = (values[h], values[w])
    else:
        raise ValueError(f"{api}: {name} must be an int or a list of 1, 2 or 4 ints, got {value}")
    if min(pair) < 1:
        what = "strides" if name == "strides" else "dilation rates"
        raise ValueError(f"{api}: {what} must be >= 1, got {name}={value}")
    return pair


def _four(pair: tuple[int, int], data_format: str) -> list[int]:
    return [1, pair[0], pair[1], 1] if data_format == "NHWC" else [1, 1, pair[0], pair[1]]


def _explicit(api: str, padding: Any, data_format: str) -> list[int]:
    """The 8 ``explicit_paddings`` for 2 (height, width) or 4 ``[before, after]`` pairs."""
    try:
        pairs = [_ints(pair) for pair in padding]
    except TypeError:
        raise ValueError(f"{api}: cannot read padding {padding!r}") from None
    if any(len(pair) != 2 for pair in pairs) or len(pairs) not in (2, 4):
        raise ValueError(
            f"{api}: explicit padding must be 2 (height, width) or 4 (all dimensions) "
            f"[before, after] pairs, got {padding}"
        )
    if len(pairs) == 4:
        n, c, h, w = _positions(data_format)
        if pairs[n] != [0, 0] or pairs[c] != [0, 0]:
            raise ValueError(
                f"{api}: explicit padding in the batch and depth dimensions must be 0, got "
                f"{padding}"
            )
        pairs = [pairs[h], pairs[w]]
    if min(pairs[0] + pairs[1]) < 0:
        raise ValueError(f"{api}: explicit paddings must be >= 0, got {padding}")
    spatial = pairs[0] + pairs[1]
    return [0, 0, *spatial, 0, 0] if data_format == "NHWC" else [0, 0, 0, 0, *spatial]


def normalize(
    api: str, strides: Any, padding: Any, data_format: str | None, dilations: Any
) -> Attrs:
    """The op attributes for the arguments of a public function.

    Args:
        api: Public function name for error messages.
        strides: An int or a list of 1, 2 or 4 ints.
        padding: ``"SAME"`` or ``"VALID"`` (any case), or explicit padding: 4 ``[before,
            after]`` pairs in ``data_format`` order (zero for batch and depth) or 2 pairs for
            (height, width).
        data_format: ``"NHWC"`` (default) or ``"NCHW"``.
        dilations: None, an int or a list of 1, 2 or 4 ints.

    Returns:
        The attributes, valid for all three backprop ops.

    Raises:
        ValueError: On an invalid value.
    """
    data_format = data_format or "NHWC"
    if data_format not in _geometry.FORMATS:
        raise ValueError(f"{api}: data_format must be 'NHWC' or 'NCHW', got {data_format!r}")
    stride_hw = _spatial(api, "strides", strides, data_format)
    dilation_hw = _spatial(api, "dilations", dilations, data_format)
    explicit: list[int] = []
    if isinstance(padding, str | bytes):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(
                f"{api}: padding must be 'SAME', 'VALID' or a list of [before, after] pairs, "
                f"got {padding!r}"
            )
        padding = padding.upper()
    else:
        explicit = _explicit(api, padding, data_format)
        padding = "EXPLICIT"
    return {
        "strides": _four(stride_hw, data_format),
        "padding": padding,
        "explicit_paddings": explicit,
        "data_format": data_format,
        "dilations": _four(dilation_hw, data_format),
    }


# --------------------------------------------------------------------------------------------
# Ops' attributes, as TF stores them (bytes for strings, possibly None on the eager path)


def _text(value: Any, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def get_attr(op, name: str, default: Any) -> Any:
    """Attribute ``name`` of ``op``, or ``default`` where ``op`` has none or leaves it unset."""
    try:
        value = op.get_attr(name)
    except (KeyError, ValueError):
        return default
    return default if value is None else value


def from_op(op) -> Attrs:
    """The five attributes of ``op`` (ours or one of TF's convolutions), with TF's defaults for
    any it does not have or leaves unset."""
    return {
        "strides": [int(v) for v in get_attr(op, "strides", [1, 1, 1, 1])],
        "padding": _text(get_attr(op, "padding", None), "VALID"),
        "explicit_paddings": [int(v) for v in get_attr(op, "explicit_paddings", [])],
        "data_format": _text(get_attr(op, "data_format", None), "NHWC"),
        "dilations": [int(v) for v in get_attr(op, "dilations", [1, 1, 1, 1])],
    }


def to_nhwc(attrs: Attrs) -> Attrs:
    """The same attributes for the same convolution on NHWC tensors."""
    if attrs["data_format"] == "NHWC":
        return attrs
    s, d, e = attrs["strides"], attrs["dilations"], attrs["explicit_paddings"]
    return {
        "strides": [1, s[2], s[3], 1],
        "padding": attrs["padding"],
        "explicit_paddings": [0, 0, *e[4:8], 0, 0] if e else [],
        "data_format": "NHWC",
        "dilations": [1, d[2], d[3], 1],
    }


# --------------------------------------------------------------------------------------------
# Checks against partially known shapes


def hw_index(data_format: str) -> tuple[int, int, int]:
    """Positions of (H, W, C) in a 4-D shape."""
    return (1, 2, 3) if data_format == "NHWC" else (2, 3, 1)


def static_dims(shape: Any) -> list[int | None] | None:
    """The statically known dimensions (None where unknown), or None for an unknown rank."""
    shape = tf.TensorShape(shape)
    return None if shape.rank is None else shape.as_list()


def problem(
    kind: str,
    input_shape: Any,
    filter_shape: Any,
    attrs: Attrs,
    out_shape: Any = None,
) -> str | None:
    """Checks the attributes and the statically known dimensions of a convolution.

    Args:
        kind: ``"conv"`` (filter ``[kh, kw, in_depth / groups, out_depth]``) or ``"depthwise"``
            (filter ``[kh, kw, in_depth, multiplier]``).
        input_shape: Input shape (``data_format`` order); unknown dimensions are skipped.
        filter_shape: Filter shape.
        attrs: The five attributes, as from :func:`normalize` or :func:`from_op`.
        out_shape: If given, the output (``out_backprop``) shape it must match.

    Returns:
        A description of the first inconsistency found (TF's message for an invalid attribute),
        or None.
    """
    try:
        strides, dilations, pads_h, pads_w = _geometry.check_attrs(**attrs)
    except ValueError as error:
        return str(error)
    x, f = static_dims(input_shape), static_dims(filter_shape)
    y = None if out_shape is None else static_dims(out_shape)
    for name, dims in (("input", x), ("filter", f), ("output", y)):
        if dims is not None and len(dims) != 4:
            return f"{name} must be 4-dimensional, got shape {dims}"
    if x is None or f is None:
        return None
    h, w, c = hw_index(attrs["data_format"])
    in_depth, out_depth = x[c], None
    if kind == "conv":
        if f[2] is not None and in_depth is not None:
            if f[2] <= 0 or in_depth % f[2] != 0:
                return (
                    f"input depth {in_depth} must be a positive multiple of the filter's input "
                    f"depth {f[2]}"
                )
            groups = in_depth // f[2]
            if f[3] is not None and groups and f[3] % groups != 0:
                return f"output depth {f[3]} must be divisible by the {groups} groups"
        out_depth = f[3]
    else:
        if f[2] is not None and in_depth is not None and f[2] != in_depth:
            return f"input depth {in_depth} differs from the filter's input depth {f[2]}"
        if f[2] is not None and f[3] is not None:
            out_depth = f[2] * f[3]
    for axis, k, stride, dilation, pads in (
        (h, f[0], strides[0], dilations[0], pads_h),
        (w, f[1], strides[1], dilations[1], pads_w),
    ):
        if x[axis] is None or k is None:
            continue
        try:
            size, _, _ = _geometry.windowed_output_size(
                x[axis], k, dilation, stride, attrs["padding"], *pads
            )
        except ValueError as error:
            return str(error)
        if y is not None and y[axis] is not None and y[axis] != size:
            return (
                f"output size {y[axis]} in dimension {axis} does not match the computed "
                f"{size} (input {x[axis]}, filter {k})"
            )
    if y is not None:
        if x[0] is not None and y[0] is not None and x[0] != y[0]:
            return f"input batch {x[0]} differs from the output batch {y[0]}"
        if out_depth is not None and y[c] is not None and y[c] != out_depth:
            return f"output depth {y[c]} differs from the expected {out_depth}"
    return None
