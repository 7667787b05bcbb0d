"""Float64 NumPy reference implementations of the three convolution gradients.

This module never imports TensorFlow: it is the independent oracle that the op library, the TF
kernels and the tests are all measured against. The formulas are those of ``docs/SEMANTICS.md``:
the forward convolution reads input row ``ho * s_h - pad_top + i * d_h`` and column
``wo * s_w - pad_left + j * d_w``, positions outside the input contribute zero, and

* ``dW = wgrad(dy, x)`` (``Conv2DBackpropFilter``, grouped when the input depth is a multiple
  ``G`` of ``filter_sizes[2]``)::

      dW[i, j, ci, co] = sum_{b, ho, wo} x[b, ho*s_h - pt + i*d_h, wo*s_w - pl + j*d_w,
                                           g*Cin_f + ci] * dy[b, ho, wo, co],
      g = co // (Cout / G)

* ``dW = depthwise_wgrad(dy, x)`` (``DepthwiseConv2dNativeBackpropFilter``)::

      dW[i, j, c, m] = sum_{b, ho, wo} x[b, ho*s_h - pt + i*d_h, wo*s_w - pl + j*d_w, c]
                                       * dy[b, ho, wo, c*M + m]

* ``dx = depthwise_dgrad(dy, W)`` (``DepthwiseConv2dNativeBackpropInput``)::

      dx[b, h, w, c] = sum_{i, j, m, ho, wo : h = ho*s_h - pt + i*d_h, w = wo*s_w - pl + j*d_w}
                       W[i, j, c, m] * dy[b, ho, wo, c*M + m]

Unlike TensorFlow's CPU kernels, the reference honours dilations for all three ops, accepts NCHW,
unequal strides and grouped filters, and returns zeros for empty problems. Every function is
vectorised: the input (or the input gradient) is padded once and each filter tap ``(i, j)`` is a
strided slice contracted with ``einsum`` over the remaining axes.

Invalid configurations raise ``ValueError`` (TensorFlow would raise ``InvalidArgumentError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ConvGeometry",
    "conv2d_backprop_filter",
    "conv_geometry",
    "depthwise_conv2d_native_backprop_filter",
    "depthwise_conv2d_native_backprop_input",
    "out_backprop_shape",
    "windowed_output_size",
]

_PADDINGS = ("SAME", "VALID", "EXPLICIT")
_FORMATS = ("NHWC", "NCHW")


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
    effective = (filter_size - 1) * dilation + 1
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
        raise ValueError(f"Unknown padding {padding!r}; expected one of {_PADDINGS}")
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


def _check_format(data_format: str) -> None:
    if data_format not in _FORMATS:
        raise ValueError(f"Unknown data_format {data_format!r}; expected one of {_FORMATS}")


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
        strides: 4 strides in ``data_format`` order.
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        explicit_paddings: 8 pads (a before/after pair per dimension, ``data_format`` order) for
            EXPLICIT, empty otherwise.
        data_format: ``"NHWC"`` or ``"NCHW"``.
        dilations: 4 dilation rates in ``data_format`` order.

    Returns:
        The :class:`ConvGeometry`.

    Raises:
        ValueError: On any invalid attribute or a negative output size.
    """
    _check_format(data_format)
    if padding not in _PADDINGS:
        raise ValueError(f"Unknown padding {padding!r}; expected one of {_PADDINGS}")
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


def _to_nhwc_shape(shape: Sequence[int], data_format: str) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"expected a 4-D shape, got {list(shape)}")
    if data_format == "NCHW":
        return shape[0], shape[2], shape[3], shape[1]
    return shape  # type: ignore[return-value]


def _from_nhwc_shape(shape: Sequence[int], data_format: str) -> tuple[int, ...]:
    n, h, w, c = shape
    return (n, c, h, w) if data_format == "NCHW" else (n, h, w, c)


def _to_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 4:
        raise ValueError(f"expected a 4-D array, got shape {list(array.shape)}")
    return array.transpose(0, 2, 3, 1) if data_format == "NCHW" else array


def _from_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2) if data_format == "NCHW" else array)


def _filter_shape(sizes: Sequence[int], name: str) -> tuple[int, int, int, int]:
    sizes = tuple(int(s) for s in np.asarray(sizes).reshape(-1))
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
    _check_format(data_format)
    n, h, w, c = _to_nhwc_shape(input_shape, data_format)
    fh, fw, f_in, f_out = _filter_shape(filter_shape, "filter shape")
    geometry = conv_geometry(
        (h, w), (fh, fw), strides, padding, explicit_paddings, data_format, dilations
    )
    if op == "Conv2DBackpropFilter":
        out_depth = f_out
    elif op in ("DepthwiseConv2dNativeBackpropFilter", "DepthwiseConv2dNativeBackpropInput"):
        out_depth = c * f_out
    else:
        raise ValueError(f"Unknown op {op!r}")
    return _from_nhwc_shape((n, geometry.out_h, geometry.out_w, out_depth), data_format)


