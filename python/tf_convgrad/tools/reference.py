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

import numpy as np

from .._geometry import (
    ConvGeometry,
    check_format,
    conv_geometry,
    four_sizes,
    out_backprop_shape,
    to_nhwc_shape,
    windowed_output_size,
)

__all__ = [
    "ConvGeometry",
    "conv2d_backprop_filter",
    "conv_geometry",
    "depthwise_conv2d_native_backprop_filter",
    "depthwise_conv2d_native_backprop_input",
    "out_backprop_shape",
    "windowed_output_size",
]


def _to_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 4:
        raise ValueError(f"expected a 4-D array, got shape {list(array.shape)}")
    return array.transpose(0, 2, 3, 1) if data_format == "NCHW" else array


def _from_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2) if data_format == "NCHW" else array)


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
    check_format(data_format)
    x = _to_nhwc(input, data_format)
    dy = _to_nhwc(out_backprop, data_format)
    fh, fw, f_in, f_out = four_sizes(filter_sizes, "filter_sizes")
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
    check_format(data_format)
    x = _to_nhwc(input, data_format)
    dy = _to_nhwc(out_backprop, data_format)
    fh, fw, f_in, multiplier = four_sizes(filter_sizes, "filter_sizes")
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
    check_format(data_format)
    sizes = four_sizes(input_sizes, "input_sizes")
    n, h, w, c = to_nhwc_shape(sizes, data_format)
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
