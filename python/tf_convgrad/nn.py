"""Forward convolutions whose gradients run on tf_convgrad's ops.

* :func:`conv2d` (like ``tf.nn.conv2d``): its filter gradient is our ``Conv2DBackpropFilter``.
* :func:`depthwise_conv2d` (like ``tf.nn.depthwise_conv2d``): its filter and input gradients are
  our ``DepthwiseConv2dNativeBackpropFilter`` and ``DepthwiseConv2dNativeBackpropInput``.

Both accept every attribute the backprop ops accept, on CPU: ``NHWC`` and ``NCHW``, unequal
strides, dilations together with strides, explicit (asymmetric) padding, and for :func:`conv2d`
grouped filters (input depth = groups x filter in-depth). Forward values and the Conv2D input
gradient come from TF's own kernels wherever they apply: NCHW is transposed to NHWC around them,
a grouped convolution runs one TF Conv2D per group, a dilated input gradient uses TF's
Conv2DBackpropInput with the equivalent zero-spread filter. The pure-TF helpers below (pad,
stride-1 depthwise, subsample; per-tap slices and einsum) cover the rest: depthwise convolutions
with unequal strides or dilations, and grouping that is not known statically.

The gradients are ``tf.custom_gradient`` functions built from our ops and from three
differentiable building blocks that close under differentiation::

    y  = conv2d(x, w)                  dx = conv2d_backprop_input(w, dy),   dw = CBF(x, dy)
    dx = conv2d_backprop_input(w, dy)  dw = CBF(g, dy),                    d(dy) = conv2d(g, w)
    y  = depthwise_conv2d(x, f)        dx = DBI(f, dy),                    df = DBF(x, dy)

and the registered gradients of CBF, DBF and DBI (``grads.py``) use these blocks too, so
gradients of every order run on our ops for the filter gradients.

Under ``tf.function(jit_compile=True)`` (XLA) these functions raise
``tf.errors.UnimplementedError`` with an explanation: XLA cannot compile a custom op.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from . import _geometry, ops

__all__ = [
    "check_not_xla",
    "conv2d",
    "conv2d_backprop_input",
    "conv2d_forward",
    "depthwise_conv2d",
    "depthwise_conv2d_forward",
    "geometry_problem",
]

_FORMATS = ("NHWC", "NCHW")
_XLA_HELP = (
    "{api} cannot be compiled with XLA (tf.function(jit_compile=True), or a Keras model "
    "compiled with jit_compile=True): it runs the custom op(s) {ops}, which have no XLA "
    "lowering. Call it from a tf.function without jit_compile (the default). tf_convgrad's "
    "Keras layers set supports_jit=False, so Model.compile(jit_compile='auto') already does "
    "this; do not pass jit_compile=True. See docs/USAGE.md, section 'XLA'."
)


# --------------------------------------------------------------------------------------------
# XLA


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


# --------------------------------------------------------------------------------------------
# Attributes


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
        n, c, h, w = (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)
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


def normalize_attrs(
    api: str, strides: Any, padding: Any, data_format: str | None, dilations: Any
) -> dict[str, Any]:
    """The op attributes (``strides``, ``padding``, ``explicit_paddings``, ``data_format``,
    ``dilations``, 4-element lists in ``data_format`` order) for Python-level arguments.

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
    if data_format not in _FORMATS:
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
            n, c, h, w = (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)
            if pairs[n] != [0, 0] or pairs[c] != [0, 0]:
                raise ValueError(
                    f"{api}: explicit padding in the batch and depth dimensions must be 0, got "
                    f"{padding}"
                )
            pairs = [pairs[h], pairs[w]]
        if min(pairs[0] + pairs[1]) < 0:
            raise ValueError(f"{api}: explicit paddings must be >= 0, got {padding}")
        spatial = pairs[0] + pairs[1]
        explicit = [0, 0, *spatial, 0, 0] if data_format == "NHWC" else [0, 0, 0, 0, *spatial]
        padding = "EXPLICIT"
    return {
        "strides": _four(stride_hw, data_format),
        "padding": padding,
        "explicit_paddings": explicit,
        "data_format": data_format,
        "dilations": _four(dilation_hw, data_format),
    }


def _hw_index(data_format: str) -> tuple[int, int, int]:
    """Positions of (H, W, C) in a 4-D shape."""
    return (1, 2, 3) if data_format == "NHWC" else (2, 3, 1)


def _dims(shape: Any) -> list[int | None] | None:
    shape = tf.TensorShape(shape)
    return None if shape.rank is None else shape.as_list()


