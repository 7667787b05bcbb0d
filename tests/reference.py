"""Float64 NumPy references for the three convolution-gradient ops.

Independent of TensorFlow (this module must never import it). All tensors are NHWC, filters HWIO,
exactly as in docs/SEMANTICS.md; the tests transpose to and from NCHW themselves.

The forward convolution that these ops differentiate reads input row
``h = ho * s_h - pad_top + i * d_h`` and column ``w = wo * s_w - pad_left + j * d_w``; positions
outside the input contribute zero.

Two formulations of each op:

* ``*_naive``: loops over ``(b, ho, wo, i, j)`` straight from the formula, vector maths over the
  channels only. Used for the small tier and as the definition.
* ``*_fast``: one strided slice of the zero-padded input per filter tap, then a contraction over
  batch and output positions. Used for the MobileNet/ResNet-size tier; ``test_reference.py``
  checks that both formulations agree.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------------------
# Output size and padding (per spatial dimension; Python ints, so no overflow)
# --------------------------------------------------------------------------------------------------


def _trunc_div(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def output_size(
    in_size: int, k: int, stride: int, dilation: int, padding: str, pads: tuple[int, int] = (0, 0)
) -> tuple[int, int, int]:
    """Returns ``(out, pad_before, pad_after)``; raises ValueError where TF reports an error.

    eff = (k - 1) * dilation + 1
    VALID:    out = (in - eff + s) / s
    SAME:     out = ceil(in / s); pad_needed = max(0, (out - 1) * s + eff - in), odd pad after
    EXPLICIT: out = (in + pad_before + pad_after - eff + s) / s
    """
    if stride <= 0 or dilation < 1:
        raise ValueError("stride must be > 0 and dilation >= 1")
    eff = (k - 1) * dilation + 1
    if padding == "VALID":
        out, before, after = _trunc_div(in_size - eff + stride, stride), 0, 0
    elif padding == "SAME":
        out = _trunc_div(in_size + stride - 1, stride)
        needed = max(0, (out - 1) * stride + eff - in_size)
        before, after = needed // 2, needed - needed // 2
    elif padding == "EXPLICIT":
        before, after = pads
        out = _trunc_div(in_size + before + after - eff + stride, stride)
    else:
        raise ValueError(f"unknown padding {padding!r}")
    if out < 0:
        raise ValueError(f"computed output size would be negative: {out}")
    return out, before, after


def conv_geometry(
    input_hw: tuple[int, int],
    filter_hw: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    padding: str,
    explicit: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Returns ``((out_h, out_w), (pad_top, pad_left))``."""
    out_h, top, _ = output_size(
        input_hw[0], filter_hw[0], strides[0], dilations[0], padding, explicit[0]
    )
    out_w, left, _ = output_size(
        input_hw[1], filter_hw[1], strides[1], dilations[1], padding, explicit[1]
    )
    return (out_h, out_w), (top, left)


def _tap_positions(ho: int, i: int, stride: int, pad: int, dilation: int) -> int:
    return ho * stride - pad + i * dilation


# --------------------------------------------------------------------------------------------------
# Naive loops (the definition)
# --------------------------------------------------------------------------------------------------


