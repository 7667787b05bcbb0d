"""The float64 NumPy reference of the three convolution gradients, in two formulations.

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
unequal strides and grouped filters, and returns zeros for empty problems.

Two layers:

* The ops' front end, with TF's arguments (:func:`conv2d_backprop_filter`,
  :func:`depthwise_conv2d_native_backprop_filter`, :func:`depthwise_conv2d_native_backprop_input`,
  named as in :data:`.._optable.OPS`): validates the attributes and shapes (geometry from
  :mod:`.._geometry`; ``ValueError`` where TensorFlow raises ``InvalidArgumentError``), converts
  to NHWC and back, and runs a kernel: ``method="einsum"`` (the default) or ``"loops"``.
* The NHWC kernels, ``<function>_<method>``, also in :data:`KERNELS` ``[method][op key]``:
  ``(x, dy, filter_shape, strides, dilations, pads_before)`` for the filter gradients and
  ``(w, dy, input_shape, strides, dilations, pads_before)`` for the input gradient, with
  ``(row, column)`` pairs; they trust their arguments.

  - ``einsum``: the input (or the input gradient) is padded once and each filter tap ``(i, j)``
    is a strided slice contracted with ``einsum``; fast at layer sizes.
  - ``loops``: the formula itself, a Python loop over ``(b, ho, wo, i, j)`` with vector maths over
    the channels only; the definition, and cheap where huge strides or dilations make padding
    expensive. The test suite checks the two against each other (``tests/unit/test_reference.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

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
    "KERNELS",
    "METHODS",
    "ConvGeometry",
    "conv2d_backprop_filter",
    "conv2d_backprop_filter_einsum",
    "conv2d_backprop_filter_loops",
    "conv_geometry",
    "depthwise_conv2d_forward_einsum",
    "depthwise_conv2d_native_backprop_filter",
    "depthwise_conv2d_native_backprop_filter_einsum",
    "depthwise_conv2d_native_backprop_filter_loops",
    "depthwise_conv2d_native_backprop_input",
    "depthwise_conv2d_native_backprop_input_einsum",
    "depthwise_conv2d_native_backprop_input_loops",
    "out_backprop_shape",
    "windowed_output_size",
]

#: The kernels' formulations.
METHODS = ("einsum", "loops")

_Pair = tuple[int, int]


# ------------------------------------------------------------------------------------------------
# Kernels: loops


def _taps(
    batch: int,
    out_hw: _Pair,
    filter_hw: _Pair,
    in_hw: _Pair,
    strides: _Pair,
    dilations: _Pair,
    pads_before: _Pair,
) -> Iterator[tuple[int, ...]]:
    """``(b, ho, wo, i, j, h, w)`` for every filter tap of every output that reads inside the
    input: ``h = ho*s_h - pt + i*d_h``, ``w = wo*s_w - pl + j*d_w``."""
    for b in range(batch):
        for ho in range(out_hw[0]):
            for wo in range(out_hw[1]):
                for i in range(filter_hw[0]):
                    h = ho * strides[0] - pads_before[0] + i * dilations[0]
                    if not 0 <= h < in_hw[0]:
                        continue
                    for j in range(filter_hw[1]):
                        w = wo * strides[1] - pads_before[1] + j * dilations[1]
                        if 0 <= w < in_hw[1]:
                            yield b, ho, wo, i, j, h, w


def conv2d_backprop_filter_loops(x, dy, filter_shape, strides, dilations, pads_before):
    """``dW = wgrad(dy, x)``, grouped: x ``[B, H, W, C]``, dy ``[B, Ho, Wo, Cout]``,
    filter_shape ``[fh, fw, C / G, Cout]``."""
    fh, fw, cin_f, cout = filter_shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0:
        return dw
    groups = x.shape[3] // cin_f
    cout_g = cout // groups
    for b, ho, wo, i, j, h, w in _taps(x.shape[0], dy.shape[1:3], (fh, fw), x.shape[1:3],
                                       strides, dilations, pads_before):  # fmt: skip
        for g in range(groups):
            xs = x[b, h, w, g * cin_f : (g + 1) * cin_f]
            gs = dy[b, ho, wo, g * cout_g : (g + 1) * cout_g]
            dw[i, j, :, g * cout_g : (g + 1) * cout_g] += np.outer(xs, gs)
    return dw


def depthwise_conv2d_native_backprop_filter_loops(
    x, dy, filter_shape, strides, dilations, pads_before
):
    """``dW = depthwise_wgrad(dy, x)``: x ``[B, H, W, C]``, dy ``[B, Ho, Wo, C*M]``,
    filter_shape ``[fh, fw, C, M]``."""
    fh, fw, channels, mult = filter_shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0:
        return dw
    for b, ho, wo, i, j, h, w in _taps(x.shape[0], dy.shape[1:3], (fh, fw), x.shape[1:3],
                                       strides, dilations, pads_before):  # fmt: skip
        dw[i, j] += x[b, h, w, :, None] * dy[b, ho, wo].reshape(channels, mult)
    return dw


def depthwise_conv2d_native_backprop_input_loops(
    w, dy, input_shape, strides, dilations, pads_before
):
    """``dx = depthwise_dgrad(dy, W)``: W ``[fh, fw, C, M]``, dy ``[B, Ho, Wo, C*M]``,
    input_shape ``[B, H, W, C]``."""
    fh, fw, channels, mult = w.shape
    dx = np.zeros(input_shape, np.float64)
    if dx.size == 0:
        return dx
    for b, ho, wo, i, j, h, col in _taps(input_shape[0], dy.shape[1:3], (fh, fw),
                                         input_shape[1:3], strides, dilations,
                                         pads_before):  # fmt: skip
        dx[b, h, col] += (w[i, j] * dy[b, ho, wo].reshape(channels, mult)).sum(axis=-1)
    return dx


# ------------------------------------------------------------------------------------------------
# Kernels: einsum


def _pad(x: np.ndarray, out_hw, filter_hw, strides, dilations, pads_before) -> np.ndarray:
    """``x`` zero-padded so that every tap of every output lies inside (``pads_before`` first)."""
    batch, height, width, channels = x.shape
    extent = [
        max(pad + size, (out - 1) * stride + (k - 1) * dilation + 1)
        for size, out, k, stride, dilation, pad in zip(
            (height, width), out_hw, filter_hw, strides, dilations, pads_before, strict=True
        )
    ]
    padded = np.zeros((batch, *extent, channels), np.float64)
    padded[:, pads_before[0] : pads_before[0] + height, pads_before[1] : pads_before[1] + width] = x
    return padded


def _tap_slices(out_hw, filter_hw, strides, dilations) -> Iterator[tuple[int, int, slice, slice]]:
    """``(i, j, rows, cols)``: the slices of the padded input that filter tap ``(i, j)`` reads."""
    for i in range(filter_hw[0]):
        rows = slice(i * dilations[0], i * dilations[0] + (out_hw[0] - 1) * strides[0] + 1,
                     strides[0])  # fmt: skip
        for j in range(filter_hw[1]):
            cols = slice(j * dilations[1], j * dilations[1] + (out_hw[1] - 1) * strides[1] + 1,
                         strides[1])  # fmt: skip
            yield i, j, rows, cols


def conv2d_backprop_filter_einsum(x, dy, filter_shape, strides, dilations, pads_before):
    """``dW = wgrad(dy, x)``, grouped; arguments as for :func:`conv2d_backprop_filter_loops`."""
    fh, fw, cin_f, cout = filter_shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0 or dy.size == 0:
        return dw
    groups = x.shape[3] // cin_f
    out_hw = dy.shape[1:3]
    xp = _pad(x, out_hw, (fh, fw), strides, dilations, pads_before)
    dy_g = dy.reshape(*dy.shape[:3], groups, cout // groups)
    for i, j, rows, cols in _tap_slices(out_hw, (fh, fw), strides, dilations):
        patch = xp[:, rows, cols].reshape(*dy.shape[:3], groups, cin_f)
        dw[i, j] = np.einsum("nhwgc,nhwgo->cgo", patch, dy_g, optimize=True).reshape(cin_f, cout)
    return dw


def depthwise_conv2d_native_backprop_filter_einsum(
    x, dy, filter_shape, strides, dilations, pads_before
):
    """``dW = depthwise_wgrad(dy, x)``; arguments as for the loops."""
    fh, fw, channels, mult = filter_shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0 or dy.size == 0:
        return dw
    out_hw = dy.shape[1:3]
    xp = _pad(x, out_hw, (fh, fw), strides, dilations, pads_before)
    dy_m = dy.reshape(*dy.shape[:3], channels, mult)
    for i, j, rows, cols in _tap_slices(out_hw, (fh, fw), strides, dilations):
        dw[i, j] = np.einsum("nhwc,nhwcm->cm", xp[:, rows, cols], dy_m, optimize=True)
    return dw


def depthwise_conv2d_native_backprop_input_einsum(
    w, dy, input_shape, strides, dilations, pads_before
):
    """``dx = depthwise_dgrad(dy, W)``; arguments as for the loops. The gradient is summed into
    a padded buffer, tap by tap, and cut out of it."""
    dx = np.zeros(input_shape, np.float64)
    if dx.size == 0 or dy.size == 0:
        return dx
    top, left = pads_before
    dy_m = dy.reshape(*dy.shape[:3], *w.shape[2:])
    dxp = _pad(dx, dy.shape[1:3], w.shape[:2], strides, dilations, pads_before)
    for i, j, rows, cols in _tap_slices(dy.shape[1:3], w.shape[:2], strides, dilations):
        dxp[:, rows, cols] += np.einsum("nhwcm,cm->nhwc", dy_m, w[i, j], optimize=True)
    return dxp[:, top : top + input_shape[1], left : left + input_shape[2]]


def depthwise_conv2d_forward_einsum(x, w, out_hw, strides, dilations, pads_before):
    """The forward depthwise convolution ``y = fprop(x, W)`` (for adjoint checks), NHWC::

    y[b, ho, wo, c*M + m] = sum_{i, j} x[b, ho*s_h - pt + i*d_h, wo*s_w - pl + j*d_w, c]
                                       * W[i, j, c, m]
    """
    fh, fw, channels, mult = w.shape
    batch = x.shape[0]
    y = np.zeros((batch, *out_hw, channels, mult), np.float64)
    if y.size and x.size:
        xp = _pad(x, out_hw, (fh, fw), strides, dilations, pads_before)
        for i, j, rows, cols in _tap_slices(out_hw, (fh, fw), strides, dilations):
            y += xp[:, rows, cols, :, None] * w[i, j]
    return y.reshape(batch, *out_hw, channels * mult)


#: The NHWC kernels by method and op key.
KERNELS: dict[str, dict[str, Callable[..., np.ndarray]]] = {
    "einsum": {
        "cbf": conv2d_backprop_filter_einsum,
        "dbf": depthwise_conv2d_native_backprop_filter_einsum,
        "dbi": depthwise_conv2d_native_backprop_input_einsum,
    },
    "loops": {
        "cbf": conv2d_backprop_filter_loops,
        "dbf": depthwise_conv2d_native_backprop_filter_loops,
        "dbi": depthwise_conv2d_native_backprop_input_loops,
    },
}


# ------------------------------------------------------------------------------------------------
# The ops' front end


def _to_nhwc(array: np.ndarray, data_format: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 4:
        raise ValueError(f"expected a 4-D array, got shape {list(array.shape)}")
    return array.transpose(0, 2, 3, 1) if data_format == "NCHW" else array


def _kernel(op: str, method: str) -> Callable[..., np.ndarray]:
    if method not in KERNELS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    return KERNELS[method][op]


def _geometry(
    input_shape: tuple[int, int, int, int],
    filter_hw: Sequence[int],
    dy: np.ndarray,
    out_depth: int,
    attrs: tuple,
) -> tuple[_Pair, _Pair, _Pair]:
    """Checks ``dy`` against the geometry; returns the kernels' ``(strides, dilations,
    pads_before)``. ``attrs``: ``(strides, padding, explicit_paddings, data_format, dilations)``."""
    n, h, w, _ = input_shape
    strides, padding, explicit_paddings, data_format, dilations = attrs
    g = conv_geometry((h, w), tuple(filter_hw), strides, padding, explicit_paddings, data_format,
                      dilations)  # fmt: skip
    expected = (n, g.out_h, g.out_w, out_depth)
    if dy.shape != expected:
        raise ValueError(
            f"out_backprop has shape {list(dy.shape)} (NHWC), expected {list(expected)} (NHWC)"
        )
    return (g.stride_h, g.stride_w), (g.dilation_h, g.dilation_w), (g.pad_top, g.pad_left)


def _filter_grad(op, input, filter_sizes, out_backprop, attrs, method) -> np.ndarray:
    """The two filter gradients' front end (``attrs`` as for :func:`_geometry`)."""
    data_format = attrs[3]
    check_format(data_format)
    x = _to_nhwc(input, data_format)
    dy = _to_nhwc(out_backprop, data_format)
    fh, fw, f_in, f_out = four_sizes(filter_sizes, "filter_sizes")
    c = x.shape[3]
    if dy.shape[0] != x.shape[0]:
        raise ValueError("input and out_backprop must have the same batch size")
    if op == "cbf":
        if f_in <= 0:
            raise ValueError("filter depth must be strictly greater than zero")
        if c % f_in:
            raise ValueError("input depth must be evenly divisible by filter depth")
        groups = c // f_in
        if groups == 0:
            raise ValueError("input depth must be at least the filter depth")
        if f_out % groups:
            raise ValueError("output depth must be evenly divisible by the number of groups")
        out_depth = f_out
    else:
        if f_in != c:
            raise ValueError("input and filter must have the same in_depth")
        out_depth = c * f_out
    geometry = _geometry(x.shape, (fh, fw), dy, out_depth, attrs)
    return _kernel(op, method)(x, dy, (fh, fw, f_in, f_out), *geometry)


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
    method: str = "einsum",
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
        method: The kernel, ``"einsum"`` or ``"loops"`` (:data:`METHODS`).

    Returns:
        The float64 filter gradient, shape ``filter_sizes``.

    Raises:
        ValueError: On an invalid configuration or mismatched shapes.
    """
    del use_cudnn_on_gpu
    attrs = (strides, padding, explicit_paddings, data_format, dilations)
    return _filter_grad("cbf", input, filter_sizes, out_backprop, attrs, method)


def depthwise_conv2d_native_backprop_filter(
    input: np.ndarray, filter_sizes: Sequence[int], out_backprop: np.ndarray,
    strides: Sequence[int], padding: str, explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC", dilations: Sequence[int] = (1, 1, 1, 1), method: str = "einsum",
) -> np.ndarray:  # fmt: skip
    """Float64 reference for ``DepthwiseConv2dNativeBackpropFilter`` (dilations honoured).

    Args:
        input: Input ``x``, 4-D in ``data_format``.
        filter_sizes: The filter shape ``[fh, fw, in_depth, depth_multiplier]``.
        out_backprop: ``dy``, 4-D in ``data_format``, depth ``in_depth * depth_multiplier``.
        strides, padding, explicit_paddings, data_format, dilations, method: As for
            :func:`conv2d_backprop_filter` (row and column strides may differ).

    Returns:
        The float64 filter gradient, shape ``filter_sizes``.

    Raises:
        ValueError: On an invalid configuration or mismatched shapes.
    """
    attrs = (strides, padding, explicit_paddings, data_format, dilations)
    return _filter_grad("dbf", input, filter_sizes, out_backprop, attrs, method)


def depthwise_conv2d_native_backprop_input(
    input_sizes: Sequence[int], filter: np.ndarray, out_backprop: np.ndarray,
    strides: Sequence[int], padding: str, explicit_paddings: Sequence[int] = (),
    data_format: str = "NHWC", dilations: Sequence[int] = (1, 1, 1, 1), method: str = "einsum",
) -> np.ndarray:  # fmt: skip
    """Float64 reference for ``DepthwiseConv2dNativeBackpropInput`` (dilations honoured).

    Args:
        input_sizes: The input shape, in ``data_format``.
        filter: The filter ``[fh, fw, in_depth, depth_multiplier]``.
        out_backprop: ``dy``, 4-D in ``data_format``, depth ``in_depth * depth_multiplier``.
        strides, padding, explicit_paddings, data_format, dilations, method: TF's attributes
            and the kernel, as for :func:`conv2d_backprop_filter`.

    Returns:
        The float64 input gradient, shape ``input_sizes``.

    Raises:
        ValueError: On an invalid configuration or mismatched shapes.
    """
    check_format(data_format)
    sizes = four_sizes(input_sizes, "input_sizes")
    shape = to_nhwc_shape(sizes, data_format)
    f = np.asarray(filter, dtype=np.float64)
    if f.ndim != 4:
        raise ValueError(f"filter must be 4-dimensional, got shape {list(f.shape)}")
    dy = _to_nhwc(out_backprop, data_format)
    if dy.shape[0] != shape[0]:
        raise ValueError("input and out_backprop must have the same batch size")
    if f.shape[2] != shape[3]:
        raise ValueError("input and filter must have the same in_depth")
    attrs = (strides, padding, explicit_paddings, data_format, dilations)
    geometry = _geometry(shape, f.shape[:2], dy, shape[3] * f.shape[3], attrs)
    dx = _kernel("dbi", method)(f, dy, shape, *geometry)
    return np.ascontiguousarray(dx.transpose(0, 3, 1, 2) if data_format == "NCHW" else dx)
