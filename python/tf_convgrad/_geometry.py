"""The geometry of a 2-D convolution in plain Python integers: one statement of TF's rules.

Attribute validation (strides, dilations, padding, explicit paddings, data format) and the output
size and padding of each spatial dimension (TF's ``GetWindowedOutputSizeVerbose``), with TF's
messages. No TensorFlow and no NumPy: the float64 reference (:mod:`tf_convgrad.tools.reference`),
the runtime's attribute checks and forward helpers (:mod:`tf_convgrad._attrs`,
:mod:`tf_convgrad._forward`) and the test tools all take their geometry from here.
The C++ kernels state the same rules once more, in ``tf_ops/cc/kernels/conv_backprop_common.cc``;
the test suite checks the two against each other (docs/SEMANTICS.md, "Output size and padding").

Invalid configurations raise ``ValueError`` (TensorFlow would raise ``InvalidArgumentError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "FORMATS",
    "PADDINGS",
    "ConvGeometry",
    "check_attrs",
    "check_format",
    "conv_geometry",
    "four_sizes",
    "from_nhwc_shape",
    "out_backprop_shape",
    "to_nhwc_shape",
    "windowed_output_size",
]

PADDINGS = ("SAME", "VALID", "EXPLICIT")
FORMATS = ("NHWC", "NCHW")


def _trunc_div(numerator: int, denominator: int) -> int:
    """C++ integer division (truncates toward zero), as TF's int64 arithmetic does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def windowed_output_size(
    in_size: int,
    filter_size: int,
    dilation: int,
    stride: int,
    padding: str,
    pad_before: int = 0,
    pad_after: int = 0,
) -> tuple[int, int, int]:
    """Output size and padding of one spatial dimension (TF's ``GetWindowedOutputSizeVerbose``).

    Args:
        in_size: Input size along the dimension.
        filter_size: Filter size along the dimension.
        dilation: Dilation rate (``>= 1``).
        stride: Stride (``> 0``).
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        pad_before: Leading pad, used only for ``"EXPLICIT"``.
        pad_after: Trailing pad, used only for ``"EXPLICIT"``.

    Returns:
        ``(out_size, pad_before, pad_after)``. For SAME the odd extra pad goes to the end.

    Raises:
        ValueError: If the stride or dilation is out of range, the padding is unknown, or the
            output size would be negative.
    """
    if stride <= 0:
        raise ValueError(f"Stride must be > 0, but got {stride}")
    if dilation < 1:
        raise ValueError(f"Dilation rate must be >= 1, but got {dilation}")
    # A filter of 0 taps spans 0 positions, whatever the dilation (as in the kernels'
    # conv_backprop_common.cc; TF's (0 - 1) * dilation + 1 would be negative).
    effective = (filter_size - 1) * dilation + 1 if filter_size > 0 else 0
    if padding == "VALID":
        out = _trunc_div(in_size - effective + stride, stride)
        pad_before = pad_after = 0
    elif padding == "EXPLICIT":
        out = _trunc_div(in_size + pad_before + pad_after - effective + stride, stride)
    elif padding == "SAME":
        out = _trunc_div(in_size + stride - 1, stride)
        pad_needed = max(0, (out - 1) * stride + effective - in_size)
        pad_before = pad_needed // 2
        pad_after = pad_needed - pad_before
    else:
        raise ValueError(f"Unknown padding {padding!r}; expected one of {PADDINGS}")
    if out < 0:
        raise ValueError(
            f"Computed output size would be negative: {out} [input_size: {in_size}, "
            f"effective_filter_size: {effective}, stride: {stride}]"
        )
    return out, pad_before, pad_after


