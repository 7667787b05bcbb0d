"""One op call of the harness: its geometry, shapes, C structs, inputs and float64 references.

Output sizes and padding come from the package's geometry (``tf_convgrad/_geometry.py``), the op
names from its op table (``tf_convgrad/_optable.py``), the geometry type from its problem table
(``tf_convgrad/tools/problems.py``), and the results are checked against its float64 reference
(``tf_convgrad/tools/reference.py``).
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from .capi import ConvShape, LaunchOptions, itemsize, to_storage
from .package import GEOMETRY, OPTABLE, PROBLEMS, REFERENCE

#: A named layer shape before the op, padding, format and dtype are chosen: ``name``,
#: ``input_shape`` (NHWC), ``filter_shape`` (HWIO: ``(fh, fw, C / groups, Cout)`` for cbf,
#: ``(fh, fw, C, M)`` depthwise), ``strides``, ``dilations``, ``paddings`` (those to try) and
#: ``explicit`` (the EXPLICIT pads, asymmetric by default).
Geometry = PROBLEMS.Geometry


@dataclass
class Problem:
    """One op call, in TF terms, with everything the harness needs to run and check it.

    Raises ``ValueError`` on construction for an invalid combination (e.g. VALID with a filter
    larger than the input).
    """

    op: str
    geometry: Geometry
    padding: str
    data_format: str
    dtype: str
    options: dict = field(default_factory=dict)
    tag: str = ""

    def __post_init__(self):
        g = self.geometry
        nchw = self.data_format == "NCHW"
        self.strides4 = _spatial4(g.strides, nchw)
        self.dilations4 = _spatial4(g.dilations, nchw)
        self.explicit8 = _explicit8(g.explicit, nchw) if self.padding == "EXPLICIT" else []
        self.input_nhwc = tuple(g.input_shape)
        self.filter = tuple(g.filter_shape)
        self.input_shape = GEOMETRY.from_nhwc_shape(self.input_nhwc, self.data_format)
        self.dy_shape = tuple(
            GEOMETRY.out_backprop_shape(
                OPTABLE.OPS[self.op].tf_name,
                self.input_shape,
                self.filter,
                self.strides4,
                self.padding,
                self.explicit8,
                self.data_format,
                self.dilations4,
            )
        )
        self.geo = GEOMETRY.conv_geometry(
            self.input_nhwc[1:3],
            self.filter[:2],
            self.strides4,
            self.padding,
            self.explicit8,
            self.data_format,
            self.dilations4,
        )

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.op}-{self.geometry.name}-{self.padding}-{self.data_format}-{self.dtype}" + (
            f"[{opts}]" if opts else ""
        )

    @property
    def first_shape(self) -> tuple:
        """Shape of the operand besides dy: the filter for dbi, the input otherwise."""
        return self.filter if self.op == "dbi" else self.input_shape

    @property
    def out_shape(self) -> tuple:
        return self.input_shape if self.op == "dbi" else self.filter

    @functools.cached_property
    def c_shape(self) -> ConvShape:
        """The ``gpu::ConvShape`` of this call."""
        n, h, w, c = self.input_nhwc
        fh, fw, f_in, f_out = self.filter
        depthwise = OPTABLE.OPS[self.op].depthwise
        return ConvShape(
            batch=n,
            in_rows=h,
            in_cols=w,
            in_depth=c,
            filter_rows=fh,
            filter_cols=fw,
            groups=1 if depthwise else (c // f_in if f_in else 1),
            depth_multiplier=f_out if depthwise else 1,
            out_rows=self.geo.out_h,
            out_cols=self.geo.out_w,
            out_depth=c * f_out if depthwise else f_out,
            stride_rows=self.geo.stride_h,
            stride_cols=self.geo.stride_w,
            dilation_rows=self.geo.dilation_h,
            dilation_cols=self.geo.dilation_w,
            pad_top=self.geo.pad_top,
            pad_left=self.geo.pad_left,
            nchw=int(self.data_format == "NCHW"),
        )

    @functools.cached_property
    def c_options(self) -> LaunchOptions:
        """The ``gpu::LaunchOptions`` (``misalign`` is the harness's own, see ``Runner.run``)."""
        return LaunchOptions(**{k: int(v) for k, v in self.options.items() if k != "misalign"})

    def reference(self, first: np.ndarray, dy: np.ndarray, method: str = "einsum") -> np.ndarray:
        """float64 result from the float64 inputs (already rounded to the dtype).

        ``method``: the reference's formulation, ``"einsum"`` or ``"loops"``.
        """
        row = OPTABLE.OPS[self.op]
        sizes_and_operand = (
            (first, self.filter) if row.sizes == "filter_sizes" else (self.input_shape, first)
        )
        return getattr(REFERENCE, row.function)(
            *sizes_and_operand,
            dy,
            strides=self.strides4,
            padding=self.padding,
            explicit_paddings=self.explicit8,
            data_format=self.data_format,
            dilations=self.dilations4,
            method=method,
        )

    def macs(self) -> int:
        n, _, _, c = self.input_nhwc
        fh, fw, f_in, f_out = self.filter
        pixels = n * self.geo.out_h * self.geo.out_w
        if self.op == "cbf":
            return pixels * f_out * fh * fw * f_in
        return pixels * c * f_out * fh * fw

    def tensor_bytes(self) -> int:
        """Bytes of the two operands and the result: what one call must move at least."""
        shapes = (self.first_shape, self.dy_shape, self.out_shape)
        return itemsize(self.dtype) * sum(math.prod(s) for s in shapes)

    def with_batch(self, batch: int) -> Problem:
        """The same call on ``batch`` images (no options)."""
        g = self.geometry
        g = replace(g, input_shape=(batch, *g.input_shape[1:]))
        return Problem(self.op, g, self.padding, self.data_format, self.dtype)


def _spatial4(hw, nchw: bool) -> list[int]:
    return [1, 1, hw[0], hw[1]] if nchw else [1, hw[0], hw[1], 1]


def _explicit8(explicit, nchw: bool) -> list[int]:
    (top, bottom), (left, right) = explicit
    if nchw:
        return [0, 0, 0, 0, top, bottom, left, right]
    return [0, 0, top, bottom, left, right, 0, 0]


def make_inputs(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs in storage dtype (uniform in [-1, 1), never zeros), seeded by the id."""
    rng = np.random.default_rng(zlib.crc32(p.id.encode()))
    first = to_storage(rng.uniform(-1, 1, p.first_shape), p.dtype)
    dy = to_storage(rng.uniform(-1, 1, p.dy_shape), p.dtype)
    return first, dy