def conv2d_backprop_filter_naive(
    x: np.ndarray,
    dy: np.ndarray,
    filter_shape: tuple[int, int, int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    pads_before: tuple[int, int],
) -> np.ndarray:
    """dw = wgrad(dy, x), grouped.

    dw[i, j, ci, co] = sum_{b, ho, wo} x[b, ho*s_h - pt + i*d_h, wo*s_w - pl + j*d_w, g*Cin_f + ci]
                                       * dy[b, ho, wo, co],   g = co // (Cout / G), G = C / Cin_f

    x: [B, H, W, C]; dy: [B, Ho, Wo, Cout]; filter_shape: [fh, fw, Cin_f, Cout].
    """
    fh, fw, cin_f, cout = filter_shape
    batch, height, width, channels = x.shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0:
        return dw
    groups = channels // cin_f
    cout_g = cout // groups
    _, out_h, out_w, _ = dy.shape
    for b in range(batch):
        for ho in range(out_h):
            for wo in range(out_w):
                g_out = dy[b, ho, wo, :]
                for i in range(fh):
                    h = _tap_positions(ho, i, strides[0], pads_before[0], dilations[0])
                    if not 0 <= h < height:
                        continue
                    for j in range(fw):
                        w = _tap_positions(wo, j, strides[1], pads_before[1], dilations[1])
                        if not 0 <= w < width:
                            continue
                        for g in range(groups):
                            xs = x[b, h, w, g * cin_f : (g + 1) * cin_f]
                            gs = g_out[g * cout_g : (g + 1) * cout_g]
                            dw[i, j, :, g * cout_g : (g + 1) * cout_g] += np.outer(xs, gs)
    return dw


def depthwise_backprop_filter_naive(
    x: np.ndarray,
    dy: np.ndarray,
    filter_shape: tuple[int, int, int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    pads_before: tuple[int, int],
) -> np.ndarray:
    """dw = wgrad_depthwise(dy, x).

    dw[i, j, c, m] = sum_{b, ho, wo} x[b, ho*s_h - pt + i*d_h, wo*s_w - pl + j*d_w, c]
                                     * dy[b, ho, wo, c*M + m]

    x: [B, H, W, C]; dy: [B, Ho, Wo, C*M]; filter_shape: [fh, fw, C, M].
    """
    fh, fw, channels, mult = filter_shape
    batch, height, width, _ = x.shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0:
        return dw
    _, out_h, out_w, _ = dy.shape
    for b in range(batch):
        for ho in range(out_h):
            for wo in range(out_w):
                g_out = dy[b, ho, wo, :].reshape(channels, mult)
                for i in range(fh):
                    h = _tap_positions(ho, i, strides[0], pads_before[0], dilations[0])
                    if not 0 <= h < height:
                        continue
                    for j in range(fw):
                        w = _tap_positions(wo, j, strides[1], pads_before[1], dilations[1])
                        if 0 <= w < width:
                            dw[i, j] += x[b, h, w, :, None] * g_out
    return dw


def depthwise_backprop_input_naive(
    w: np.ndarray,
    dy: np.ndarray,
    input_shape: tuple[int, int, int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    pads_before: tuple[int, int],
) -> np.ndarray:
    """dx = dgrad_depthwise(dy, w).

    dx[b, h, w, c] = sum over (i, j, m, ho, wo) with h = ho*s_h - pt + i*d_h and
                     w = wo*s_w - pl + j*d_w of  f[i, j, c, m] * dy[b, ho, wo, c*M + m]

    w: [fh, fw, C, M]; dy: [B, Ho, Wo, C*M]; input_shape: [B, H, W, C].
    """
    fh, fw, channels, mult = w.shape
    batch, height, width, _ = input_shape
    dx = np.zeros(input_shape, np.float64)
    if dx.size == 0:
        return dx
    _, out_h, out_w, _ = dy.shape
    for b in range(batch):
        for ho in range(out_h):
            for wo in range(out_w):
                g_out = dy[b, ho, wo, :].reshape(channels, mult)
                for i in range(fh):
                    h = _tap_positions(ho, i, strides[0], pads_before[0], dilations[0])
                    if not 0 <= h < height:
                        continue
                    for j in range(fw):
                        col = _tap_positions(wo, j, strides[1], pads_before[1], dilations[1])
                        if 0 <= col < width:
                            dx[b, h, col, :] += (w[i, j] * g_out).sum(axis=-1)
    return dx


# --------------------------------------------------------------------------------------------------
# Vectorised formulation (pad + one strided slice per tap); same maths, for big shapes
# --------------------------------------------------------------------------------------------------


def _padded_extent(size, out, k, stride, dilation, pad_before):
    """Padded length so that every tap position of every output fits."""
    last = (out - 1) * stride + (k - 1) * dilation  # index into the padded axis
    return max(pad_before + size, last + 1)


def _tap_slice(i, out, stride, dilation):
    start = i * dilation
    return slice(start, start + (out - 1) * stride + 1, stride)


def _pad_input(x, out_hw, filter_hw, strides, dilations, pads_before):
    batch, height, width, channels = x.shape
    hp = _padded_extent(height, out_hw[0], filter_hw[0], strides[0], dilations[0], pads_before[0])
    wp = _padded_extent(width, out_hw[1], filter_hw[1], strides[1], dilations[1], pads_before[1])
    xp = np.zeros((batch, hp, wp, channels), np.float64)
    xp[:, pads_before[0] : pads_before[0] + height, pads_before[1] : pads_before[1] + width] = x
    return xp


def conv2d_backprop_filter_fast(x, dy, filter_shape, strides, dilations, pads_before):
    """dw = wgrad(dy, x); vectorised form of :func:`conv2d_backprop_filter_naive`."""
    fh, fw, cin_f, cout = filter_shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0 or dy.size == 0:
        return dw
    groups = x.shape[3] // cin_f
    cout_g = cout // groups
    out_hw = dy.shape[1:3]
    xp = _pad_input(x, out_hw, (fh, fw), strides, dilations, pads_before)
    batch = x.shape[0]
    dy_g = dy.reshape(-1, groups, cout_g)  # [B*Ho*Wo, G, Cout_g]
    for i in range(fh):
        for j in range(fw):
            xs = xp[
                :,
                _tap_slice(i, out_hw[0], strides[0], dilations[0]),
                _tap_slice(j, out_hw[1], strides[1], dilations[1]),
            ]
            xs = xs.reshape(batch * out_hw[0] * out_hw[1], groups, cin_f)
            # [G, Cin_f, Cout_g] -> [Cin_f, G, Cout_g] -> [Cin_f, Cout]
            tap = np.einsum("ngc,ngo->gco", xs, dy_g, optimize=True)
            dw[i, j] = tap.transpose(1, 0, 2).reshape(cin_f, cout)
    return dw


def depthwise_backprop_filter_fast(x, dy, filter_shape, strides, dilations, pads_before):
    """dw = wgrad_depthwise(dy, x); vectorised form of the naive loop."""
    fh, fw, channels, mult = filter_shape
    dw = np.zeros(filter_shape, np.float64)
    if dw.size == 0 or dy.size == 0:
        return dw
    out_hw = dy.shape[1:3]
    xp = _pad_input(x, out_hw, (fh, fw), strides, dilations, pads_before)
    dy_cm = dy.reshape(-1, channels, mult)
    for i in range(fh):
        for j in range(fw):
            xs = xp[
                :,
                _tap_slice(i, out_hw[0], strides[0], dilations[0]),
                _tap_slice(j, out_hw[1], strides[1], dilations[1]),
            ].reshape(-1, channels)
            dw[i, j] = np.einsum("nc,ncm->cm", xs, dy_cm, optimize=True)
    return dw


def depthwise_backprop_input_fast(w, dy, input_shape, strides, dilations, pads_before):
    """dx = dgrad_depthwise(dy, w); vectorised form of the naive loop."""
    fh, fw, channels, mult = w.shape
    batch, height, width, _ = input_shape
    dx = np.zeros(input_shape, np.float64)
    if dx.size == 0 or dy.size == 0:
        return dx
    out_hw = dy.shape[1:3]
    dxp = _pad_input(dx, out_hw, (fh, fw), strides, dilations, pads_before)
    dy_cm = dy.reshape(batch, out_hw[0], out_hw[1], channels, mult)
    for i in range(fh):
        for j in range(fw):
            dxp[
                :,
                _tap_slice(i, out_hw[0], strides[0], dilations[0]),
                _tap_slice(j, out_hw[1], strides[1], dilations[1]),
            ] += np.einsum("bhwcm,cm->bhwc", dy_cm, w[i, j], optimize=True)
    return dxp[:, pads_before[0] : pads_before[0] + height, pads_before[1] : pads_before[1] + width]


# --------------------------------------------------------------------------------------------------
# Forward depthwise convolution (for adjoint checks): y = fprop(x, w)
# --------------------------------------------------------------------------------------------------


def depthwise_forward_fast(x, w, out_hw, strides, dilations, pads_before):
    """y = fprop_depthwise(x, w).

    y[b, ho, wo, c*M + m] = sum_{i, j} x[b, ho*s_h - pt + i*d_h, wo*s_w - pl + j*d_w, c]
                                       * f[i, j, c, m]
    """
    fh, fw, channels, mult = w.shape
    batch = x.shape[0]
    y = np.zeros((batch, out_hw[0], out_hw[1], channels, mult), np.float64)
    if y.size == 0 or x.size == 0:
        return y.reshape(batch, out_hw[0], out_hw[1], channels * mult)
    xp = _pad_input(x, out_hw, (fh, fw), strides, dilations, pads_before)
    for i in range(fh):
        for j in range(fw):
            xs = xp[
                :,
                _tap_slice(i, out_hw[0], strides[0], dilations[0]),
                _tap_slice(j, out_hw[1], strides[1], dilations[1]),
            ]
            y += xs[..., None] * w[i, j]
    return y.reshape(batch, out_hw[0], out_hw[1], channels * mult)
