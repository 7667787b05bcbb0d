"""``python -m tf_convgrad crosscheck``: cross-check convolution-gradient kernels against float64.

Runs Conv2DBackpropFilter (CBF), DepthwiseConv2dNativeBackpropFilter (DBF) and
DepthwiseConv2dNativeBackpropInput (DBI) over a grid of configurations (built-in tiers or a JSON
file) and dtypes, with these implementations on the same inputs:

* **ours**: tf_convgrad's ops, in this process, on the CPU (and, as **ours GPU**, placed on the
  GPU when one is selected; the kernel column shows where they actually ran);
* **TF native**: ``tf.raw_ops`` with TF's own CPU kernels (``TF_ENABLE_ONEDNN_OPTS=0``);
* **TF oneDNN**: ``tf.raw_ops`` with oneDNN (``=1``), where TF rewrites the op to ``_MklNative*``;
* **TF GPU**: ``tf.raw_ops`` on TF's GPU kernels (cuDNN or TF's own), when TF sees a GPU.

Each TF implementation runs in its own worker process (:mod:`.oracle`; a crash is reported, not
suffered). Every result is compared with a float64 NumPy reference (:mod:`.reference`) computed on
the same dtype-rounded inputs, so the error measures the kernel alone:

* ``abs``: ``max|x - ref|``;
* ``rel``: ``max|x - ref| / max|ref|`` (norm-relative; decides pass/fail for ours, against
  :data:`TOLERANCES`, and classifies TF's results against the same thresholds);
* ``ulp``: the largest distance, in units in the last place of the dtype, between an element and
  the reference rounded to the dtype (0 = correctly rounded; for float64 the reference carries its
  own rounding error of a few ulp);
* ``det``: whether ``--repeats`` runs gave bitwise identical results;
* ``kernel``: which kernel TF actually ran, read from the run metadata of the executed graph.

Usage::

    python -m tf_convgrad crosscheck                    # default tier, all ops and dtypes
    python -m tf_convgrad crosscheck --quick            # = --tier quick
    python -m tf_convgrad crosscheck --op DBF --dtype bf16 --format NCHW --tier full
    python -m tf_convgrad crosscheck --configs my.json --json > report.json
    python -m tf_convgrad crosscheck --list --json > grid.json   # a template for --configs
    python -m tf_convgrad crosscheck --model mobilenet_v2   # a whole model: see .model_check

The table (or JSON) goes to stdout, progress to stderr. Exit code 0: all of ours pass; 1: some of
ours fail; 2: nothing ran (bad arguments, no configuration, library not loadable).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np

from .. import _cli
from . import oracle, reference
from .metrics import DTYPES, TOLERANCES, abs_error, relative_error, round_to, ulp_distance

__all__ = [
    "Config",
    "Progress",
    "TIERS",
    "add_arguments",
    "build_grid",
    "load_configs",
    "main",
    "run",
    "run_grid",
]


#: The built-in grids, smallest first.
TIERS = ("quick", "default", "full")

_OP_SHORT = {
    "Conv2DBackpropFilter": "CBF",
    "DepthwiseConv2dNativeBackpropFilter": "DBF",
    "DepthwiseConv2dNativeBackpropInput": "DBI",
}
_DTYPE_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
_REFERENCE_FUNCTIONS = {
    "Conv2DBackpropFilter": reference.conv2d_backprop_filter,
    "DepthwiseConv2dNativeBackpropFilter": reference.depthwise_conv2d_native_backprop_filter,
    "DepthwiseConv2dNativeBackpropInput": reference.depthwise_conv2d_native_backprop_input,
}

#: Implementations: key in a result row, display name.
IMPLEMENTATIONS = {
    "ours": "ours",
    "ours_gpu": "ours GPU",
    "tf_native": "TF native",
    "tf_onednn": "TF oneDNN",
    "tf_gpu": "TF GPU",
}

#: One-line description for the command line.
DESCRIPTION = (
    "Cross-check Conv2DBackpropFilter and the two depthwise backprop ops: ours, TF's native CPU "
    "kernels, TF's oneDNN kernels and (with a GPU) TF's GPU kernels against a float64 reference "
    "over a grid of configurations; report max abs/rel error, ULP distance, run-to-run "
    "determinism and the kernel TF ran. Exits non-zero if any of OUR results is out of tolerance. "
    "With --model, cross-checks one training step of a whole model instead (see below)."
)


# --------------------------------------------------------------------------------------------
# Configurations


@dataclasses.dataclass(frozen=True)
class Config:
    """One op configuration; its string form is its readable, parseable identifier.

    Attributes:
        op: The TF op name.
        n: Batch.
        h: Input height.
        w: Input width.
        c: Input depth.
        kh: Filter height.
        kw: Filter width.
        out: Output depth for ``Conv2DBackpropFilter``, the depth multiplier for depthwise.
        groups: Groups for ``Conv2DBackpropFilter`` (filter in-depth is ``c // groups``).
        strides: ``(row, column)`` strides.
        dilations: ``(row, column)`` dilations.
        padding: ``"SAME"``, ``"VALID"`` or ``"EXPLICIT"``.
        pads: ``(top, bottom, left, right)`` for EXPLICIT.
        data_format: ``"NHWC"`` or ``"NCHW"``.
    """

    op: str
    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    out: int
    groups: int = 1
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    data_format: str = "NHWC"

    _TOKENS = re.compile(
        r"n(?P<n>\d+)|h(?P<h>\d+)w(?P<w>\d+)|c(?P<c>\d+)|k(?P<kh>\d+)x(?P<kw>\d+)|o(?P<o>\d+)"
        r"|g(?P<g>\d+)|m(?P<m>\d+)|s(?P<sh>\d+)x(?P<sw>\d+)|d(?P<dh>\d+)x(?P<dw>\d+)"
        r"|(?P<padding>SAME|VALID)|EXPLICIT\[(?P<pads>\d+,\d+,\d+,\d+)\]|(?P<fmt>NHWC|NCHW)"
    )

    @classmethod
    def parse(cls, op: str, text: str) -> Config:
        """Parses a string such as ``"n2 h9w7 c4 k3x3 m2 s2x1 d1x2 SAME NCHW"``.

        Tokens: ``n`` batch, ``hHwW`` input size, ``c`` input depth, ``kHxW`` filter, ``o`` output
        depth and ``g`` groups (Conv2DBackpropFilter), ``m`` depth multiplier (depthwise),
        ``sHxW`` strides, ``dHxW`` dilations, ``SAME``/``VALID``/``EXPLICIT[t,b,l,r]``,
        ``NHWC``/``NCHW``. Strides, dilations, groups, padding and format have defaults.

        Args:
            op: The TF op name.
            text: The configuration string.

        Returns:
            The :class:`Config`.

        Raises:
            ValueError: On an unknown token or a missing size.
        """
        fields: dict[str, Any] = {"op": op}
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
        return cls(**fields)

    def __str__(self) -> str:
        if self.op == "Conv2DBackpropFilter":
            channels = f"o{self.out}" + (f" g{self.groups}" if self.groups != 1 else "")
        else:
            channels = f"m{self.out}"
        padding = self.padding
        if padding == "EXPLICIT":
            padding = "EXPLICIT[{},{},{},{}]".format(*self.pads)
        return (
            f"n{self.n} h{self.h}w{self.w} c{self.c} k{self.kh}x{self.kw} {channels} "
            f"s{self.strides[0]}x{self.strides[1]} d{self.dilations[0]}x{self.dilations[1]} "
            f"{padding} {self.data_format}"
        )

    def _spatial_list(self, pair: tuple[int, int]) -> list[int]:
        return [1, *pair, 1] if self.data_format == "NHWC" else [1, 1, *pair]

    def attrs(self, dilations: tuple[int, int] | None = None) -> dict[str, Any]:
        """The op attributes (in ``data_format`` order), optionally with other dilations."""
        explicit: list[int] = []
        if self.padding == "EXPLICIT":
            top, bottom, left, right = self.pads
            spatial = [top, bottom, left, right]
            explicit = [0, 0, *spatial, 0, 0] if self.data_format == "NHWC" else [0] * 4 + spatial
        return {
            "strides": self._spatial_list(self.strides),
            "padding": self.padding,
            "explicit_paddings": explicit,
            "data_format": self.data_format,
            "dilations": self._spatial_list(dilations or self.dilations),
        }

    @property
    def input_shape(self) -> list[int]:
        """The input shape in ``data_format``."""
        if self.data_format == "NHWC":
            return [self.n, self.h, self.w, self.c]
        return [self.n, self.c, self.h, self.w]

    @property
    def filter_shape(self) -> list[int]:
        """The HWIO filter shape."""
        if self.op == "Conv2DBackpropFilter":
            return [self.kh, self.kw, self.c // self.groups, self.out]
        return [self.kh, self.kw, self.c, self.out]

    @property
    def out_backprop_shape(self) -> list[int]:
        """The ``out_backprop`` shape in ``data_format``."""
        shape = reference.out_backprop_shape(
            self.op, self.input_shape, self.filter_shape, **self.attrs()
        )
        return list(shape)

    def with_format(self, data_format: str) -> Config:
        """The same problem in another data format (pads and sizes are spatial, unchanged)."""
        return dataclasses.replace(self, data_format=data_format)

    def to_json(self) -> dict[str, str]:
        """``{"op": "CBF", "config": "<parseable string>"}``, as :func:`load_configs` reads."""
        return {"op": _OP_SHORT[self.op], "config": str(self)}


# Geometry, Conv2DBackpropFilter channels, depthwise channels, in the --quick grid.
_GEOMETRIES: list[tuple[str, str, str, bool]] = [
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
]

# Op-specific extras: empty channel dimensions.
_EXTRAS: dict[str, list[tuple[str, bool]]] = {
    "Conv2DBackpropFilter": [("n1 h2w3 c1 k2x2 o0 s1x1 d1x1 VALID NHWC", False)],
    "DepthwiseConv2dNativeBackpropFilter": [],
    "DepthwiseConv2dNativeBackpropInput": [("n2 h5w5 c3 k3x3 m0 s1x1 d1x1 SAME NHWC", False)],
}


# Larger, layer-sized problems (MobileNetV2 / EfficientNet / ResNet shapes, batch reduced) for
# --tier full: (geometry, Conv2DBackpropFilter channels, depthwise channels).
_FULL_GEOMETRIES: list[tuple[str, str, str]] = [
    ("n4 h56w56 c24 k3x3 s1x1 d1x1 SAME NHWC", "o24", "m1"),
    ("n4 h57w57 c32 k3x3 s2x2 d1x1 VALID NHWC", "o32", "m1"),
    ("n2 h28w28 c40 k5x5 s1x1 d1x1 SAME NHWC", "o40", "m2"),
    ("n2 h29w29 c48 k5x5 s2x2 d1x1 VALID NCHW", "o48 g4", "m1"),
    ("n4 h14w14 c64 k3x3 s1x1 d2x2 SAME NHWC", "o64", "m1"),
    ("n2 h28w28 c64 k1x1 s1x1 d1x1 SAME NHWC", "o128", "m1"),
    ("n2 h30w30 c16 k7x7 s2x2 d1x1 EXPLICIT[3,3,3,3] NHWC", "o32", "m2"),
    ("n4 h16w16 c32 k3x3 s2x1 d1x2 SAME NCHW", "o32 g8", "m1"),
]


def build_grid(
    quick: bool = False, ops: Sequence[str] | None = None, tier: str | None = None
) -> list[Config]:
    """A built-in grid of configurations.

    Args:
        quick: Same as ``tier="quick"`` (kept for callers of the first version).
        ops: Restrict to these TF op names (all three by default).
        tier: ``"quick"`` (the smallest grid), ``"default"`` (a broader one) or ``"full"``
            (the default grid plus layer-sized problems).

    Returns:
        The configurations, op by op.

    Raises:
        ValueError: On an unknown tier or op.
    """
    tier = tier or ("quick" if quick else "default")
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {TIERS}")
    configs = []
    for op in ops or _OP_SHORT:
        if op not in _OP_SHORT:
            raise ValueError(f"unknown op {op!r}; expected one of {list(_OP_SHORT)}")
        depthwise = op != "Conv2DBackpropFilter"
        rows = [
            (_insert_channels(geometry, dw if depthwise else cbf), in_quick)
            for geometry, cbf, dw, in_quick in _GEOMETRIES
        ]
        rows += _EXTRAS[op]
        if tier == "full":
            rows += [
                (_insert_channels(geometry, dw if depthwise else cbf), False)
                for geometry, cbf, dw in _FULL_GEOMETRIES
            ]
        configs += [
            Config.parse(op, text) for text, in_quick in rows if in_quick or tier != "quick"
        ]
    return configs


def _op_name(value: Any) -> str:
    """A TF op name from ``"CBF"``/``"DBF"``/``"DBI"`` or the full name."""
    by_short = {v: k for k, v in _OP_SHORT.items()}
    if value in _OP_SHORT:
        return value
    if isinstance(value, str) and value.upper() in by_short:
        return by_short[value.upper()]
    raise ValueError(f"unknown op {value!r}; expected CBF, DBF, DBI or {list(_OP_SHORT)}")


_FIELDS = {f.name for f in dataclasses.fields(Config)}


def _config_from_json(item: Any) -> Config:
    if not isinstance(item, dict) or "op" not in item:
        raise ValueError(f"each configuration must be an object with an 'op', got {item!r}")
    op = _op_name(item["op"])
    if "config" in item:
        extra = set(item) - {"op", "config"}
        if extra:
            raise ValueError(f"'config' strings take no other fields, got {sorted(extra)}")
        return Config.parse(op, item["config"])
    unknown = set(item) - _FIELDS
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} (known: {sorted(_FIELDS)})")
    fields = dict(item, op=op)
    for key in ("strides", "dilations", "pads"):
        if key in fields:
            fields[key] = tuple(int(v) for v in fields[key])
    for key in ("n", "h", "w", "c", "kh", "kw", "out", "groups"):
        if key in fields:
            fields[key] = int(fields[key])
    missing = {"n", "h", "w", "c", "kh", "kw", "out"} - set(fields)
    if missing:
        raise ValueError(f"configuration {item!r} lacks {sorted(missing)}")
    config = Config(**fields)
    if config.padding not in ("SAME", "VALID", "EXPLICIT"):
        raise ValueError(f"padding must be SAME, VALID or EXPLICIT, got {config.padding!r}")
    if config.data_format not in ("NHWC", "NCHW"):
        raise ValueError(f"data_format must be NHWC or NCHW, got {config.data_format!r}")
    return config


def load_configs(path: str) -> list[Config]:
    """Reads configurations from a JSON file.

    The file holds a list, or an object with a ``"configs"`` list. Each entry is either
    ``{"op": "CBF", "config": "n2 h9w7 c4 k3x3 o6 g2 s2x1 d1x2 EXPLICIT[1,0,2,1] NCHW"}`` (the
    string form printed by the table and by ``--list``) or the :class:`Config` fields spelled
    out, e.g. ``{"op": "DBI", "n": 2, "h": 9, "w": 7, "c": 4, "kh": 3, "kw": 3, "out": 2,
    "strides": [2, 1], "padding": "SAME", "data_format": "NCHW"}`` (``out`` is the output depth
    for CBF and the depth multiplier for depthwise; ``pads`` = ``[top, bottom, left, right]`` for
    EXPLICIT). ``op`` is ``CBF``, ``DBF``, ``DBI`` or the TF op name.

    Args:
        path: The JSON file.

    Returns:
        The configurations, validated (each must give a valid, non-negative output size).

    Raises:
        ValueError: On unreadable JSON or an invalid configuration (the message names it).
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    items = data.get("configs") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError(
            f"{path}: expected a non-empty list of configurations (or {{'configs': [...]}})"
        )
    configs = []
    for k, item in enumerate(items):
        try:
            config = _config_from_json(item)
            config.out_backprop_shape  # noqa: B018 -- validates the geometry
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: configuration {k}: {error}") from None
        configs.append(config)
    return configs


def _insert_channels(geometry: str, channels: str) -> str:
    tokens = geometry.split()
    return " ".join(tokens[:5] + channels.split() + tokens[5:])


# --------------------------------------------------------------------------------------------
# Data and errors


def make_args(config: Config, dtype: str) -> dict[str, Any]:
    """Seeded op inputs for ``config``: uniform in [-1, 1), rounded to ``dtype``.

    The seed depends on the op and the configuration only, so every dtype sees the same data
    before rounding.

    Args:
        config: The configuration.
        dtype: The dtype the ``T`` inputs are rounded to.

    Returns:
        Keyword arguments for the op (and for the reference): float64 arrays exactly
        representable in ``dtype`` and the sizes as a list, all in ``config.data_format``.
    """
    rng = np.random.default_rng(zlib.crc32(f"{config.op}|{config}".encode()))
    dy = rng.uniform(-1.0, 1.0, config.out_backprop_shape)
    if config.op == "DepthwiseConv2dNativeBackpropInput":
        f = rng.uniform(-1.0, 1.0, config.filter_shape)
        return {
            "input_sizes": config.input_shape,
            "filter": round_to(f, dtype),
            "out_backprop": round_to(dy, dtype),
        }
    x = rng.uniform(-1.0, 1.0, config.input_shape)
    return {
        "input": round_to(x, dtype),
        "filter_sizes": config.filter_shape,
        "out_backprop": round_to(dy, dtype),
    }


def _run_reference(config: Config, args: dict[str, Any], dilations=None) -> np.ndarray:
    return _REFERENCE_FUNCTIONS[config.op](**args, **config.attrs(dilations))


# --------------------------------------------------------------------------------------------
# Running


class Progress:
    """Progress of the implementations on a stream: a bar on a terminal, lines otherwise.

    Args:
        totals: Work items per implementation name.
        stream: Where to write (stderr by default).
        style: ``"bar"`` (one line redrawn in place), ``"lines"`` (a line every ``interval``
            seconds), ``"off"``, or ``"auto"``: a bar if ``stream`` is a terminal, else lines.
        interval: Seconds between lines in the ``"lines"`` style.
    """

    def __init__(
        self,
        totals: dict[str, int],
        stream: TextIO | None = None,
        style: str = "auto",
        interval: float = 5.0,
    ):
        self._stream = stream or sys.stderr
        if style == "auto":
            isatty = getattr(self._stream, "isatty", lambda: False)
            style = "bar" if isatty() else "lines"
        self.style = style
        self._totals = dict(totals)
        self._done = dict.fromkeys(totals, 0)
        self._interval = interval if style == "lines" else 0.2
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = -math.inf
        self._drawn = False

    def update(self, name: str, done: int, force: bool = False) -> None:
        """Records that ``name`` has finished ``done`` items; redraws if it is time to."""
        with self._lock:
            self._done[name] = min(done, self._totals[name])
            now = time.monotonic()
            if self.style == "off" or (not force and now - self._last < self._interval):
                return
            self._last = now
            self._write(self.render(now - self._start))

    def callback(self, name: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for :func:`oracle.run_raw_ops`."""
        return lambda done, _total: self.update(name, done)

    def render(self, elapsed: float, width: int = 24) -> str:
        """The progress text (without line control characters)."""
        total = sum(self._totals.values())
        done = sum(self._done.values())
        fraction = done / total if total else 1.0
        parts = [f"{name} {self._done[name]}/{n}" for name, n in self._totals.items()]
        eta = ""
        if 0 < fraction < 1:
            eta = f", ~{elapsed * (1 - fraction) / fraction:.0f} s left"
        timing = f"{elapsed:.0f} s{eta}"
        if self.style == "bar":
            filled = int(round(width * fraction))
            bar = "#" * filled + "-" * (width - filled)
            return f"crosscheck [{bar}] {fraction:4.0%} | " + " | ".join(parts) + f" | {timing}"
        return f"crosscheck: {fraction:.0%} | " + " | ".join(parts) + f" | {timing}"

    def _write(self, text: str) -> None:
        if self.style == "bar":
            self._stream.write("\r" + text + "\x1b[K")
            self._drawn = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Draws the final state and ends the bar's line."""
        with self._lock:
            if self.style == "off":
                return
            self._write(self.render(time.monotonic() - self._start))
            if self._drawn:
                self._stream.write("\n")
                self._stream.flush()


def _run_oracle(
    name: str,
    cases: list[dict[str, Any]],
    onednn: bool,
    progress: Progress,
    out: dict[str, Any],
    timeout: float,
) -> None:
    try:
        out[name] = oracle.run_raw_ops(
            cases, onednn=onednn, timeout=timeout, progress=progress.callback(name)
        )
        progress.update(name, len(cases))
    except Exception as error:  # reported; the TF oracles never fail the run
        out[name] = error


def _run_ours(case: dict[str, Any]) -> dict[str, Any]:
    """Our op on one case, in this process (same code path as the oracle's workers)."""
    import tensorflow as tf

    ours = importlib.import_module("tf_convgrad")  # loads our op library
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # one tf.function per case in "function" mode: no retracing warnings
    try:
        return oracle._run_task(tf, ours, {**case, "impl": "ours"})
    except Exception as error:  # noqa: BLE001 -- a Python-level failure is a refusal too
        return {"ok": False, "error_class": type(error).__name__, "message": str(error)}
    finally:
        logger.setLevel(level)


def _category(status: str) -> str:
    """``"refuses: InvalidArgument"`` -> ``"refuses"``; ``"crashed (SIGABRT)"`` -> ``"crashed"``."""
    return status.split(":")[0].split(" (")[0]


def _entry(
    result: Any,
    ref: np.ndarray,
    dtype: str,
    ref_undilated: np.ndarray | None = None,
    ours_value: np.ndarray | None = None,
) -> dict[str, Any]:
    """Classifies one implementation's result and measures its errors.

    Returns:
        ``status`` (ok / wrong / ignores dilation / refuses: <class> / crashed (<signal>) /
        timed out / unavailable), ``err`` (norm-relative), ``abs_err``, ``ulp``,
        ``deterministic`` (None when not repeated or not run), ``kernel``, ``kernel_source``,
        ``ours_diff`` (``max|x - ours| / max|ref|``, TF only) and ``message`` on failures.
    """
    entry: dict[str, Any] = {
        "status": "unavailable",
        "err": None,
        "abs_err": None,
        "ulp": None,
        "deterministic": None,
        "kernel": None,
        "kernel_source": None,
        "ours_diff": None,
    }
    if isinstance(result, Exception) or result is None:
        if isinstance(result, Exception):
            entry["message"] = str(result)
        return entry
    entry["kernel"] = result.get("kernel")
    entry["kernel_source"] = result.get("kernel_source")
    if result.get("crashed"):
        entry["status"] = f"crashed ({oracle.signal_name(result.get('returncode'))})"
        entry["message"] = result.get("message", "")
        return entry
    if result.get("timed_out"):
        entry["status"] = "timed out"
        entry["message"] = result.get("message", "")
        return entry
    if result.get("unavailable"):
        entry["message"] = result.get("message", "")
        return entry
    if not result["ok"]:
        entry["status"] = "refuses: " + result["error_class"].removesuffix("Error")
        entry["message"] = _first_line(result.get("message", ""))
        return entry
    value = result["value"]
    tol = TOLERANCES[dtype]
    entry["err"] = relative_error(value, ref)
    entry["abs_err"] = abs_error(value, ref)
    entry["ulp"] = ulp_distance(value, ref, dtype)
    if result.get("repeats", 1) > 1:
        entry["deterministic"] = bool(result.get("deterministic"))
    if ours_value is not None and value.shape == ref.shape:
        entry["ours_diff"] = relative_error(value, ours_value, scale=ref)
    if entry["err"] <= tol:
        entry["status"] = "ok"
    elif (
        ref_undilated is not None
        and relative_error(value, ref_undilated) <= 10 * tol
        and relative_error(value, ref_undilated) < entry["err"]
    ):
        entry["status"] = "ignores dilation"
    else:
        entry["status"] = "wrong"
    return entry


def _first_line(message: str) -> str:
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*$", "", message, flags=re.S)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    # Graph-mode errors put the kernel message after a traceback, before "[[{{node ...}}]]".
    for i, line in enumerate(lines):
        if line.startswith("[[{{node") and i > 0:
            return lines[i - 1]
    return lines[0] if lines else ""


def gpu_available() -> bool:
    """Whether TensorFlow (in this process) sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def run_grid(
    configs: Sequence[Config],
    dtypes: Sequence[str],
    mode: str = "eager",
    with_tf: bool = True,
    devices: Sequence[str] = ("cpu",),
    repeats: int = 2,
    progress: str = "auto",
    timeout: float = 900,
    tf32: bool = True,
) -> list[dict[str, Any]]:
    """Runs every (configuration, dtype) pair and returns one row per pair.

    Ours and the float64 reference run in this process while the TF implementations run in
    worker processes (oneDNN off and on for ``"cpu"``, TF's GPU kernels for ``"gpu"``), in
    parallel.

    Args:
        configs: The configurations.
        dtypes: The dtypes to run each configuration in.
        mode: ``"eager"`` or ``"function"`` (for ours and for TF).
        with_tf: Run TF's implementations.
        devices: Where TF's kernels run: ``"cpu"`` (native and oneDNN) and/or ``"gpu"``.
        repeats: Runs per implementation and case, for the determinism check (1: no check).
        progress: Progress display style (see :class:`Progress`).
        timeout: Time budget of each TF worker, seconds.
        tf32: Leave TensorFloat-32 on for TF's float32 GPU kernels (TF's default).

    Returns:
        Rows with keys ``op``, ``config``, ``dtype``, ``tolerance``, ``pass`` (all of ours
        within tolerance) and one entry (see :func:`_entry`) per implementation that ran:
        ``ours``, ``ours_gpu`` (our ops placed on the GPU, with ``"gpu"`` in ``devices``),
        ``tf_native``, ``tf_onednn``, ``tf_gpu``.
    """
    pairs = [(config, dtype) for config in configs for dtype in dtypes]
    args_list = [make_args(config, dtype) for config, dtype in pairs]
    cases = [
        {"op": config.op, "args": args, "attrs": config.attrs(), "dtype": dtype, "mode": mode,
         "repeats": repeats}
        for (config, dtype), args in zip(pairs, args_list, strict=True)
    ]  # fmt: skip
    # Load our library before starting the workers, so that a missing build fails fast.
    importlib.import_module("tf_convgrad")
    workers: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
    if with_tf and "cpu" in devices:
        workers["tf_native"] = (False, cases)
        workers["tf_onednn"] = (True, cases)
    if with_tf and "gpu" in devices:
        workers["tf_gpu"] = (False, [dict(c, device="gpu", tf32=tf32) for c in cases])
    ours_keys = ["ours"] + (["ours_gpu"] if "gpu" in devices else [])
    names = {key: IMPLEMENTATIONS[key] for key in ours_keys + list(workers)}
    bar = Progress({names[key]: len(pairs) for key in names}, style=progress)
    oracle_results: dict[str, Any] = {}
    threads = []
    for key, (onednn, worker_cases) in workers.items():
        thread = threading.Thread(
            target=_run_oracle,
            args=(names[key], worker_cases, onednn, bar, oracle_results, timeout),
            daemon=True,
        )
        thread.start()
        threads.append(thread)

    ours_results: dict[str, list[dict[str, Any]]] = {key: [] for key in ours_keys}
    references = []
    for k, ((config, _), args) in enumerate(zip(pairs, args_list, strict=True)):
        ref = _run_reference(config, args)
        ref_undilated = None
        if config.op != "Conv2DBackpropFilter" and config.dilations != (1, 1):
            try:  # What TF computes when it ignores the dilations, if the shapes allow it.
                ref_undilated = _run_reference(config, args, dilations=(1, 1))
            except ValueError:
                pass
        references.append((ref, ref_undilated))
        for key in ours_keys:
            device = "gpu" if key == "ours_gpu" else "cpu"
            ours_results[key].append(_run_ours(dict(cases[k], device=device)))
            bar.update(names[key], k + 1)
    for thread in threads:
        thread.join()
    bar.finish()
    for key in workers:
        if isinstance(oracle_results.get(names[key]), Exception):
            print(
                f"crosscheck: warning: {names[key]} failed: {oracle_results[names[key]]}",
                file=sys.stderr,
            )

    rows = []
    for k, (config, dtype) in enumerate(pairs):
        ref, ref_undilated = references[k]
        row = {
            "op": config.op,
            "config": str(config),
            "dtype": dtype,
            "tolerance": TOLERANCES[dtype],
        }
        for key in ours_keys:
            entry = _entry(ours_results[key][k], ref, dtype)
            if entry["status"] == "wrong" and entry["err"] is not None and math.isinf(entry["err"]):
                entry["message"] = "non-finite values or a wrong shape"
            row[key] = entry
        row["pass"] = all(row[key]["status"] == "ok" for key in ours_keys)
        first = ours_results["ours"][k]
        ours_value = first["value"] if first.get("ok") else None
        for key in workers:
            result = oracle_results.get(names[key])
            if isinstance(result, list):
                result = result[k]
            row[key] = _entry(result, ref, dtype, ref_undilated, ours_value)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Output


def _fmt_err(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.1e}"


def _fmt_ulp(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.0f}" if value < 1e6 else f"{value:.1e}"


def _kernel_tag(entry: dict[str, Any]) -> str:
    kernel = entry.get("kernel")
    if not kernel:
        return ""
    if kernel.startswith("ConvGrad>"):  # ours: tagged only when it ran on a GPU
        return " [gpu]" if "(GPU)" in kernel else ""
    tag = "gpu" if "(GPU)" in kernel else "mkl" if kernel.startswith("_Mkl") else "native"
    return f" [{tag}{'?' if entry.get('kernel_source') == 'predicted' else ''}]"


def _cell(entry: dict[str, Any], ours: bool) -> str:
    status = entry["status"]
    if ours:
        status = "PASS" if status == "ok" else "FAIL"
    if entry["err"] is None:
        if ours:
            return f"FAIL {entry['status']}"
        return status + _kernel_tag(entry)
    det = {True: " det", False: " NONDET", None: ""}[entry["deterministic"]]
    return f"{status} {_fmt_err(entry['err'])} {_fmt_ulp(entry['ulp'])}u{det}" + _kernel_tag(entry)


def _impls(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [key for key in IMPLEMENTATIONS if rows and key in rows[0]]


def _align(lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines]  # fmt: skip
    text.insert(1, "-" * max(len(t) for t in text))
    return text


def format_table(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> str:
    """Formats rows from :func:`run_grid` as an aligned text table, one line per case.

    Each implementation's cell reads ``<result> <rel err> <ulp>u <det|NONDET> [kernel]``.

    Args:
        rows: The rows.
        with_tf: Kept for compatibility; the TF columns are those present in the rows.

    Returns:
        The table, header and rule included.
    """
    impls = _impls(rows) if with_tf else [i for i in _impls(rows) if i.startswith("ours")]
    lines = [["op", "configuration", "dtype"] + [IMPLEMENTATIONS[i] for i in impls]]
    for row in rows:
        line = [_OP_SHORT[row["op"]], row["config"], _DTYPE_SHORT[row["dtype"]]]
        line += [_cell(row[i], i.startswith("ours")) for i in impls]
        lines.append(line)
    return "\n".join(_align(lines))


def _stats(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    measured = [e for e in entries if e["err"] is not None]

    def largest(key: str) -> float | None:
        values = [e[key] for e in measured if e[key] is not None]
        return max(values) if values else None

    kernels = Counter(
        e["kernel"] + ("?" if e.get("kernel_source") == "predicted" else "")
        for e in entries
        if e.get("kernel")
    )
    return {
        "cases": len(entries),
        "statuses": dict(Counter(_category(e["status"]) for e in entries)),
        "max_abs_err": largest("abs_err"),
        "max_err": largest("err"),
        "max_ulp": largest("ulp"),
        "nondeterministic": sum(e["deterministic"] is False for e in entries),
        "kernels": dict(kernels),
    }


def summarize(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> dict[str, Any]:
    """Counts the cases and our failures; statistics per implementation and dtype.

    Args:
        rows: The rows from :func:`run_grid`.
        with_tf: Include the TF implementations.

    Returns:
        ``{"cases", "failures", "implementations": {impl: {"cases", "statuses", "max_abs_err",
        "max_err", "max_ulp", "nondeterministic", "kernels", "by_dtype": {dtype: {...}}}}}``.
    """
    failures = [row for row in rows if not row["pass"]]
    summary: dict[str, Any] = {"cases": len(rows), "failures": len(failures)}
    impls = _impls(rows) if with_tf else [i for i in _impls(rows) if i.startswith("ours")]
    summary["implementations"] = {}
    for impl in impls:
        stats = _stats([row[impl] for row in rows])
        stats["by_dtype"] = {
            dtype: _stats([row[impl] for row in rows if row["dtype"] == dtype])
            for dtype in DTYPES
            if any(row["dtype"] == dtype for row in rows)
        }
        summary["implementations"][impl] = stats
    return summary


_COUNTED = ("ok", "wrong", "ignores dilation", "refuses", "crashed")


def format_summary(summary: dict[str, Any]) -> str:
    """The per-implementation, per-dtype summary table and the kernels TF ran."""
    header = ["implementation", "dtype", "cases", "ok", "wrong", "ign.dil", "refuses", "crashed",
              "other", "max abs", "max rel", "max ulp", "nondet"]  # fmt: skip
    lines = [header]
    for impl, stats in summary["implementations"].items():
        for dtype, s in stats["by_dtype"].items():
            counts = s["statuses"]
            other = s["cases"] - sum(counts.get(c, 0) for c in _COUNTED)
            lines.append(
                [IMPLEMENTATIONS[impl], _DTYPE_SHORT[dtype], str(s["cases"])]
                + [str(counts.get(c, 0)) for c in _COUNTED]
                + [str(other), _fmt_err(s["max_abs_err"]), _fmt_err(s["max_err"]),
                   _fmt_ulp(s["max_ulp"]), str(s["nondeterministic"])]
            )  # fmt: skip
    text = _align(lines)
    text.append("")
    text.append("Kernels that ran, with the number of cases (observed in the run metadata;")
    text.append("? = predicted from TF's rewrite rules where the metadata did not show the op):")
    width = max(len(IMPLEMENTATIONS[i]) for i in summary["implementations"]) + 1
    for impl, stats in summary["implementations"].items():
        label = (IMPLEMENTATIONS[impl] + ":").ljust(width)
        kernels = sorted(stats["kernels"].items()) or [("-", 0)]
        for k, (kernel, count) in enumerate(kernels):
            text.append(
                f"  {label if k == 0 else ' ' * width} {kernel}" + (f" x{count}" if count else "")
            )
    return "\n".join(text)


def summary_line(summary: dict[str, Any]) -> str:
    """The final line: ``"N cases, all pass"`` or ``"N cases, K failures"``.

    Args:
        summary: From :func:`summarize`.

    Returns:
        The line.
    """
    if summary["failures"] == 0:
        return f"{summary['cases']} cases, all pass"
    return f"{summary['cases']} cases, {summary['failures']} failures"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


_LEGEND = """\
Each cell: <result> <rel err> <ulp>u <det> [kernel], against a float64 reference computed on the
same dtype-rounded inputs.
  rel err = max|x - ref| / max|ref| (inf: non-finite values or a wrong shape);
  ulp     = largest distance to the reference rounded to the dtype, in units in the last place
            (0 = correctly rounded; elements that cancel to near zero have large distances at
            tiny absolute error; for f64 the reference has a few ulp of its own);
  det     = {repeats} runs bitwise identical, NONDET = not (nothing when run once).
Ours must be within: {tols} (PASS / FAIL).
TF's results are reported, never failed on: ok (within the same tolerance), wrong, ignores
dilation (equals the undilated answer), refuses: <error class>, crashed (<signal>).
[native] / [mkl] / [gpu]: the kernel TF ran (full names below the summary and in --json);
? = predicted from TF's rewrite rules where the run metadata did not show the op.
Max abs errors are in the summary."""


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``crosscheck`` options to ``parser``.

    Args:
        parser: The (sub)command parser.
    """
    grid = parser.add_argument_group("what to run")
    grid.add_argument(
        "--tier", choices=TIERS, default=None,
        help="built-in grid: quick (the smallest), default (broader), full (default + "
        "layer-sized problems); --list shows a tier's configurations",
    )  # fmt: skip
    grid.add_argument("--quick", action="store_true", help="same as --tier quick")
    grid.add_argument(
        "--configs", metavar="FILE.json",
        help="configurations from a JSON file instead of a built-in tier (see --list --json "
        "for the format)",
    )  # fmt: skip
    grid.add_argument(
        "--op", action="append", choices=sorted(_OP_SHORT.values()),
        help="only this op (CBF, DBF, DBI); repeatable",
    )  # fmt: skip
    grid.add_argument(
        "--dtype", action="append", type=_cli.dtype, metavar="DTYPE",
        help="only this dtype (f16, bf16, f32, f64, or float16, bfloat16, float32, float64); "
        "repeatable",
    )  # fmt: skip
    grid.add_argument(
        "--format", action="append", choices=("NHWC", "NCHW"), dest="formats",
        help="run every configuration in this data format; repeatable (default: the format "
        "each configuration lists)",
    )  # fmt: skip
    grid.add_argument("--only", help="only configurations containing this substring")
    grid.add_argument(
        "--list", action="store_true",
        help="print the selected configurations (with --json: in the --configs format) and exit",
    )  # fmt: skip
    how = parser.add_argument_group("how to run")
    how.add_argument(
        "--device", action="append", choices=("cpu", "gpu"), dest="devices",
        help="where the kernels run: cpu (ours, TF native, TF oneDNN) and/or gpu (ours placed "
        "on the GPU, TF's GPU kernels); repeatable (default: cpu, plus gpu when TensorFlow "
        "sees one). Ours always run on the CPU too",
    )  # fmt: skip
    how.add_argument("--no-tf", action="store_true", help="run only ours (no TF workers)")
    how.add_argument(
        "--mode", choices=("eager", "function"), default="eager", help="how to call the ops"
    )
    how.add_argument(
        "--repeats", type=int, default=2,
        help="runs per implementation and case for the determinism check (default 2; 1 = off)",
    )  # fmt: skip
    how.add_argument(
        "--timeout", type=float, default=900, help="seconds allowed to each TF worker (900)"
    )
    how.add_argument(
        "--no-tf32", action="store_true",
        help="turn TensorFloat-32 off for TF's float32 GPU kernels (TF enables it by default)",
    )  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print JSON results instead of tables")
    out.add_argument(
        "--progress", choices=("auto", "bar", "lines", "off"), default="auto",
        help="progress on stderr: a bar on a terminal, periodic lines otherwise (auto)",
    )  # fmt: skip
    from . import model_check  # it imports this module: not at the top

    model_check.add_arguments(parser)


def _select(args: argparse.Namespace) -> list[Config]:
    short_to_op = {v: k for k, v in _OP_SHORT.items()}
    ops = [short_to_op[o] for o in args.op] if args.op else None
    if args.configs:
        configs = load_configs(args.configs)
        if ops:
            configs = [c for c in configs if c.op in ops]
    else:
        configs = build_grid(ops=ops, tier=args.tier or ("quick" if args.quick else "default"))
    if args.formats:
        seen: dict[str, Config] = {}
        for config in configs:
            for data_format in args.formats:
                variant = config.with_format(data_format)
                seen.setdefault(f"{variant.op}|{variant}", variant)
        configs = list(seen.values())
    if args.only:
        configs = [c for c in configs if args.only in str(c)]
    return configs


def run(args: argparse.Namespace) -> int:
    """Runs the crosscheck for parsed ``args``, printing the tables (or JSON) on stdout.

    Args:
        args: Parsed by a parser set up with :func:`add_arguments`.

    Returns:
        The exit code: 0 if every case passes, 1 if any fails, 2 if nothing could run (bad
        arguments or configuration file, no configuration selected, GPU requested but absent,
        or our op library cannot be loaded).
    """
    if any(getattr(args, name, None) is not None for name in ("model", "size", "batch", "seed")):
        from . import model_check

        return model_check.run(args)
    started = time.monotonic()
    dtypes = list(dict.fromkeys(args.dtype)) if args.dtype else list(DTYPES)
    if (args.tier or args.quick) and args.configs:
        print("crosscheck: --tier/--quick and --configs exclude each other", file=sys.stderr)
        return 2
    if args.quick and args.tier not in (None, "quick"):
        print(f"crosscheck: --quick contradicts --tier {args.tier}", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("crosscheck: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        configs = _select(args)
    except ValueError as error:
        print(f"crosscheck: {error}", file=sys.stderr)
        return 2
    if not configs:
        print("crosscheck: no configuration selected", file=sys.stderr)
        return 2
    if args.list:
        if args.json:
            print(json.dumps({"configs": [c.to_json() for c in configs]}, indent=1))
        else:
            print("\n".join(f"{_OP_SHORT[c.op]}  {c}" for c in configs))
        return 0

    with_tf = not args.no_tf
    try:
        has_gpu = gpu_available()
    except ImportError as error:
        print(f"crosscheck: cannot import TensorFlow: {error}", file=sys.stderr)
        return 2
    devices = args.devices or (["cpu", "gpu"] if has_gpu else ["cpu"])
    if "gpu" in devices and not has_gpu:
        print("crosscheck: --device gpu, but TensorFlow sees no GPU", file=sys.stderr)
        return 2
    impls = ["ours"] + (["ours GPU"] if "gpu" in devices else [])
    if with_tf:
        impls += ["TF native", "TF oneDNN"] if "cpu" in devices else []
        impls += ["TF GPU"] if "gpu" in devices else []
    print(
        f"crosscheck: {len(configs)} configurations x {len(dtypes)} dtypes = "
        f"{len(configs) * len(dtypes)} cases ({args.mode}, {args.repeats} run(s) each); "
        f"implementations: {', '.join(impls)}"
        + ("; TF runs in worker processes" if with_tf else ""),
        file=sys.stderr,
        flush=True,
    )
    try:
        rows = run_grid(
            configs, dtypes, mode=args.mode, with_tf=with_tf, devices=devices,
            repeats=args.repeats, progress=args.progress, timeout=args.timeout,
            tf32=not args.no_tf32,
        )  # fmt: skip
    except ImportError as error:
        print(f"crosscheck: cannot load tf_convgrad's op library: {error}", file=sys.stderr)
        return 2
    summary = summarize(rows, with_tf)
    summary["seconds"] = round(time.monotonic() - started, 1)
    line = summary_line(summary)
    failures = [row for row in rows if not row["pass"]]
    if args.json:
        settings = {
            "mode": args.mode, "repeats": args.repeats, "devices": devices, "tf": with_tf,
            "dtypes": dtypes, "tf32": not args.no_tf32,
        }  # fmt: skip
        payload = {"summary": summary, "settings": settings, "tolerances": TOLERANCES,
                   "results": rows}  # fmt: skip
        print(json.dumps(_jsonable(payload), indent=1))
        print(line, file=sys.stderr)
    else:
        tols = ", ".join(f"{_DTYPE_SHORT[d]} {t:g}" for d, t in TOLERANCES.items())
        print(_LEGEND.format(tols=tols, repeats=args.repeats))
        print()
        print(format_table(rows, with_tf))
        print()
        print(format_summary(summary))
        print()
        for row in failures:
            for key in ("ours", "ours_gpu"):
                entry = row.get(key)
                if entry is None or entry["status"] == "ok":
                    continue
                detail = entry.get("message") or f"rel err {_fmt_err(entry['err'])}"
                where = "" if key == "ours" else " (GPU)"
                print(
                    f"FAIL{where} {_OP_SHORT[row['op']]} {row['config']} {row['dtype']}: {detail}"
                )
        print(f"{line} ({summary['seconds']} s)")
    return 0 if not failures else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m tf_convgrad.tools.crosscheck``.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` by default).

    Returns:
        The exit code, as for :func:`run`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tf_convgrad crosscheck", description=DESCRIPTION
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