def geometry_problem(
    kind: str,
    input_shape: Any,
    filter_shape: Any,
    attrs: dict[str, Any],
    out_shape: Any = None,
) -> str | None:
    """Checks the statically known dimensions of a convolution; returns a problem or None.

    Args:
        kind: ``"conv"`` (filter ``[kh, kw, in_depth / groups, out_depth]``) or ``"depthwise"``
            (filter ``[kh, kw, in_depth, multiplier]``).
        input_shape: Input shape (``data_format`` order); unknown dimensions are skipped.
        filter_shape: Filter shape.
        attrs: Attributes as from :func:`normalize_attrs` (assumed valid).
        out_shape: If given, the output (``out_backprop``) shape it must match.

    Returns:
        A description of the first inconsistency found, or None.
    """
    x, f = _dims(input_shape), _dims(filter_shape)
    y = None if out_shape is None else _dims(out_shape)
    for name, dims in (("input", x), ("filter", f), ("output", y)):
        if dims is not None and len(dims) != 4:
            return f"{name} must be 4-dimensional, got shape {dims}"
    if x is None or f is None:
        return None
    data_format = attrs["data_format"]
    h, w, c = _hw_index(data_format)
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
    explicit = attrs["explicit_paddings"]
    for axis, k in ((h, f[0]), (w, f[1])):
        if x[axis] is None or k is None:
            continue
        pads = (explicit[2 * axis], explicit[2 * axis + 1]) if explicit else (0, 0)
        try:
            size, _, _ = _geometry.windowed_output_size(
                x[axis], k, attrs["dilations"][axis], attrs["strides"][axis], attrs["padding"],
                *pads,
            )  # fmt: skip
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


# --------------------------------------------------------------------------------------------
# Helpers that honour every attribute (pure TF ops: slices, einsum, pad)


def _same_pads(size, k, stride, dilation):
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride
    needed = tf.maximum(0, (out - 1) * stride + eff - size)
    return needed // 2, needed - needed // 2


def _nhwc_padded(x, fshape, strides, padding, explicit_paddings, data_format, dilations):
    """Moves x to NHWC and applies the op's padding explicitly.

    Returns (padded x, (stride_h, stride_w), (dilation_h, dilation_w)).
    """
    nchw = data_format == "NCHW"
    if nchw:
        x = tf.transpose(x, [0, 2, 3, 1])
    h, w = (2, 3) if nchw else (1, 2)
    shape = tf.shape(x)
    if padding == "EXPLICIT":
        pads = [
            (explicit_paddings[2 * h], explicit_paddings[2 * h + 1]),
            (explicit_paddings[2 * w], explicit_paddings[2 * w + 1]),
        ]
    elif padding == "SAME":
        pads = [
            _same_pads(shape[1], fshape[0], strides[h], dilations[h]),
            _same_pads(shape[2], fshape[1], strides[w], dilations[w]),
        ]
    else:
        pads = [(0, 0), (0, 0)]
    x = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
    return x, (strides[h], strides[w]), (dilations[h], dilations[w])