@dataclass(frozen=True)
class ConvGeometry:
    """Validated spatial geometry of a 2-D convolution, in NHWC terms.

    Attributes:
        out_h: Output height.
        out_w: Output width.
        stride_h: Row stride.
        stride_w: Column stride.
        dilation_h: Row dilation.
        dilation_w: Column dilation.
        pad_top: Rows of zeros before the input.
        pad_bottom: Rows of zeros after the input.
        pad_left: Columns of zeros before the input.
        pad_right: Columns of zeros after the input.
    """

    out_h: int
    out_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int


def check_format(data_format: str) -> None:
    if data_format not in FORMATS:
        raise ValueError(f"Unknown data_format {data_format!r}; expected one of {FORMATS}")


def _spatial_pair(values: Sequence[int], name: str, data_format: str) -> tuple[int, int]:
    """Validates a 4-element strides/dilations list and returns its (H, W) entries."""
    values = [int(v) for v in values]
    if len(values) != 4:
        raise ValueError(f"Sliding window {name} field must specify 4 dimensions")
    n_idx, c_idx, h_idx, w_idx = (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)
    if values[n_idx] != 1 or values[c_idx] != 1:
        raise ValueError(
            f"Current implementation does not yet support {name} in the batch and depth dimensions."
        )
    return values[h_idx], values[w_idx]


