"""PyTorch as a second opinion: its gradients (cuDNN where it picks it) and a float64 reference.

:class:`TorchConv` computes the same gradient through ``aten.convolution_backward``, for the
grid's comparison column and as the benchmark's baseline. :func:`float64_reference` is the
package reference's shifted-slice formulation in tensor ops on the GPU, for the cases too large
for NumPy. Both take CUDA tensors in our layouts (x/dy in data_format, filters HWIO).
"""

from __future__ import annotations

import numpy as np

from .problem import Problem


def torch_tensor(torch, a: np.ndarray, dtype: str):
    """Storage array -> CUDA tensor of the dtype (bfloat16 bits reinterpreted, not converted)."""
    t = torch.from_numpy(np.ascontiguousarray(a)).to("cuda")
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


class TorchConv:
    """The same gradient through torch.ops.aten.convolution_backward (cuDNN where PyTorch
    picks it). Takes CUDA tensors in our layouts: x/dy in data_format, filters HWIO."""

    def __init__(self, torch, p: Problem, first, dy):
        self.torch, self.p = torch, p
        t = torch
        nchw = p.data_format == "NCHW"
        fmt = t.contiguous_format if nchw else t.channels_last

        def nchw_view(a):  # NHWC data is already channels_last: no copy
            return (a if nchw else a.permute(0, 3, 1, 2)).contiguous(memory_format=fmt)

        fh, fw, f_in, f_out = p.filter
        c = p.input_nhwc[3]
        g = p.geo
        n, h, w, _ = p.input_nhwc
        self.groups = c if p.op != "cbf" else c // f_in
        self.dy = nchw_view(dy)
        # PyTorch pads symmetrically; otherwise pad explicitly (dW) or compute dx for the padded
        # input and crop it (dx).
        self.symmetric = g.pad_top == g.pad_bottom and g.pad_left == g.pad_right
        self.crop = False
        self.padding = [g.pad_top, g.pad_left] if self.symmetric else [0, 0]
        if p.op == "dbi":
            self.weight = first.reshape(fh, fw, 1, c * f_out).permute(3, 2, 0, 1)
            if not self.symmetric:
                h, w = h + g.pad_top + g.pad_bottom, w + g.pad_left + g.pad_right
                self.crop = True
            self.input = t.empty((n, c, h, w), device="cuda", dtype=first.dtype)
            self.input = self.input.contiguous(memory_format=fmt)
            self.mask = [True, False, False]
        else:
            self.input = nchw_view(first)
            if not self.symmetric:
                pads = (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom)
                self.input = t.nn.functional.pad(self.input, pads).contiguous(memory_format=fmt)
            o, i = (c * f_out, 1) if p.op == "dbf" else (f_out, f_in)
            self.weight = t.empty((o, i, fh, fw), device="cuda", dtype=first.dtype)
            self.mask = [False, True, False]
        self.weight = self.weight.contiguous(memory_format=fmt)

    def _conv_args(self) -> list:
        """aten's convolution arguments after the bias: stride, padding, dilation, transposed,
        output padding, groups."""
        g = self.p.geo
        stride, dilation = [g.stride_h, g.stride_w], [g.dilation_h, g.dilation_w]
        return [stride, self.padding, dilation, False, [0, 0], self.groups]

    def __call__(self):
        grads = self.torch.ops.aten.convolution_backward(
            self.dy, self.input, self.weight, None, *self._conv_args(), self.mask
        )
        return grads[0] if self.p.op == "dbi" else grads[1]

    def result(self) -> np.ndarray:
        """float64 NumPy result in our layout (dx in data_format, dW in HWIO)."""
        p, g = self.p, self.p.geo
        out = self()
        if p.op == "dbi":
            n, h, w, c = p.input_nhwc
            if self.crop:
                out = out[:, :, g.pad_top : g.pad_top + h, g.pad_left : g.pad_left + w]
            if p.data_format == "NHWC":
                out = out.permute(0, 2, 3, 1)
            return out.double().cpu().numpy()
        fh, fw, f_in, f_out = p.filter
        hwio = out.permute(2, 3, 1, 0)  # [fh, fw, in, out]
        if p.op == "dbf":
            hwio = hwio.reshape(fh, fw, p.input_nhwc[3], f_out)
        return hwio.double().cpu().numpy()

    def backend_name(self) -> str:
        """The convolution backend PyTorch picks (private API; ``"?"`` if it fails)."""
        try:
            b = self.torch._C._select_conv_backend(
                self.input, self.weight, None, *self._conv_args(), None
            )
            return str(b).split(".")[-1]
        except Exception:  # noqa: BLE001 - private API; informative only
            return "?"


def float64_reference(t, p: Problem, first, dy):
    """float64 reference with plain tensor ops on the GPU, for CUDA tensors in our layouts.

    The same shifted-slice formulation as python/tf_convgrad/tools/reference.py (no cuDNN): the
    input is zero-padded once and each filter tap reads one strided slice of it.
    """
    g = p.geo
    nchw = p.data_format == "NCHW"
    dyn = (dy.permute(0, 2, 3, 1) if nchw else dy).double()  # NHWC
    n, h, w, c = p.input_nhwc
    fh, fw, f_in, f_out = p.filter
    ho, wo = g.out_h, g.out_w

    def tap(i, j):
        r, q = i * g.dilation_h, j * g.dilation_w
        return (
            slice(r, r + (ho - 1) * g.stride_h + 1, g.stride_h),
            slice(q, q + (wo - 1) * g.stride_w + 1, g.stride_w),
        )

    if p.op == "dbi":
        f = first.double()  # [fh, fw, C, M]
        hp, wp = h + g.pad_top + g.pad_bottom, w + g.pad_left + g.pad_right
        dxp = t.zeros((n, hp, wp, c), dtype=t.float64, device="cuda")
        dym = dyn.reshape(n, ho, wo, c, f_out)
        for i in range(fh):
            for j in range(fw):
                rows, cols = tap(i, j)
                dxp[:, rows, cols, :] += (dym * f[i, j]).sum(-1)
        dx = dxp[:, g.pad_top : g.pad_top + h, g.pad_left : g.pad_left + w, :]
        return dx.permute(0, 3, 1, 2) if nchw else dx
    xn = (first.permute(0, 2, 3, 1) if nchw else first).double()
    pads = (0, 0, g.pad_left, g.pad_right, g.pad_top, g.pad_bottom)
    xp = t.nn.functional.pad(xn, pads)
    out = t.zeros((fh, fw, f_in, f_out), dtype=t.float64, device="cuda")
    for i in range(fh):
        for j in range(fw):
            rows, cols = tap(i, j)
            patch = xp[:, rows, cols, :]
            if p.op == "dbf":
                out[i, j] = (patch[..., None] * dyn.reshape(n, ho, wo, c, f_out)).sum((0, 1, 2))
            else:
                groups = c // f_in
                a = patch.reshape(-1, groups, f_in)
                b = dyn.reshape(-1, groups, f_out // groups)
                out[i, j] = t.einsum("kgc,kgo->cgo", a, b).reshape(f_in, f_out)
    return out