def depthwise_conv2d_forward(
    x, f, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward depthwise convolution with every attribute the backprop ops accept.

    Pads explicitly, runs a stride-1 (dilated) VALID depthwise convolution and subsamples
    by the strides, so unequal strides and dilation with stride work on every device. Its own
    gradient is TF's (stride 1, NHWC), used only where a caller differentiates it directly.
    """
    x, (sh, sw), (dh, dw) = _nhwc_padded(
        x, tf.shape(f), strides, padding, explicit_paddings, data_format, dilations
    )
    if dh == 1 and dw == 1 and sh == sw:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, sh, sw, 1], padding="VALID")
    else:
        y = tf.nn.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID", dilations=[dh, dw])
        y = y[:, ::sh, ::sw, :]
    if data_format == "NCHW":
        y = tf.transpose(y, [0, 3, 1, 2])
    return y


def conv2d_forward(
    x, w, strides, padding, explicit_paddings=(), data_format="NHWC", dilations=(1, 1, 1, 1)
):
    """Forward (grouped) Conv2D with every attribute Conv2DBackpropFilter accepts.

    One strided slice of the padded input per filter tap, contracted with that tap's
    weights group by group (groups = input depth / w.shape[2]). Needs a static filter
    height and width. Works for NCHW, dilations and groups on every device, where TF's
    CPU Conv2D kernels refuse them. Built from slices and einsum only, so its own gradient
    involves no convolution kernel at all.
    """
    if w.shape.rank != 4 or w.shape[0] is None or w.shape[1] is None:
        raise ValueError(
            "tf_convgrad: a grouped or dilated Conv2D needs a filter of static height and "
            f"width, got filter shape {w.shape}"
        )
    kh, kw = int(w.shape[0]), int(w.shape[1])
    x, (sh, sw), (dh, dw) = _nhwc_padded(
        x, (kh, kw), strides, padding, explicit_paddings, data_format, dilations
    )
    shape, wshape = tf.shape(x), tf.shape(w)
    cf, co = wshape[2], wshape[3]
    groups = shape[3] // cf
    oh = (shape[1] - ((kh - 1) * dh + 1)) // sh + 1
    ow = (shape[2] - ((kw - 1) * dw + 1)) // sw + 1
    y = tf.zeros(tf.stack([shape[0], oh, ow, groups, co // groups]), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            xs = x[
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
                :,
            ]
            xs = tf.reshape(xs, tf.stack([shape[0], oh, ow, groups, cf]))
            wt = tf.reshape(w[i, j], tf.stack([cf, groups, co // groups]))
            y += tf.einsum("bhwgc,cgo->bhwgo", xs, wt)
    y = tf.reshape(y, tf.stack([shape[0], oh, ow, co]))
    if data_format == "NCHW":
        y = tf.transpose(y, [0, 3, 1, 2])
    return y


def conv2d_backprop_input(input_sizes, w, dy, **attrs):
    """The adjoint of :func:`conv2d_forward` in its input: d(input) for output gradient dy."""
    x0 = tf.zeros(input_sizes, dtype=dy.dtype)
    with tf.GradientTape() as tape:
        tape.watch(x0)
        y = conv2d_forward(x0, w, **attrs)
    return tape.gradient(y, x0, output_gradients=dy)


# --------------------------------------------------------------------------------------------
# Differentiable building blocks (attrs already normalized and valid)


def _to_nhwc_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
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


def _nhwc(x):
    return tf.transpose(x, [0, 2, 3, 1])


def _nchw(x):
    return tf.transpose(x, [0, 3, 1, 2])


def _static_in_depth(shape: Any, data_format: str) -> int | None:
    dims = _dims(shape)
    if dims is None or len(dims) != 4:
        return None
    return dims[3 if data_format == "NHWC" else 1]


def _undilated(attrs: dict[str, Any]) -> bool:
    return all(d == 1 for d in attrs["dilations"])


def _static_groups(in_depth: int | None, w) -> int | None:
    """Groups (input depth / filter in-depth) when both are static, else None."""
    if in_depth is None or w.shape.rank != 4 or not w.shape[2] or in_depth % w.shape[2]:
        return None
    return in_depth // w.shape[2] or None


def _dilate_filter(w, dilations: tuple[int, int]):
    """The undilated filter equivalent to ``w`` with these (row, column) dilations: zeros
    between the taps, ``(k - 1) * d + 1`` taps per dimension."""
    for axis, d in enumerate(dilations):
        if d == 1:
            continue
        pads = [[0, 0]] * 5
        pads[axis + 1] = [0, d - 1]
        spread = tf.pad(tf.expand_dims(w, axis + 1), pads)  # [.., k, d, ..]
        shape = tf.shape(w)
        merged = tf.concat([shape[:axis], [-1], shape[axis + 1 :]], axis=0)
        w = tf.reshape(spread, merged)
        w = w[: -(d - 1)] if axis == 0 else w[:, : -(d - 1)]
    return w


def _conv2d_value(x, w, attrs):
    """Forward Conv2D with TF's kernel (which handles dilations on CPU), per group when
    grouped; the tap helper when the grouping is not static."""
    nhwc = _to_nhwc_attrs(attrs)
    if attrs["data_format"] == "NCHW":
        x = _nhwc(x)
    groups = _static_groups(x.shape[3], w)
    if groups is None:
        y = conv2d_forward(x, w, **nhwc)
    elif groups == 1:
        y = tf.raw_ops.Conv2D(input=x, filter=w, **nhwc)
    else:
        ys = [
            tf.raw_ops.Conv2D(input=xg, filter=wg, **nhwc)
            for xg, wg in zip(tf.split(x, groups, 3), tf.split(w, groups, 3), strict=True)
        ]
        y = tf.concat(ys, axis=3)
    return _nchw(y) if attrs["data_format"] == "NCHW" else y


def _conv2d_backprop_input_value(sizes, w, dy, attrs, input_shape):
    """Conv2DBackpropInput with TF's kernel: dilations through an equivalent zero-spread filter
    (TF's CPU kernel refuses dilations), per group when grouped; the adjoint of the tap helper
    when the grouping is not static."""
    in_depth = _static_in_depth(input_shape, attrs["data_format"])
    groups = _static_groups(in_depth, w)
    if groups is None:
        return conv2d_backprop_input(sizes, w, dy, **attrs)
    nhwc = dict(_to_nhwc_attrs(attrs))
    if attrs["data_format"] == "NCHW":
        sizes, dy = tf.gather(sizes, [0, 2, 3, 1]), _nhwc(dy)
    w = _dilate_filter(w, (nhwc["dilations"][1], nhwc["dilations"][2]))
    nhwc["dilations"] = [1, 1, 1, 1]
    if groups == 1:
        dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=sizes, filter=w, out_backprop=dy, **nhwc)
    else:
        group_sizes = tf.tensor_scatter_nd_update(sizes, [[3]], [sizes[3] // groups])
        dxs = [
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=group_sizes, filter=wg, out_backprop=dyg, **nhwc
            )
            for wg, dyg in zip(tf.split(w, groups, 3), tf.split(dy, groups, 3), strict=True)
        ]
        dx = tf.concat(dxs, axis=3)
    return _nchw(dx) if attrs["data_format"] == "NCHW" else dx


def _depthwise_value(x, f, attrs):
    """Forward depthwise convolution: TF's kernel for equal strides without dilation, else the
    pad + stride-1 + subsample helper."""
    s = attrs["strides"]
    h, w, _ = _hw_index(attrs["data_format"])
    if s[h] != s[w] or not _undilated(attrs):
        return depthwise_conv2d_forward(x, f, **attrs)
    if attrs["data_format"] == "NCHW":
        return _nchw(
            tf.raw_ops.DepthwiseConv2dNative(input=_nhwc(x), filter=f, **_to_nhwc_attrs(attrs))
        )
    return tf.raw_ops.DepthwiseConv2dNative(input=x, filter=f, **attrs)


def conv2d_block(x, w, attrs):
    """Differentiable Conv2D; its filter gradient is our Conv2DBackpropFilter."""

    @tf.custom_gradient
    def _conv2d(x, w):
        def grad(dy):
            dx = conv2d_backprop_input_block(tf.shape(x), w, dy, attrs, x.shape)
            dw = ops.conv2d_backprop_filter(x, tf.shape(w), dy, **attrs)
            return dx, dw

        return _conv2d_value(x, w, attrs), grad

    return _conv2d(x, w)


def conv2d_backprop_input_block(sizes, w, dy, attrs, input_shape=None):
    """Differentiable Conv2DBackpropInput (bilinear in ``w`` and ``dy``).

    ``input_shape``: the static input shape when known (it decides whether TF's kernel applies).
    """
    if input_shape is None:
        input_shape = tf.TensorShape(tf.get_static_value(sizes)) if _static(sizes) else None

    @tf.custom_gradient
    def _backprop_input(w, dy):
        def grad(g):
            dw = ops.conv2d_backprop_filter(g, tf.shape(w), dy, **attrs)
            ddy = conv2d_block(g, w, attrs)
            return dw, ddy

        dx = _conv2d_backprop_input_value(sizes, w, dy, attrs, input_shape)
        if input_shape is not None and not tf.executing_eagerly():
            dx.set_shape(input_shape)
        return dx, grad

    return _backprop_input(w, dy)


def _static(t) -> bool:
    try:
        return tf.get_static_value(t) is not None
    except (TypeError, ValueError):
        return False


def depthwise_conv2d_block(x, f, attrs):
    """Differentiable depthwise convolution; its gradients are our DBI and DBF."""

    @tf.custom_gradient
    def _depthwise(x, f):
        def grad(dy):
            dx = ops.depthwise_conv2d_native_backprop_input(tf.shape(x), f, dy, **attrs)
            df = ops.depthwise_conv2d_native_backprop_filter(x, tf.shape(f), dy, **attrs)
            return dx, df

        return _depthwise_value(x, f, attrs), grad

    return _depthwise(x, f)


# --------------------------------------------------------------------------------------------
# Public forward functions


def _prepare(api, input, filters, strides, padding, data_format, dilations, kind):
    x = tf.convert_to_tensor(input)
    w = tf.convert_to_tensor(filters, dtype_hint=x.dtype)
    if w.dtype != x.dtype:
        raise ValueError(f"{api}: input is {x.dtype.name} but the filter is {w.dtype.name}")
    attrs = normalize_attrs(api, strides, padding, data_format, dilations)
    problem = geometry_problem(kind, x.shape, w.shape, attrs)
    if problem:
        raise ValueError(f"{api}: {problem}")
    return x, w, attrs


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
    api = "tf_convgrad.conv2d"
    with tf.name_scope(name or "conv2d"):
        x, w, attrs = _prepare(
            api, input, filters, strides, padding, data_format, dilations, "conv"
        )
        check_not_xla(api, [ops.CONV2D_BACKPROP_FILTER])
        return conv2d_block(x, w, attrs)


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
    api = "tf_convgrad.depthwise_conv2d"
    with tf.name_scope(name or "depthwise_conv2d"):
        x, f, attrs = _prepare(
            api, input, filter, strides, padding, data_format, dilations, "depthwise"
        )
        check_not_xla(api, [ops.DEPTHWISE_BACKPROP_INPUT, ops.DEPTHWISE_BACKPROP_FILTER])
        return depthwise_conv2d_block(x, f, attrs)
