"""The one problem type and the named tiers of problems (CUTLASS ``conv2d_problems.h`` style).

Tests, ``crosscheck``, ``bench`` and the GPU harness draw their convolution-gradient problems from
here. Pure Python: no TensorFlow, no NumPy, only relative imports of :mod:`.._geometry` and
:mod:`.._optable`, so the GPU harness can load it with the package's other pure modules.

API (stable):

* :class:`Problem`: one op on one geometry with one padding, frozen and hashable. Fields ``op``
  (``"cbf"``, ``"dbf"`` or ``"dbi"``), ``input_shape`` (NHWC), ``filter_shape`` (HWIO:
  ``(fh, fw, C / groups, Cout)`` for cbf, ``(fh, fw, C, M)`` depthwise), ``strides``,
  ``dilations`` (``(h, w)`` pairs), ``padding``, ``explicit`` (``((top, bottom), (left,
  right))``, zeros unless EXPLICIT), ``data_format`` (the layout its tensors are handed to the op
  in; shapes stay NHWC) and ``name``. Derived: ``id`` (``"dbf-dilated2-SAME"``), ``groups``,
  ``out_hw``, ``pads_before``, ``out_channels``, ``out_shape`` (NHWC), ``result_shape``,
  ``is_empty``, ``terms_per_output``, the TF arguments ``attrs()``, ``input_sizes``,
  ``filter_sizes``, ``out_backprop_sizes`` (in ``data_format``), and the readable, parseable
  string form ``str(p)`` / :meth:`Problem.parse` (``"n2 h9w7 c4 k3x3 m2 s2x1 d1x2 SAME NCHW"``).
* :class:`Geometry`: a table row, one geometry with the paddings it is tried with;
  ``Geometry.problems(op)`` gives its :class:`Problem` per padding (those with a valid size).
* :func:`tier` ``(name, ops=None) -> list[Problem]``, op by op in :data:`~.._optable.KEYS` order,
  for the names in :data:`TIERS`:

  - ``"awkward"``: small awkward problems (odd sizes, strides over the filter, big explicit pads,
    groups, empty tensors), every padding; the value tests' default tier.
  - ``"random"``: seeded random small geometries (:func:`random_problems`), ids spell them out.
  - ``"layers"``: MobileNetV2 / EfficientNet-B0 / ResNet-50 layers, batch reduced (2 to 8).
  - ``"streaming"``: DBI problems whose dx passes the CPU core's 4 MiB streaming threshold.
  - ``"grid_quick"``, ``"grid"``, ``"grid_full"``: ``crosscheck``'s tiers (quick, default, full):
    a sampler of every feature in both formats, ``grid_full`` adding layer-sized problems.
  - ``"bench_quick"``, ``"bench"``: the benchmark's layers at training batch (16 or 32).

* The plain tables behind the tiers: :data:`CBF_AWKWARD`, :data:`DW_AWKWARD`, :data:`CBF_LAYERS`,
  :data:`DW_LAYERS`, :data:`DBI_STREAMING` (:class:`Geometry` rows; ``DW_*`` serve both depthwise
  ops), :data:`GRID` and :data:`GRID_LAYERS` (config strings), :data:`BENCH_DEPTHWISE`,
  :data:`BENCH_CBF` and :data:`BENCH_QUICK` (tuples).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .._geometry import PADDINGS, ConvGeometry, conv_geometry, from_nhwc_shape
from .._optable import KEYS, OPS

__all__ = [
    "BENCH_CBF",
    "BENCH_DEPTHWISE",
    "BENCH_QUICK",
    "CBF_AWKWARD",
    "CBF_LAYERS",
    "DBI_STREAMING",
    "DW_AWKWARD",
    "DW_LAYERS",
    "GRID",
    "GRID_LAYERS",
    "TIERS",
    "Geometry",
    "Problem",
    "expand",
    "random_problems",
    "tier",
]

_NO_PADS = ((0, 0), (0, 0))
_Pair = tuple[int, int]


def _in_format(nhwc: Sequence[Any], data_format: str) -> list[Any]:
    """Four per-dimension values, NHWC order, in ``data_format`` order."""
    return list(from_nhwc_shape(nhwc, data_format))


@dataclasses.dataclass(frozen=True)
class Problem:
    """One op on one geometry with one padding; shapes NHWC / HWIO whatever ``data_format``.

    Attributes:
        op: ``"cbf"``, ``"dbf"`` or ``"dbi"`` (:data:`.._optable.OPS`).
        input_shape: ``(N, H, W, C)``.
        filter_shape: ``(fh, fw, C / groups, Cout)`` for cbf, ``(fh, fw, C, M)`` depthwise.
        strides: ``(row, column)``.
        dilations: ``(row, column)``.
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        explicit: ``((top, bottom), (left, right))``; zeros unless EXPLICIT.
        data_format: The layout the tensors are given to the op in: ``"NHWC"`` or ``"NCHW"``.
        name: What the geometry is (tests' ids, benchmark rows); may be empty.
    """

    op: str
    input_shape: tuple[int, int, int, int]
    filter_shape: tuple[int, int, int, int]
    strides: _Pair = (1, 1)
    dilations: _Pair = (1, 1)
    padding: str = "SAME"
    explicit: tuple[_Pair, _Pair] = _NO_PADS
    data_format: str = "NHWC"
    name: str = ""

    # ---------------------------------------------------------------------------------- sizes

    @property
    def id(self) -> str:
        """``"<op>-<name>-<padding>"``: the test id."""
        return f"{self.op}-{self.name}-{self.padding}"

    @property
    def groups(self) -> int:
        """Conv2DBackpropFilter's groups (``C / filter_shape[2]``); 1 for depthwise."""
        if self.op != "cbf" or self.filter_shape[2] == 0:
            return 1
        return self.input_shape[3] // self.filter_shape[2]

    @property
    def out_channels(self) -> int:
        """Depth of ``out_backprop``: Cout for cbf, ``C * M`` depthwise."""
        if self.op == "cbf":
            return self.filter_shape[3]
        return self.filter_shape[2] * self.filter_shape[3]

    @functools.cached_property
    def geometry(self) -> ConvGeometry:
        """Output size and padding (:func:`.._geometry.conv_geometry`); ValueError if invalid."""
        (top, bottom), (left, right) = self.explicit
        explicit = [0, 0, top, bottom, left, right, 0, 0] if self.padding == "EXPLICIT" else []
        return conv_geometry(
            self.input_shape[1:3],
            self.filter_shape[:2],
            [1, *self.strides, 1],
            self.padding,
            explicit,
            "NHWC",
            [1, *self.dilations, 1],
        )

    @property
    def out_hw(self) -> _Pair:
        return self.geometry.out_h, self.geometry.out_w

    @property
    def pads_before(self) -> _Pair:
        """``(top, left)`` padding as the ops compute it."""
        return self.geometry.pad_top, self.geometry.pad_left

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """Shape of ``out_backprop``, NHWC."""
        return (self.input_shape[0], *self.out_hw, self.out_channels)

    @property
    def result_shape(self) -> tuple[int, int, int, int]:
        """Shape of the op's result: NHWC for dbi, HWIO otherwise."""
        return self.input_shape if self.op == "dbi" else self.filter_shape

    @property
    def is_empty(self) -> bool:
        """Some operand or the result has no elements."""
        sizes = (self.input_shape, self.filter_shape, self.out_shape, self.result_shape)
        return any(0 in s for s in sizes)

    @property
    def terms_per_output(self) -> int:
        """Upper bound on the number of products summed into one result element."""
        if self.op == "dbi":
            return self.filter_shape[0] * self.filter_shape[1] * self.filter_shape[3]
        return self.input_shape[0] * self.out_hw[0] * self.out_hw[1]

    # ------------------------------------------------------------------------- TF's arguments

    def attrs(
        self, data_format: str | None = None, dilations: _Pair | None = None
    ) -> dict[str, Any]:
        """The op attributes in ``data_format`` (this problem's by default), other dilations
        optionally."""
        fmt = data_format or self.data_format
        (top, bottom), (left, right) = self.explicit
        explicit: list[int] = []
        if self.padding == "EXPLICIT":
            explicit = _in_format([(0, 0), (top, bottom), (left, right), (0, 0)], fmt)
            explicit = [p for pair in explicit for p in pair]
        return {
            "strides": _in_format([1, *self.strides, 1], fmt),
            "padding": self.padding,
            "explicit_paddings": explicit,
            "data_format": fmt,
            "dilations": _in_format([1, *(dilations or self.dilations), 1], fmt),
        }

    @property
    def input_sizes(self) -> list[int]:
        """The input shape in ``data_format``."""
        return _in_format(self.input_shape, self.data_format)

    @property
    def filter_sizes(self) -> list[int]:
        """The HWIO filter shape."""
        return list(self.filter_shape)

    @property
    def out_backprop_sizes(self) -> list[int]:
        """The ``out_backprop`` shape in ``data_format``."""
        return _in_format(self.out_shape, self.data_format)

    def with_format(self, data_format: str) -> Problem:
        """The same problem handed to the op in another data format."""
        return dataclasses.replace(self, data_format=data_format)

    # -------------------------------------------------------------------------- string form

    @classmethod
    def from_sizes(
        cls, op: str, n: int, h: int, w: int, c: int, kh: int, kw: int, out: int,
        groups: int = 1, strides: _Pair = (1, 1), dilations: _Pair = (1, 1),
        padding: str = "SAME", pads: tuple[int, int, int, int] = (0, 0, 0, 0),
        data_format: str = "NHWC", name: str = "",
    ) -> Problem:  # fmt: skip
        """A problem from scalar sizes: ``out`` is Cout for cbf and the depth multiplier for
        depthwise; ``pads`` is ``(top, bottom, left, right)``, used for EXPLICIT."""
        depth = c // groups if op == "cbf" else c
        explicit = ((pads[0], pads[1]), (pads[2], pads[3])) if padding == "EXPLICIT" else _NO_PADS
        return cls(op, (n, h, w, c), (kh, kw, depth, out), tuple(strides), tuple(dilations),
                   padding, explicit, data_format, name)  # fmt: skip

    _TOKENS = re.compile(
        r"n(?P<n>\d+)|h(?P<h>\d+)w(?P<w>\d+)|c(?P<c>\d+)|k(?P<kh>\d+)x(?P<kw>\d+)|o(?P<o>\d+)"
        r"|g(?P<g>\d+)|m(?P<m>\d+)|s(?P<sh>\d+)x(?P<sw>\d+)|d(?P<dh>\d+)x(?P<dw>\d+)"
        r"|(?P<padding>SAME|VALID)|EXPLICIT\[(?P<pads>\d+,\d+,\d+,\d+)\]|(?P<fmt>NHWC|NCHW)"
    )

    @classmethod
    def parse(cls, op: str, text: str, name: str = "") -> Problem:
        """Parses a string such as ``"n2 h9w7 c4 k3x3 m2 s2x1 d1x2 SAME NCHW"``.

        Tokens: ``n`` batch, ``hHwW`` input size, ``c`` input depth, ``kHxW`` filter, ``o`` output
        depth and ``g`` groups (cbf), ``m`` depth multiplier (depthwise), ``sHxW`` strides,
        ``dHxW`` dilations, ``SAME``/``VALID``/``EXPLICIT[t,b,l,r]``, ``NHWC``/``NCHW``.
        Strides, dilations, groups, padding and format have defaults.

        Raises:
            ValueError: On an unknown token or a missing size.
        """
        fields: dict[str, Any] = {}
        for token in text.split():
            match = cls._TOKENS.fullmatch(token)
            if match is None:
                raise ValueError(f"unknown token {token!r} in configuration {text!r}")
            groups = {k: v for k, v in match.groupdict().items() if v is not None}
            for key in ("n", "h", "w", "c", "kh", "kw"):
                if key in groups:
                    fields[key] = int(groups[key])
            if "o" in groups or "m" in groups:
                fields["out"] = int(groups.get("o", groups.get("m")))
            if "g" in groups:
                fields["groups"] = int(groups["g"])
            if "sh" in groups:
                fields["strides"] = (int(groups["sh"]), int(groups["sw"]))
            if "dh" in groups:
                fields["dilations"] = (int(groups["dh"]), int(groups["dw"]))
            if "padding" in groups:
                fields["padding"] = groups["padding"]
            if "pads" in groups:
                fields["padding"] = "EXPLICIT"
                fields["pads"] = tuple(int(p) for p in groups["pads"].split(","))
            if "fmt" in groups:
                fields["data_format"] = groups["fmt"]
        missing = {"n", "h", "w", "c", "kh", "kw", "out"} - set(fields)
        if missing:
            raise ValueError(f"configuration {text!r} lacks {sorted(missing)}")
        return cls.from_sizes(op, name=name, **fields)

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``."""
        (top, bottom), (left, right) = self.explicit
        return top, bottom, left, right

    def __str__(self) -> str:
        n, h, w, c = self.input_shape
        kh, kw, _, out = self.filter_shape
        if self.op == "cbf":
            channels = f"o{out}" + (f" g{self.groups}" if self.groups != 1 else "")
        else:
            channels = f"m{out}"
        padding = self.padding
        if padding == "EXPLICIT":
            padding = "EXPLICIT[{},{},{},{}]".format(*self.pads)
        return (
            f"n{n} h{h}w{w} c{c} k{kh}x{kw} {channels} s{self.strides[0]}x{self.strides[1]} "
            f"d{self.dilations[0]}x{self.dilations[1]} {padding} {self.data_format}"
        )


@dataclasses.dataclass(frozen=True)
class Geometry:
    """A table row: one geometry and the paddings it is tried with (NHWC / HWIO).

    Attributes:
        name: What is awkward or real about it; part of the problems' ids.
        input_shape: ``(N, H, W, C)``.
        filter_shape: HWIO, as for :class:`Problem`.
        strides: ``(row, column)``.
        dilations: ``(row, column)``.
        paddings: The paddings to try.
        explicit: The pads for EXPLICIT, ``((top, bottom), (left, right))``.
    """

    name: str
    input_shape: tuple[int, int, int, int]
    filter_shape: tuple[int, int, int, int]
    strides: _Pair = (1, 1)
    dilations: _Pair = (1, 1)
    paddings: tuple[str, ...] = PADDINGS
    explicit: tuple[_Pair, _Pair] = ((1, 2), (2, 0))  # asymmetric on purpose

    def problem(self, op: str, padding: str) -> Problem | None:
        """The problem for one padding, or None where that padding gives no valid output size."""
        problem = Problem(
            op, tuple(self.input_shape), tuple(self.filter_shape), tuple(self.strides),
            tuple(self.dilations), padding,
            self.explicit if padding == "EXPLICIT" else _NO_PADS, "NHWC", self.name,
        )  # fmt: skip
        try:
            problem.geometry  # noqa: B018 -- validates the sizes
        except ValueError:
            return None
        return problem

    def problems(self, op: str) -> list[Problem]:
        """One :class:`Problem` per padding that gives a valid output size."""
        found = (self.problem(op, padding) for padding in self.paddings)
        return [p for p in found if p is not None]


def expand(op: str, geometries: Iterable[Geometry]) -> list[Problem]:
    """The problems of ``op`` on every geometry and padding."""
    return [p for geometry in geometries for p in geometry.problems(op)]


G = Geometry

# ------------------------------------------------------------------------------------------------
# "awkward": small awkward problems

#: Conv2DBackpropFilter. filter_shape = (fh, fw, C / groups, Cout).
CBF_AWKWARD = (
    G("1x1", (2, 5, 5, 3), (1, 1, 3, 4)),
    G("1x1_stride2_gt_filter", (2, 6, 5, 3), (1, 1, 3, 2), strides=(2, 2)),
    G("filter_eq_input", (2, 4, 3, 2), (4, 3, 2, 3), explicit=((0, 0), (0, 0))),
    G("stride3_gt_filter2", (1, 9, 8, 2), (2, 2, 2, 3), strides=(3, 3)),
    G("odd_3x5_filter_odd_hw", (3, 7, 9, 5), (3, 5, 5, 3), strides=(2, 1)),
    G("batch1_one_channel", (1, 6, 6, 1), (3, 3, 1, 1)),
    G("unequal_strides", (2, 8, 7, 3), (3, 2, 3, 2), strides=(1, 3)),
    G("dilated2", (2, 7, 8, 2), (3, 3, 2, 2), dilations=(2, 2)),
    G("unequal_strides_dilated", (2, 9, 10, 3), (2, 3, 3, 2), strides=(2, 1), dilations=(1, 3)),
    G("stride2_dilated2", (1, 9, 9, 2), (3, 3, 2, 3), strides=(2, 2), dilations=(2, 2)),
    G("grouped_g3", (2, 5, 6, 6), (3, 3, 2, 6)),
    G("grouped_per_channel_g4", (1, 5, 5, 4), (3, 3, 1, 8), strides=(2, 1)),
    G("grouped_dilated_g2", (2, 6, 7, 4), (2, 2, 2, 4), dilations=(2, 1),
      explicit=((0, 3), (1, 0))),
    G("filter_gt_input", (1, 2, 3, 2), (4, 4, 2, 1), paddings=("SAME", "EXPLICIT"),
      explicit=((2, 1), (0, 3))),
    G("explicit_big_asym_stride3", (2, 5, 4, 2), (2, 3, 2, 3), strides=(3, 2),
      explicit=((0, 3), (4, 0))),
    G("many_out_channels", (1, 4, 4, 2), (2, 2, 2, 17)),
    G("pads_gt_filter", (1, 4, 4, 2), (2, 2, 2, 3), paddings=("EXPLICIT",),
      explicit=((3, 4), (5, 2))),
    G("stride_gt_input", (2, 3, 3, 2), (2, 2, 2, 2), strides=(4, 5)),
    G("1x7_filter", (1, 5, 11, 3), (1, 7, 3, 2)),
    G("7x1_filter_dilated2", (1, 15, 4, 2), (7, 1, 2, 2), dilations=(2, 1)),
    G("medium_c19_to_c23", (3, 13, 17, 19), (3, 3, 19, 23)),
    G("medium_c33_to_c35_s2", (2, 11, 13, 33), (3, 3, 33, 35), strides=(2, 2)),
    G("medium_grouped_g4", (2, 9, 11, 32), (3, 3, 8, 12)),
    G("1x1_grouped_g2", (2, 5, 6, 4), (1, 1, 2, 6)),
    G("cout300_tiled", (1, 3, 4, 2), (2, 2, 2, 300)),
    # fh*fw*C = 36864 columns: an im2col chunk of 8 MiB holds < 64 rows, so 121+ output
    # positions span several chunks.
    G("c4096_many_chunks", (1, 11, 11, 4096), (3, 3, 4096, 2)),
    G("empty_batch", (0, 5, 5, 3), (3, 3, 3, 2)),
    G("empty_out_channels", (2, 4, 4, 3), (2, 2, 3, 0)),
    G("empty_out_spatial_valid", (2, 2, 2, 3), (3, 3, 3, 4), strides=(2, 2), paddings=("VALID",)),
    G("empty_input_rows_same", (1, 0, 4, 2), (3, 3, 2, 2), paddings=("SAME",)),
)  # fmt: skip

#: Depthwise (both ops). filter_shape = (fh, fw, C, M).
DW_AWKWARD = (
    G("1x1_m1", (2, 5, 5, 3), (1, 1, 3, 1)),
    G("1x1_m4_stride2", (2, 6, 5, 3), (1, 1, 3, 4), strides=(2, 2)),
    G("filter_eq_input", (1, 4, 5, 2), (4, 5, 2, 2), explicit=((0, 0), (0, 0))),
    G("stride3_gt_filter2", (2, 9, 9, 3), (2, 2, 3, 1), strides=(3, 3)),
    G("odd_3x5_filter_odd_hw", (3, 7, 9, 5), (3, 5, 5, 2), strides=(2, 2)),
    G("batch1_one_channel", (1, 6, 6, 1), (3, 3, 1, 1)),
    G("one_channel_m16", (1, 5, 6, 1), (3, 3, 1, 16)),
    G("m8", (2, 4, 4, 3), (2, 2, 3, 8)),
    G("unequal_strides", (2, 8, 7, 3), (3, 3, 3, 2), strides=(1, 2)),
    G("dilated2", (2, 7, 8, 2), (3, 3, 2, 2), dilations=(2, 2)),
    G("unequal_strides_dilated", (2, 9, 10, 3), (2, 3, 3, 2), strides=(2, 1), dilations=(1, 3)),
    G("stride2_dilated2", (1, 9, 9, 2), (3, 3, 2, 1), strides=(2, 2), dilations=(2, 2)),
    G("filter_gt_input", (1, 2, 3, 2), (4, 4, 2, 1), paddings=("SAME", "EXPLICIT"),
      explicit=((2, 1), (0, 3))),
    G("explicit_big_asym_stride3", (2, 5, 4, 2), (2, 3, 2, 2), strides=(3, 3),
      explicit=((0, 3), (4, 0))),
    G("many_channels_17", (1, 4, 5, 17), (3, 3, 17, 1)),
    G("pads_gt_filter", (1, 4, 4, 2), (2, 2, 2, 3), paddings=("EXPLICIT",),
      explicit=((3, 4), (5, 2))),
    G("stride_gt_input", (2, 3, 3, 2), (2, 2, 2, 2), strides=(4, 5)),
    G("1x7_filter", (1, 5, 11, 3), (1, 7, 3, 2)),
    G("7x1_filter_dilated2", (1, 15, 4, 2), (7, 1, 2, 2), dilations=(2, 1)),
    G("medium_c33_m3", (2, 11, 13, 33), (3, 3, 33, 3)),
    G("medium_c64_s2", (2, 16, 16, 64), (3, 3, 64, 1), strides=(2, 2)),
    G("medium_5x5_c24", (1, 12, 12, 24), (5, 5, 24, 1)),
    G("multiplier0", (2, 4, 4, 2), (3, 3, 2, 0)),
    G("empty_batch", (0, 5, 5, 2), (3, 3, 2, 2)),
    G("empty_channels", (1, 4, 4, 0), (3, 3, 0, 2), paddings=("SAME",)),
    G("empty_out_spatial_valid", (1, 2, 2, 2), (3, 3, 2, 2), strides=(2, 2), paddings=("VALID",)),
)  # fmt: skip

# ------------------------------------------------------------------------------------------------
# "layers": real layer shapes, batch reduced (the float64 reference and TF's slow 16-bit kernels
# stay affordable on two cores)

_S2 = {"strides": (2, 2)}
_SAME, _VALID = {"paddings": ("SAME",)}, {"paddings": ("VALID",)}
_PAD3 = {"paddings": ("EXPLICIT",), "explicit": ((3, 3), (3, 3))}  # Keras ZeroPadding2D(3)
_PAD01 = {"paddings": ("EXPLICIT",), "explicit": ((0, 1), (0, 1))}  # Keras correct_pad, stride 2
_DIL2_PAD2 = {"dilations": (2, 2), "paddings": ("EXPLICIT",), "explicit": ((2, 2), (2, 2))}

CBF_LAYERS = (
    G("rn50_stem_230x230x3_k7_s2", (2, 230, 230, 3), (7, 7, 3, 64), **_S2, **_VALID),
    G("rn50_stem_224x224x3_k7_s2_pad3", (2, 224, 224, 3), (7, 7, 3, 64), **_S2, **_PAD3),
    G("rn50_56x56x64_k3", (2, 56, 56, 64), (3, 3, 64, 64), **_SAME),
    G("rn50_56x56x64_to_256_k1", (2, 56, 56, 64), (1, 1, 64, 256), **_SAME),
    G("rn50_56x56x256_to_64_k1", (2, 56, 56, 256), (1, 1, 256, 64), **_SAME),
    G("rn50_56x56x256_to_512_k1_s2", (2, 56, 56, 256), (1, 1, 256, 512), **_S2, **_SAME),
    G("rn50_56x56x128_k3_s2", (2, 56, 56, 128), (3, 3, 128, 128), **_S2, **_SAME),
    G("rn50_28x28x128_k3_batch8", (8, 28, 28, 128), (3, 3, 128, 128), **_SAME),
    G("rn50_14x14x256_k3", (4, 14, 14, 256), (3, 3, 256, 256), **_SAME),
    G("rn50_14x14x1024_to_256_k1", (4, 14, 14, 1024), (1, 1, 1024, 256), **_SAME),
    G("rn50_7x7x512_to_2048_k1", (4, 7, 7, 512), (1, 1, 512, 2048), **_SAME),
    G("valid_30x30x128_k3", (2, 30, 30, 128), (3, 3, 128, 128), **_VALID),
    G("resnext_28x28x128_g32_k3", (2, 28, 28, 128), (3, 3, 4, 128), **_SAME),
    G("dilated_28x28x64_k3_d2", (2, 28, 28, 64), (3, 3, 64, 64), **_DIL2_PAD2),
)

DW_LAYERS = (
    G("mbv2_112x112x32_k3", (2, 112, 112, 32), (3, 3, 32, 1), **_SAME),
    G("mbv2_113x113x96_k3_s2_keras_pad", (2, 113, 113, 96), (3, 3, 96, 1), **_S2, **_VALID),
    G("mbv2_112x112x96_k3_s2_pad01", (2, 112, 112, 96), (3, 3, 96, 1), **_S2, **_PAD01),
    G("mbv2_56x56x144_k3_s2", (2, 56, 56, 144), (3, 3, 144, 1), **_S2, **_SAME),
    G("mbv2_28x28x192_k3", (4, 28, 28, 192), (3, 3, 192, 1), **_SAME),
    G("mbv2_29x29x192_k3_s2_keras_pad", (4, 29, 29, 192), (3, 3, 192, 1), **_S2, **_VALID),
    G("mbv2_14x14x576_k3", (4, 14, 14, 576), (3, 3, 576, 1), **_SAME),
    G("mbv2_7x7x960_k3", (4, 7, 7, 960), (3, 3, 960, 1), **_SAME),
    G("effb0_56x56x144_k5_s2", (2, 56, 56, 144), (5, 5, 144, 1), **_S2, **_SAME),
    G("effb0_28x28x240_k5", (2, 28, 28, 240), (5, 5, 240, 1), **_SAME),
    G("effb0_14x14x672_k5_s2", (4, 14, 14, 672), (5, 5, 672, 1), **_S2, **_SAME),
    G("effb0_7x7x1152_k5", (4, 7, 7, 1152), (5, 5, 1152, 1), **_SAME),
    G("mult2_56x56x32_k3", (2, 56, 56, 32), (3, 3, 32, 2), **_SAME),
    G("mult2_28x28x96_k3_s2", (4, 28, 28, 96), (3, 3, 96, 2), **_S2, **_SAME),
    G("mult2_14x14x192_k5_valid", (4, 14, 14, 192), (5, 5, 192, 2), **_VALID),
    G("unequal_strides_56x56x64_s2x1", (2, 56, 56, 64), (3, 3, 64, 1), strides=(2, 1), **_SAME),
    G("dilated_28x28x64_k3_d2", (2, 28, 28, 64), (3, 3, 64, 1), **_DIL2_PAD2),
)

#: "streaming" (DBI only): dx over the CPU core's 4 MiB streaming threshold in every dtype
#: (kStreamBytes in depthwise_backprop_input_cpu.cc), NHWC: non-temporal stores of whole lines
#: (float32, float64), 16-bit channel-block pairs at stride 1 (nb even) and at stride 2 (all
#: blocks per call), 16-bit half lines (nb odd), and 16-bit cached stores where the packed rows
#: are too large for pairs (k7).
DBI_STREAMING = (
    G("stream_14x14x384_k3", (32, 14, 14, 384), (3, 3, 384, 1), **_SAME),
    G("stream_29x29x192_k3_s2", (32, 29, 29, 192), (3, 3, 192, 1), **_S2, **_VALID),
    G("stream_56x56x144_k3_s2", (16, 56, 56, 144), (3, 3, 144, 1), **_S2, **_SAME),
    G("stream_28x28x192_k7", (16, 28, 28, 192), (7, 7, 192, 1), **_SAME),
)


# ------------------------------------------------------------------------------------------------
# "random": seeded random small geometries, to reach combinations nobody wrote down


def random_problems(op: str, count: int, seed: int) -> list[Problem]:
    """``count`` valid random small problems of ``op``; the name spells the whole geometry
    (``rand07_b2_9x4_c6g3o6_k3x2_s1x2_d2x1_p0312``), so a failure reproduces from its id."""
    rng = random.Random(seed)
    problems: list[Problem] = []
    while len(problems) < count:
        batch = rng.choice((0, 1, 1, 2, 2, 3)) if rng.random() < 0.9 else 0
        height, width = rng.randint(1, 11), rng.randint(1, 11)
        fh, fw = rng.randint(1, 4), rng.randint(1, 4)
        strides = (rng.randint(1, 4), rng.randint(1, 4))
        dilations = (rng.choice((1, 1, 2, 3)), rng.choice((1, 1, 2, 3)))
        explicit = tuple((rng.randint(0, 4), rng.randint(0, 4)) for _ in range(2))
        padding = rng.choice(PADDINGS)
        if op == "cbf":
            groups = rng.choice((1, 1, 2, 3))
            cin_f, cout = rng.randint(1, 5), groups * rng.randint(1, 5)
            channels, filter_shape = groups * cin_f, (fh, fw, cin_f, cout)
            depth = f"c{channels}g{groups}o{cout}"
        else:
            channels, mult = rng.randint(1, 9), rng.choice((1, 1, 2, 3, 5))
            filter_shape = (fh, fw, channels, mult)
            depth = f"c{channels}m{mult}"
        name = (
            f"rand{len(problems):02d}_b{batch}_{height}x{width}_{depth}_k{fh}x{fw}"
            f"_s{strides[0]}x{strides[1]}_d{dilations[0]}x{dilations[1]}"
        )
        if padding == "EXPLICIT":
            name += "_p" + "".join(str(p) for pair in explicit for p in pair)
        geometry = Geometry(name, (batch, height, width, channels), filter_shape, strides,
                            dilations, (padding,), explicit)  # fmt: skip
        problem = geometry.problem(op, padding)
        if problem is not None:
            problems.append(problem)
    return problems


#: (count, seed) of each op's random problems.
_RANDOM = {"cbf": (60, 1), "dbf": (60, 2), "dbi": (60, 3)}


# ------------------------------------------------------------------------------------------------
# "grid_quick" / "grid" / "grid_full": crosscheck's sampler, written as config strings.

#: Geometry, cbf channels, depthwise channels, in "grid_quick".
GRID: tuple[tuple[str, str, str, bool], ...] = (
    ("n2 h5w5 c3 k3x3 s1x1 d1x1 SAME NHWC", "o4", "m1", True),
    ("n2 h6w5 c3 k3x3 s1x1 d1x1 VALID NHWC", "o2", "m2", False),
    ("n1 h9w7 c4 k3x3 s2x2 d1x1 SAME NHWC", "o6 g2", "m3", True),
    ("n2 h8w8 c4 k2x2 s2x2 d1x1 VALID NHWC", "o4 g4", "m1", False),
    ("n2 h7w9 c2 k3x1 s1x2 d1x1 SAME NHWC", "o3", "m2", True),
    ("n1 h10w6 c3 k1x3 s3x1 d1x1 VALID NHWC", "o5", "m1", False),
    ("n2 h9w7 c4 k3x3 s1x1 d2x2 SAME NHWC", "o4", "m2", True),
    ("n1 h11w9 c2 k3x2 s1x1 d2x3 VALID NHWC", "o3", "m1", False),
    ("n2 h9w7 c4 k3x3 s2x1 d1x2 SAME NHWC", "o8 g2", "m2", False),
    ("n2 h6w7 c3 k3x3 s1x1 d1x1 EXPLICIT[1,2,0,3] NHWC", "o4", "m1", True),
    ("n1 h8w9 c4 k3x2 s2x2 d1x1 EXPLICIT[2,0,1,1] NHWC", "o2", "m3", False),
    ("n2 h7w7 c2 k2x3 s2x1 d2x1 EXPLICIT[0,3,2,1] NHWC", "o4 g2", "m2", False),
    ("n3 h1w1 c3 k1x1 s1x1 d1x1 SAME NHWC", "o2", "m2", False),
    ("n2 h4w4 c5 k4x4 s1x1 d1x1 VALID NHWC", "o3", "m1", False),
    ("n1 h5w5 c3 k1x1 s2x2 d1x1 SAME NHWC", "o4", "m1", False),
    ("n2 h3w4 c2 k5x5 s1x1 d1x1 SAME NHWC", "o3", "m2", False),
    ("n4 h14w14 c16 k3x3 s1x1 d1x1 SAME NHWC", "o16", "m1", False),
    ("n2 h17w15 c8 k5x5 s2x2 d1x1 SAME NHWC", "o8", "m2", False),
    ("n2 h5w5 c3 k3x3 s1x1 d1x1 SAME NCHW", "o4", "m1", True),
    ("n1 h9w7 c4 k3x3 s2x2 d1x1 SAME NCHW", "o6 g2", "m3", False),
    ("n2 h7w9 c2 k3x1 s1x2 d1x1 VALID NCHW", "o3", "m2", True),
    ("n2 h9w7 c4 k3x3 s1x1 d2x2 SAME NCHW", "o4", "m2", False),
    ("n2 h6w7 c3 k3x3 s1x1 d1x1 EXPLICIT[1,2,0,3] NCHW", "o6 g3", "m1", False),
    ("n1 h8w6 c2 k2x3 s2x1 d2x1 EXPLICIT[3,0,1,2] NCHW", "o2", "m3", True),
    ("n3 h12w10 c6 k3x3 s2x2 d1x1 VALID NCHW", "o6 g3", "m2", False),
    # Empty problems: zero batch, and a VALID output of size 0 (filter larger than the input).
    ("n0 h5w5 c3 k3x3 s1x1 d1x1 SAME NHWC", "o4", "m2", True),
    ("n0 h6w6 c4 k3x3 s2x2 d1x1 SAME NCHW", "o4 g2", "m1", False),
    ("n2 h2w2 c3 k3x3 s1x1 d1x1 VALID NHWC", "o4", "m1", True),
)

#: Op-specific extras of "grid" (empty channel dimensions), full config strings.
_GRID_EXTRAS = {
    "cbf": ("n1 h2w3 c1 k2x2 o0 s1x1 d1x1 VALID NHWC",),
    "dbf": (),
    "dbi": ("n2 h5w5 c3 k3x3 m0 s1x1 d1x1 SAME NHWC",),
}

#: Layer-sized problems of "grid_full" (MobileNetV2 / EfficientNet / ResNet shapes, batch
#: reduced): geometry, cbf channels, depthwise channels.
GRID_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("n4 h56w56 c24 k3x3 s1x1 d1x1 SAME NHWC", "o24", "m1"),
    ("n4 h57w57 c32 k3x3 s2x2 d1x1 VALID NHWC", "o32", "m1"),
    ("n2 h28w28 c40 k5x5 s1x1 d1x1 SAME NHWC", "o40", "m2"),
    ("n2 h29w29 c48 k5x5 s2x2 d1x1 VALID NCHW", "o48 g4", "m1"),
    ("n4 h14w14 c64 k3x3 s1x1 d2x2 SAME NHWC", "o64", "m1"),
    ("n2 h28w28 c64 k1x1 s1x1 d1x1 SAME NHWC", "o128", "m1"),
    ("n2 h30w30 c16 k7x7 s2x2 d1x1 EXPLICIT[3,3,3,3] NHWC", "o32", "m2"),
    ("n4 h16w16 c32 k3x3 s2x1 d1x2 SAME NCHW", "o32 g8", "m1"),
)


def _grid(op: str, quick: bool, full: bool) -> list[Problem]:
    def parse(geometry: str, cbf: str, dw: str) -> Problem:
        tokens = geometry.split()
        channels = (cbf if op == "cbf" else dw).split()
        return Problem.parse(op, " ".join(tokens[:5] + channels + tokens[5:]))

    problems = [parse(g, cbf, dw) for g, cbf, dw, in_quick in GRID if in_quick or not quick]
    if not quick:
        problems += [Problem.parse(op, text) for text in _GRID_EXTRAS[op]]
    if full:
        problems += [parse(*row) for row in GRID_LAYERS]
    return problems


# ------------------------------------------------------------------------------------------------
# "bench_quick" / "bench": the benchmark's layers at training batch, square filters and strides

#: Depthwise layers (both ops): name, batch, h, w, c, k, stride, multiplier, padding.
BENCH_DEPTHWISE = (
    ("mbv2 112x112x32 k3", 16, 112, 112, 32, 3, 1, 1, "SAME"),
    ("mbv2 113x113x96 k3 s2 (pad+VALID)", 16, 113, 113, 96, 3, 2, 1, "VALID"),
    ("mbv2 56x56x144 k3", 16, 56, 56, 144, 3, 1, 1, "SAME"),
    ("mbv2 56x56x144 k3 s2", 16, 56, 56, 144, 3, 2, 1, "SAME"),
    ("mbv2 28x28x192 k3", 32, 28, 28, 192, 3, 1, 1, "SAME"),
    ("mbv2 29x29x192 k3 s2 (pad+VALID)", 32, 29, 29, 192, 3, 2, 1, "VALID"),
    ("mbv2 14x14x384 k3", 32, 14, 14, 384, 3, 1, 1, "SAME"),
    ("mbv2 14x14x576 k3", 32, 14, 14, 576, 3, 1, 1, "SAME"),
    ("mbv2 14x14x576 k3 s2", 32, 14, 14, 576, 3, 2, 1, "SAME"),
    ("mbv2 7x7x960 k3", 32, 7, 7, 960, 3, 1, 1, "SAME"),
    ("effb0 56x56x144 k5 s2", 16, 56, 56, 144, 5, 2, 1, "SAME"),
    ("effb0 28x28x240 k5", 32, 28, 28, 240, 5, 1, 1, "SAME"),
    ("effb0 14x14x672 k5", 32, 14, 14, 672, 5, 1, 1, "SAME"),
    ("effb0 14x14x672 k5 s2", 32, 14, 14, 672, 5, 2, 1, "SAME"),
    ("effb0 7x7x1152 k5", 32, 7, 7, 1152, 5, 1, 1, "SAME"),
    ("k7 28x28x192", 32, 28, 28, 192, 7, 1, 1, "SAME"),
    ("k7 14x14x384 s2", 32, 14, 14, 384, 7, 2, 1, "SAME"),
    ("batch1 112x112x32 k3", 1, 112, 112, 32, 3, 1, 1, "SAME"),
    ("batch1 14x14x672 k5", 1, 14, 14, 672, 5, 1, 1, "SAME"),
    ("mult2 56x56x32 k3", 16, 56, 56, 32, 3, 1, 2, "SAME"),
    ("mult2 28x28x96 k3 s2", 32, 28, 28, 96, 3, 2, 2, "SAME"),
    ("mult2 14x14x192 k5 VALID", 32, 14, 14, 192, 5, 1, 2, "VALID"),
)

#: Conv2DBackpropFilter layers (ResNet-50): name, batch, h, w, c, k, stride, Cout, padding.
BENCH_CBF = (
    ("rn50 stem 230x230x3->64 k7 s2 (pad+VALID)", 8, 230, 230, 3, 7, 2, 64, "VALID"),
    ("rn50 56x56x64->64 k3", 16, 56, 56, 64, 3, 1, 64, "SAME"),
    ("rn50 56x56x64->256 k1", 16, 56, 56, 64, 1, 1, 256, "SAME"),
    ("rn50 56x56x256->64 k1", 16, 56, 56, 256, 1, 1, 64, "SAME"),
    ("rn50 56x56x256->512 k1 s2", 16, 56, 56, 256, 1, 2, 512, "SAME"),
    ("rn50 56x56x128->128 k3 s2", 16, 56, 56, 128, 3, 2, 128, "SAME"),
    ("rn50 28x28x128->128 k3", 16, 28, 28, 128, 3, 1, 128, "SAME"),
    ("rn50 14x14x256->256 k3", 32, 14, 14, 256, 3, 1, 256, "SAME"),
    ("rn50 14x14x1024->256 k1", 32, 14, 14, 1024, 1, 1, 256, "SAME"),
    ("rn50 7x7x512->512 k3", 32, 7, 7, 512, 3, 1, 512, "SAME"),
    ("rn50 7x7x512->2048 k1", 32, 7, 7, 512, 1, 1, 2048, "SAME"),
)

#: The layers of "bench_quick".
BENCH_QUICK = frozenset(
    {"mbv2 56x56x144 k3", "effb0 14x14x672 k5", "mult2 56x56x32 k3", "rn50 28x28x128->128 k3"}
)


def _bench(op: str, quick: bool) -> list[Problem]:
    table = BENCH_CBF if op == "cbf" else BENCH_DEPTHWISE
    return [
        Problem.from_sizes(op, n, h, w, c, k, k, out, strides=(s, s), padding=pad, name=name)
        for name, n, h, w, c, k, s, out, pad in table
        if name in BENCH_QUICK or not quick
    ]


# ------------------------------------------------------------------------------------------------
# Tiers

_TIERS = {
    "awkward": lambda op: expand(op, CBF_AWKWARD if op == "cbf" else DW_AWKWARD),
    "random": lambda op: random_problems(op, *_RANDOM[op]),
    "layers": lambda op: expand(op, CBF_LAYERS if op == "cbf" else DW_LAYERS),
    "streaming": lambda op: expand(op, DBI_STREAMING) if op == "dbi" else [],
    "grid_quick": lambda op: _grid(op, quick=True, full=False),
    "grid": lambda op: _grid(op, quick=False, full=False),
    "grid_full": lambda op: _grid(op, quick=False, full=True),
    "bench_quick": lambda op: _bench(op, quick=True),
    "bench": lambda op: _bench(op, quick=False),
}

#: The tier names.
TIERS = tuple(_TIERS)


def tier(name: str, ops: Sequence[str] | None = None) -> list[Problem]:
    """The problems of a tier, op by op.

    Args:
        name: One of :data:`TIERS`.
        ops: Op keys (``"cbf"``, ``"dbf"``, ``"dbi"``), in the order wanted; all three, in
            :data:`.._optable.KEYS` order, by default.

    Returns:
        The problems (NHWC unless the tier's table says NCHW).

    Raises:
        ValueError: On an unknown tier or op.
    """
    if name not in _TIERS:
        raise ValueError(f"unknown tier {name!r}; expected one of {TIERS}")
    for op in ops or ():
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; expected one of {KEYS}")
    return [p for op in ops or KEYS for p in _TIERS[name](op)]