def _check_out_backprop(dy: np.ndarray, batch: int, geometry: ConvGeometry, depth: int) -> None:
    expected = (batch, geometry.out_h, geometry.out_w, depth)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop has shape {list(dy.shape)} (NHWC), expected {list(expected)} (NHWC)"
        )


def _pad_input(x: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return np.pad(
        x,
        (
            (0, 0),
            (geometry.pad_top, geometry.pad_bottom),
            (geometry.pad_left, geometry.pad_right),
            (0, 0),
        ),
    )


def _tap(geometry: ConvGeometry, i: int, j: int) -> tuple[slice, slice]:
    """The (row, column) slices of the padded input read by filter tap ``(i, j)``."""
    row = i * geometry.dilation_h
    col = j * geometry.dilation_w
    return (
        slice(row, row + (geometry.out_h - 1) * geometry.stride_h + 1, geometry.stride_h),
        slice(col, col + (geometry.out_w - 1) * geometry.stride_w + 1, geometry.stride_w),
    )


def conv2d_backprop_filter(
    input: np.ndarray,  # TF's argument name
    filter_sizes: Sequence[int],
    out_backprop: np.ndarray,
    strides: Sequence[int],
    padding: str,
    use_cudnn_on_gpu: bool = True,
    explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC",
    dilations: Sequence[int] = (1, 1, 1, 1),
) -> np.ndarray:
    """Float64 reference for ``Conv2DBackpropFilter``: ``dW = wgrad(dy, x)``, grouped if needed.

    Args:
        input: Input ``x``, 4-D in ``data_format``.
        filter_sizes: The filter shape ``[fh, fw, in_depth / G, out_depth]`` (HWIO).
        out_backprop: ``dy``, 4-D in ``data_format``.
        strides: 4 strides in ``data_format`` order.
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        use_cudnn_on_gpu: Ignored (accepted so that one kwargs dict drives every implementation).
        explicit_paddings: 8 pads for EXPLICIT, empty otherwise.
        data_format: ``"NHWC"`` or ``"NCHW"``.
        dilations: 4 dilation rates in ``data_format`` order.

    Returns:
        The float64 filter gradient, shape ``filter_sizes``.

    Raises:
        ValueError: On an invalid configuration or mismatched shapes.
    """
    del use_cudnn_on_gpu
    _check_format(data_format)
    x = _to_nhwc(input, data_format)
    dy = _to_nhwc(out_backprop, data_format)
    fh, fw, f_in, f_out = _filter_shape(filter_sizes, "filter_sizes")
    n, h, w, c = x.shape
    if dy.shape[0] != n:
        raise ValueError("input and out_backprop must have the same batch size")
    if f_in <= 0:
        raise ValueError("filter depth must be strictly greater than zero")
    if c % f_in:
        raise ValueError("input depth must be evenly divisible by filter depth")
    groups = c // f_in
    if groups == 0:
        raise ValueError("input depth must be at least the filter depth")
    if f_out % groups:
        raise ValueError("output depth must be evenly divisible by the number of groups")
    geometry = conv_geometry(
        (h, w), (fh, fw), strides, padding, explicit_paddings, data_format, dilations
    )
    _check_out_backprop(dy, n, geometry, f_out)

    result = np.zeros((fh, fw, f_in, f_out), dtype=np.float64)
    if result.size == 0 or dy.size == 0 or x.size == 0:
        return result
    xp = _pad_input(x, geometry)
    out_per_group = f_out // groups
    dy_g = dy.reshape(n, geometry.out_h, geometry.out_w, groups, out_per_group)
    for i in range(fh):
        for j in range(fw):
            rows, cols = _tap(geometry, i, j)
            patch = xp[:, rows, cols, :].reshape(n, geometry.out_h, geometry.out_w, groups, f_in)
            per_group = np.einsum("nhwgc,nhwgo->cgo", patch, dy_g, optimize=True)
            result[i, j] = per_group.reshape(f_in, f_out)
    return result


def _depthwise_dims(
    input_shape: tuple[int, int, int, int], filter_shape: tuple[int, int, int, int]
) -> int:
    """Checks the depthwise depth constraints and returns the depth multiplier."""
    if filter_shape[2] != input_shape[3]:
        raise ValueError("input and filter must have the same in_depth")
    return filter_shape[3]


def depthwise_conv2d_native_backprop_filter(
    input: np.ndarray,  # TF's argument name
    filter_sizes: Sequence[int],
    out_backprop: np.ndarray,
    strides: Sequence[int],
    padding: str,
    explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC",
    dilations: Sequence[int] = (1, 1, 1, 1),
) -> np.ndarray:
    """Float64 reference for ``DepthwiseConv2dNativeBackpropFilter`` (dilations honoured).

    Args:
        input: Input ``x``, 4-D in ``data_format``.
        filter_sizes: The filter shape ``[fh, fw, in_depth, depth_multiplier]``.
        out_backprop: ``dy``, 4-D in ``data_format``, depth ``in_depth * depth_multiplier``.
        strides: 4 strides in ``data_format`` order (row and column may differ).
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        explicit_paddings: 8 pads for EXPLICIT, empty otherwise.
        data_format: ``"NHWC"`` or ``"NCHW"``.
        dilations: 4 dilation rates in ``data_format`` order.

    Returns:
        The float64 filter gradient, shape ``filter_sizes``.

    Raises:
        ValueError: On an invalid configuration or mismatched shapes.
    """
    _check_format(data_format)
    x = _to_nhwc(input, data_format)
    dy = _to_nhwc(out_backprop, data_format)
    fh, fw, f_in, multiplier = _filter_shape(filter_sizes, "filter_sizes")
    n, h, w, c = x.shape
    if dy.shape[0] != n:
        raise ValueError("input and out_backprop must have the same batch size")
    _depthwise_dims(x.shape, (fh, fw, f_in, multiplier))
    geometry = conv_geometry(
        (h, w), (fh, fw), strides, padding, explicit_paddings, data_format, dilations
    )
    _check_out_backprop(dy, n, geometry, c * multiplier)

    result = np.zeros((fh, fw, c, multiplier), dtype=np.float64)
    if result.size == 0 or dy.size == 0:
        return result
    xp = _pad_input(x, geometry)
    dy_m = dy.reshape(n, geometry.out_h, geometry.out_w, c, multiplier)
    for i in range(fh):
        for j in range(fw):
            rows, cols = _tap(geometry, i, j)
            result[i, j] = np.einsum("nhwc,nhwcm->cm", xp[:, rows, cols, :], dy_m, optimize=True)
    return result


def depthwise_conv2d_native_backprop_input(
    input_sizes: Sequence[int],
    filter: np.ndarray,  # TF's argument name
    out_backprop: np.ndarray,
    strides: Sequence[int],
    padding: str,
    explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC",
    dilations: Sequence[int] = (1, 1, 1, 1),
) -> np.ndarray:
    """Float64 reference for ``DepthwiseConv2dNativeBackpropInput`` (dilations honoured).

    Args:
        input_sizes: The input shape, in ``data_format``.
        filter: The filter ``[fh, fw, in_depth, depth_multiplier]``.
        out_backprop: ``dy``, 4-D in ``data_format``, depth ``in_depth * depth_multiplier``.
        strides: 4 strides in ``data_format`` order (row and column may differ).
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        explicit_paddings: 8 pads for EXPLICIT, empty otherwise.
        data_format: ``"NHWC"`` or ``"NCHW"``.
        dilations: 4 dilation rates in ``data_format`` order.

    Returns:
        The float64 input gradient, shape ``input_sizes``.

    Raises:
        ValueError: On an invalid configuration or mismatched shapes.
    """
    _check_format(data_format)
    sizes = _filter_shape(input_sizes, "input_sizes")
    n, h, w, c = _to_nhwc_shape(sizes, data_format)
    f = np.asarray(filter, dtype=np.float64)
    if f.ndim != 4:
        raise ValueError(f"filter must be 4-dimensional, got shape {list(f.shape)}")
    dy = _to_nhwc(out_backprop, data_format)
    if dy.shape[0] != n:
        raise ValueError("input and out_backprop must have the same batch size")
    fh, fw, _, multiplier = f.shape
    _depthwise_dims((n, h, w, c), f.shape)
    geometry = conv_geometry(
        (h, w), (fh, fw), strides, padding, explicit_paddings, data_format, dilations
    )
    _check_out_backprop(dy, n, geometry, c * multiplier)

    if n * h * w * c == 0 or dy.size == 0 or f.size == 0:
        return np.zeros(sizes, dtype=np.float64)
    padded = np.zeros(
        (
            n,
            h + geometry.pad_top + geometry.pad_bottom,
            w + geometry.pad_left + geometry.pad_right,
            c,
        ),
        dtype=np.float64,
    )
    dy_m = dy.reshape(n, geometry.out_h, geometry.out_w, c, multiplier)
    for i in range(fh):
        for j in range(fw):
            rows, cols = _tap(geometry, i, j)
            padded[:, rows, cols, :] += np.einsum("nhwcm,cm->nhwc", dy_m, f[i, j], optimize=True)
    dx = padded[
        :, geometry.pad_top : geometry.pad_top + h, geometry.pad_left : geometry.pad_left + w
    ]
    return _from_nhwc(dx, data_format)