def check_attrs(
    strides: Sequence[int],
    padding: str,
    explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC",
    dilations: Sequence[int] = (1, 1, 1, 1),
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Validates the five attributes the ops share and returns their spatial parts.

    Args:
        strides: 4 strides in ``data_format`` order.
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        explicit_paddings: 8 pads (a before/after pair per dimension, ``data_format`` order) for
            EXPLICIT, empty otherwise.
        data_format: ``"NHWC"`` or ``"NCHW"``.
        dilations: 4 dilation rates in ``data_format`` order.

    Returns:
        ``((stride_h, stride_w), (dilation_h, dilation_w), (pad_top, pad_bottom), (pad_left,
        pad_right))``; the pads are zero unless ``padding`` is ``"EXPLICIT"``.

    Raises:
        ValueError: On any invalid attribute, with TF's message.
    """
    check_format(data_format)
    if padding not in PADDINGS:
        raise ValueError(f"Unknown padding {padding!r}; expected one of {PADDINGS}")
    stride_h, stride_w = _spatial_pair(strides, "strides", data_format)
    dilation_h, dilation_w = _spatial_pair(dilations, "dilations", data_format)
    if stride_h <= 0 or stride_w <= 0:
        raise ValueError("Row and column strides should be larger than 0.")
    if dilation_h < 1 or dilation_w < 1:
        raise ValueError("Dilated rates should be larger than 0.")

    pads = [int(p) for p in explicit_paddings]
    if padding == "EXPLICIT":
        if len(pads) != 8:
            raise ValueError(
                f"explicit_paddings attribute must contain 8 values, but got: {len(pads)}"
            )
        if any(p < 0 for p in pads):
            raise ValueError("All elements of explicit_paddings must be nonnegative")
        n_idx, c_idx, h_idx, w_idx = (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)
        if pads[2 * n_idx] or pads[2 * n_idx + 1] or pads[2 * c_idx] or pads[2 * c_idx + 1]:
            raise ValueError(
                "Nonzero explicit padding in the batch or depth dimensions is not supported"
            )
        pads_h = (pads[2 * h_idx], pads[2 * h_idx + 1])
        pads_w = (pads[2 * w_idx], pads[2 * w_idx + 1])
    else:
        if pads:
            raise ValueError(
                "explicit_paddings attribute must be empty if the padding attribute is not EXPLICIT"
            )
        pads_h = pads_w = (0, 0)
    return (stride_h, stride_w), (dilation_h, dilation_w), pads_h, pads_w


def conv_geometry(
    in_hw: tuple[int, int],
    filter_hw: tuple[int, int],
    strides: Sequence[int],
    padding: str,
    explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC",
    dilations: Sequence[int] = (1, 1, 1, 1),
) -> ConvGeometry:
    """Validates the attributes and computes the output size and padding of both dimensions.

    Args:
        in_hw: Input ``(height, width)``.
        filter_hw: Filter ``(height, width)``.
        strides, padding, explicit_paddings, data_format, dilations: As for
            :func:`check_attrs`.

    Returns:
        The :class:`ConvGeometry`.

    Raises:
        ValueError: On any invalid attribute or a negative output size.
    """
    (stride_h, stride_w), (dilation_h, dilation_w), pads_h, pads_w = check_attrs(
        strides, padding, explicit_paddings, data_format, dilations
    )
    out_h, pad_top, pad_bottom = windowed_output_size(
        in_hw[0], filter_hw[0], dilation_h, stride_h, padding, *pads_h
    )
    out_w, pad_left, pad_right = windowed_output_size(
        in_hw[1], filter_hw[1], dilation_w, stride_w, padding, *pads_w
    )
    return ConvGeometry(
        out_h,
        out_w,
        stride_h,
        stride_w,
        dilation_h,
        dilation_w,
        pad_top,
        pad_bottom,
        pad_left,
        pad_right,
    )


def to_nhwc_shape(shape: Sequence[int], data_format: str) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"expected a 4-D shape, got {list(shape)}")
    if data_format == "NCHW":
        return shape[0], shape[2], shape[3], shape[1]
    return shape  # type: ignore[return-value]


def from_nhwc_shape(shape: Sequence[int], data_format: str) -> tuple[int, ...]:
    n, h, w, c = shape
    return (n, c, h, w) if data_format == "NCHW" else (n, h, w, c)


def _flat(values) -> list:
    """The elements of a list, tuple or array-like (anything with ``tolist``), flattened."""
    values = values.tolist() if hasattr(values, "tolist") else values
    if isinstance(values, (list, tuple)):
        return [v for item in values for v in _flat(item)]
    return [values]


def four_sizes(sizes: Sequence[int], name: str) -> tuple[int, int, int, int]:
    sizes = tuple(int(s) for s in _flat(sizes))
    if len(sizes) != 4:
        raise ValueError(f"{name} must have 4 elements, got {list(sizes)}")
    if any(s < 0 for s in sizes):
        raise ValueError(f"{name} must be non-negative, got {list(sizes)}")
    return sizes  # type: ignore[return-value]


def out_backprop_shape(
    op: str,
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    strides: Sequence[int],
    padding: str,
    explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC",
    dilations: Sequence[int] = (1, 1, 1, 1),
) -> tuple[int, int, int, int]:
    """Shape that ``out_backprop`` must have (in ``data_format``) for the given op and sizes.

    Args:
        op: ``"Conv2DBackpropFilter"``, ``"DepthwiseConv2dNativeBackpropFilter"`` or
            ``"DepthwiseConv2dNativeBackpropInput"``.
        input_shape: Input shape in ``data_format``.
        filter_shape: Filter shape, HWIO (``[fh, fw, in, out_or_multiplier]``).
        strides: As for the ops.
        padding: As for the ops.
        explicit_paddings: As for the ops.
        data_format: As for the ops.
        dilations: As for the ops.

    Returns:
        The ``out_backprop`` shape, in ``data_format`` order.

    Raises:
        ValueError: On an invalid configuration.
    """
    check_format(data_format)
    n, h, w, c = to_nhwc_shape(input_shape, data_format)
    fh, fw, f_in, f_out = four_sizes(filter_shape, "filter shape")
    geometry = conv_geometry(
        (h, w), (fh, fw), strides, padding, explicit_paddings, data_format, dilations
    )
    if op == "Conv2DBackpropFilter":
        out_depth = f_out
    elif op in ("DepthwiseConv2dNativeBackpropFilter", "DepthwiseConv2dNativeBackpropInput"):
        out_depth = c * f_out
    else:
        raise ValueError(f"Unknown op {op!r}")
    return from_nhwc_shape((n, geometry.out_h, geometry.out_w, out_depth), data_format)
