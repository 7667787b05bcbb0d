"""``python -m tf_convgrad crosscheck``: our ops against float64 and against TensorFlow's kernels.

Runs the three ops over a built-in grid of configurations (NHWC/NCHW, SAME/VALID/asymmetric
EXPLICIT, strides 1, 2 and unequal, dilations, depth multipliers 1-3, grouped
``Conv2DBackpropFilter``, odd and degenerate sizes, empty problems) in float16, bfloat16, float32
and float64, and compares

* **ours** (run in this process) against the float64 NumPy reference (:mod:`.reference`) on the
  same inputs: this decides pass/fail;
* ``tf.raw_ops`` with TF's **native** kernels (``TF_ENABLE_ONEDNN_OPTS=0``) and with **oneDNN**
  (``=1``), each in its own worker process (:mod:`.oracle`), against the same reference: this is
  reported (ok / refuses / wrong / ignores dilation / crashed) and never fails the run.

Inputs are generated in float64 from a seed derived from the configuration, rounded to the
dtype, and the reference is computed on the rounded values, so the error measures the op alone.
The error metric is norm-relative: ``max|x - ref| / max(max|ref|, tiny)``; a result with a
non-finite element or the wrong shape has infinite error. Our results must be within
:data:`TOLERANCES`; TF's are classified against the same thresholds.

Usage::

    python -m tf_convgrad crosscheck            # 86 configurations x 4 dtypes, ~20 s on 2 cores
    python -m tf_convgrad crosscheck --quick    # 30 configurations x 4 dtypes, ~10 s
    python -m tf_convgrad crosscheck --json --op DBF --dtype bf16 --only NCHW --mode function

The table goes to stdout, progress to stderr. Exit code 0: all pass; 1: some case fails; 2:
nothing ran.
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
from typing import Any

import numpy as np

from . import oracle, reference

__all__ = ["Config", "TOLERANCES", "add_arguments", "build_grid", "main", "run"]

DTYPES = ("float16", "bfloat16", "float32", "float64")

#: Pass thresholds for our ops against the float64 reference (norm-relative error).
TOLERANCES = {"float64": 1e-12, "float32": 2e-5, "float16": 1e-3, "bfloat16": 8e-3}

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
_TINY = np.finfo(np.float64).tiny

#: One-line description for the command line.
DESCRIPTION = (
    "Run the three ops over a built-in grid of configurations and dtypes against a float64 "
    "reference and against tf.raw_ops with TF's native and oneDNN kernels; print one table and "
    "exit non-zero if any of our results is outside tolerance."
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


def build_grid(quick: bool = False, ops: Sequence[str] | None = None) -> list[Config]:
    """The built-in grid of configurations.

    Args:
        quick: Only the smaller ``--quick`` subset.
        ops: Restrict to these TF op names (all three by default).

    Returns:
        The configurations, op by op.
    """
    configs = []
    for op in ops or _OP_SHORT:
        depthwise = op != "Conv2DBackpropFilter"
        rows = [
            (_insert_channels(geometry, dw if depthwise else cbf), in_quick)
            for geometry, cbf, dw, in_quick in _GEOMETRIES
        ]
        rows += _EXTRAS[op]
        configs += [Config.parse(op, text) for text, in_quick in rows if in_quick or not quick]
    return configs


def _insert_channels(geometry: str, channels: str) -> str:
    tokens = geometry.split()
    return " ".join(tokens[:5] + channels.split() + tokens[5:])


# --------------------------------------------------------------------------------------------
# Data and errors


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Rounds float64 values to ``dtype`` (round to nearest even), keeping them as float64.

    Args:
        values: Float64 values.
        dtype: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.

    Returns:
        Float64 values that ``dtype`` represents exactly.
    """
    if dtype == "bfloat16":
        import ml_dtypes  # a TensorFlow dependency

        return values.astype(ml_dtypes.bfloat16).astype(np.float64)
    return values.astype(dtype).astype(np.float64)


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


def relative_error(value: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> float:
    """Norm-relative error ``max|value - ref| / max(max|scale|, tiny)``.

    Args:
        value: The result to judge.
        ref: What it should be.
        scale: Normalises the error; defaults to ``ref``. Comparing two implementations passes
            the float64 reference here.

    Returns:
        The error: 0 for empty arrays, inf for a wrong shape or a non-finite element.
    """
    value = np.asarray(value, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = ref if scale is None else scale
    if value.shape != ref.shape:
        return math.inf
    if value.size == 0:
        return 0.0
    if not np.all(np.isfinite(value)):
        return math.inf
    with np.errstate(over="ignore"):  # garbage from TF can be near the float64 range
        return float(np.max(np.abs(value - ref)) / max(float(np.max(np.abs(scale))), _TINY))


def _run_reference(config: Config, args: dict[str, Any], dilations=None) -> np.ndarray:
    return _REFERENCE_FUNCTIONS[config.op](**args, **config.attrs(dilations))


# --------------------------------------------------------------------------------------------
# Running


class _Progress:
    """Thread-safe progress lines on stderr, at most one every ``interval`` seconds."""

    def __init__(self, totals: dict[str, int], interval: float = 3.0):
        self._done = dict.fromkeys(totals, 0)
        self._totals = totals
        self._interval = interval
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = self._start

    def update(self, name: str, done: int, force: bool = False) -> None:
        with self._lock:
            self._done[name] = done
            now = time.monotonic()
            if not force and now - self._last < self._interval:
                return
            self._last = now
            parts = [f"{k} {self._done[k]}/{self._totals[k]}" for k in self._totals]
            print(f"[{now - self._start:6.1f}s] " + " | ".join(parts), file=sys.stderr, flush=True)

    def callback(self, name: str) -> Callable[[int, int], None]:
        return lambda done, _total: self.update(name, done)


def _run_oracle(
    name: str,
    cases: list[dict[str, Any]],
    onednn: bool,
    progress: _Progress,
    out: dict[str, Any],
) -> None:
    try:
        out[name] = oracle.run_raw_ops(
            cases, onednn=onednn, timeout=900, progress=progress.callback(name)
        )
        progress.update(name, len(cases), force=True)
    except Exception as error:  # reported; the TF oracles never fail the run
        out[name] = error


def _ours(config: Config, args: dict[str, Any], dtype: str, mode: str) -> dict[str, Any]:
    import tensorflow as tf

    ours = importlib.import_module(__package__ or "tf_convgrad")  # loads our op library
    fn = getattr(ours, oracle.OURS_FUNCTIONS[config.op])
    sizes_name = oracle.OPS[config.op]
    tensors = {
        k: tf.constant(v, dtype=getattr(tf, dtype)) for k, v in args.items() if k != sizes_name
    }
    attrs = config.attrs()
    if config.op == "Conv2DBackpropFilter":
        attrs["use_cudnn_on_gpu"] = True
    try:
        if mode == "function":
            names = list(tensors)
            graph_fn = tf.function(
                lambda *v: fn(
                    **dict(zip(names, v, strict=True)), **{sizes_name: args[sizes_name]}, **attrs
                ),
                autograph=False,
            )
            output = graph_fn(*[tensors[k] for k in names])
        else:
            output = fn(**tensors, **{sizes_name: args[sizes_name]}, **attrs)
        return {"ok": True, "value": np.asarray(output.numpy(), dtype=np.float64)}
    except Exception as error:  # a refusal is a failure, reported in the table
        message = getattr(error, "message", None) or str(error)
        return {"ok": False, "error_class": type(error).__name__, "message": message}


def _tf_entry(result: Any, ref: np.ndarray, ref_undilated, ours_value, tol: float) -> dict:
    """Classifies one TF oracle result: ok / refuses / wrong / ignores dilation / crashed."""
    if isinstance(result, Exception) or result is None:
        return {"status": "unavailable", "err": None, "ours_diff": None, "kernel": None}
    entry: dict[str, Any] = {"err": None, "ours_diff": None, "kernel": result.get("kernel")}
    if result.get("crashed"):
        entry["status"] = f"crashed ({oracle.signal_name(result.get('returncode'))})"
        entry["message"] = result.get("message", "")
        return entry
    if result.get("timed_out"):
        entry["status"] = "timed out"
        return entry
    if not result["ok"]:
        entry["status"] = "refuses: " + result["error_class"].removesuffix("Error")
        entry["message"] = _first_line(result.get("message", ""))
        return entry
    value = result["value"]
    entry["err"] = relative_error(value, ref)
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


def run_grid(
    configs: Sequence[Config],
    dtypes: Sequence[str],
    mode: str = "eager",
    with_tf: bool = True,
) -> list[dict[str, Any]]:
    """Runs every (configuration, dtype) pair and returns one row per pair.

    Ours and the float64 reference run in this process while the two TF oracles run in worker
    processes (oneDNN off and on) in parallel.

    Args:
        configs: The configurations.
        dtypes: The dtypes to run each configuration in.
        mode: ``"eager"`` or ``"function"`` (for ours and for TF).
        with_tf: Run the TF oracles.

    Returns:
        Rows with keys ``op``, ``config``, ``dtype``, ``tolerance``, ``ours`` (``status``, ``err``
        and ``message`` on refusal), ``pass``, ``tf_native`` and ``tf_onednn`` (``status``,
        ``err``, ``ours_diff``, ``kernel``, maybe ``message``).
    """
    pairs = [(config, dtype) for config in configs for dtype in dtypes]
    args_list = [make_args(config, dtype) for config, dtype in pairs]
    tf_cases = [
        {"op": config.op, "args": args, "attrs": config.attrs(), "dtype": dtype, "mode": mode}
        for (config, dtype), args in zip(pairs, args_list, strict=True)
    ]
    # Load our library before starting the workers, so that a missing build fails fast.
    importlib.import_module(__package__ or "tf_convgrad")
    totals = {"ours": len(pairs)}
    if with_tf:
        totals |= {"tf-native": len(pairs), "tf-onednn": len(pairs)}
    progress = _Progress(totals)
    oracle_results: dict[str, Any] = {}
    threads = []
    if with_tf:
        print(
            "crosscheck: launching 2 TF worker processes (TF_ENABLE_ONEDNN_OPTS=0 for TF's native "
            "kernels, =1 for oneDNN); ours and the float64 reference run in this process",
            file=sys.stderr,
            flush=True,
        )
        for name, onednn in (("tf-native", False), ("tf-onednn", True)):
            thread = threading.Thread(
                target=_run_oracle,
                args=(name, tf_cases, onednn, progress, oracle_results),
                daemon=True,
            )
            thread.start()
            threads.append(thread)

    ours_results = []
    references = []
    for k, ((config, dtype), args) in enumerate(zip(pairs, args_list, strict=True)):
        ref = _run_reference(config, args)
        ref_undilated = None
        if config.op != "Conv2DBackpropFilter" and config.dilations != (1, 1):
            try:  # What TF computes when it ignores the dilations, if the shapes allow it.
                ref_undilated = _run_reference(config, args, dilations=(1, 1))
            except ValueError:
                pass
        references.append((ref, ref_undilated))
        ours_results.append(_ours(config, args, dtype, mode))
        progress.update("ours", k + 1)
    progress.update("ours", len(pairs), force=True)
    for thread in threads:
        thread.join()
    for name in ("tf-native", "tf-onednn"):
        if isinstance(oracle_results.get(name), Exception):
            print(
                f"crosscheck: warning: the {name} oracle failed: {oracle_results[name]}",
                file=sys.stderr,
            )

    rows = []
    for k, (config, dtype) in enumerate(pairs):
        ref, ref_undilated = references[k]
        tol = TOLERANCES[dtype]
        ours = ours_results[k]
        ours_entry: dict[str, Any]
        if ours["ok"]:
            err = relative_error(ours["value"], ref)
            ours_entry = {"status": "ok" if err <= tol else "wrong", "err": err}
        else:
            ours_entry = {
                "status": "refuses: " + ours["error_class"].removesuffix("Error"),
                "err": None,
                "message": _first_line(ours["message"]),
            }
        ours_value = ours["value"] if ours["ok"] else None
        row = {
            "op": config.op,
            "config": str(config),
            "dtype": dtype,
            "tolerance": tol,
            "ours": ours_entry,
            "pass": ours_entry["status"] == "ok",
        }
        for key, name in (("tf_native", "tf-native"), ("tf_onednn", "tf-onednn")):
            result = oracle_results.get(name)
            if isinstance(result, list):
                result = result[k]
            row[key] = _tf_entry(result, ref, ref_undilated, ours_value, tol)
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


def _kernel_tag(kernel: str | None) -> str:
    if not kernel:
        return ""
    return " [mkl]" if kernel.startswith("_Mkl") else " [native]"


def format_table(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> str:
    """Formats rows from :func:`run_grid` as an aligned text table.

    Args:
        rows: The rows.
        with_tf: Include the TF oracle columns.

    Returns:
        The table, header and rule included.
    """
    header = ["op", "configuration", "dtype", "ours err", "result"]
    if with_tf:
        header += ["native err", "TF native", "ours~nat", "oneDNN err", "TF oneDNN", "ours~dnn"]
    lines = [header]
    for row in rows:
        line = [
            _OP_SHORT[row["op"]],
            row["config"],
            _DTYPE_SHORT[row["dtype"]],
            _fmt_err(row["ours"]["err"]),
            "PASS" if row["pass"] else "FAIL" + ("" if row["ours"]["err"] is not None else "*"),
        ]
        if with_tf:
            native, onednn = row["tf_native"], row["tf_onednn"]
            line += [
                _fmt_err(native["err"]),
                native["status"],
                _fmt_err(native["ours_diff"]),
                _fmt_err(onednn["err"]),
                onednn["status"] + _kernel_tag(onednn["kernel"]),
                _fmt_err(onednn["ours_diff"]),
            ]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines]  # fmt: skip
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def summarize(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> dict[str, Any]:
    """Counts the cases, our failures and each TF oracle's statuses.

    Args:
        rows: The rows from :func:`run_grid`.
        with_tf: Count the TF statuses too.

    Returns:
        ``{"cases": int, "failures": int, "tf_native": {status: count}, "tf_onednn": {...}}``.
    """
    failures = [row for row in rows if not row["pass"]]
    summary: dict[str, Any] = {"cases": len(rows), "failures": len(failures)}
    if with_tf:
        for key in ("tf_native", "tf_onednn"):
            summary[key] = dict(
                Counter(row[key]["status"].split(":")[0].split(" (")[0] for row in rows)
            )
    return summary


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
    return value


_LEGEND = """\
err = max|x - ref| / max|ref| against the float64 reference computed on the same dtype-rounded
inputs (inf: non-finite values or a wrong shape). Ours must be within
{tols}.
TF native (TF_ENABLE_ONEDNN_OPTS=0) and TF oneDNN (=1) are reported, never failed on: ok (within
the same tolerance), wrong (above it), ignores dilation (equals the undilated answer), refuses:
<error class>, crashed (<signal>). [mkl]/[native]: the kernel that ran. ours~nat, ours~dnn =
max|ours - tf| / max|ref|. FAIL* = our op raised an error."""


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``crosscheck`` options to ``parser``.

    Args:
        parser: The (sub)command parser.
    """
    parser.add_argument("--quick", action="store_true", help="run the smaller grid")
    parser.add_argument("--json", action="store_true", help="print JSON results instead of a table")
    parser.add_argument(
        "--op",
        action="append",
        choices=sorted(_OP_SHORT.values()),
        help="only this op (CBF, DBF, DBI); repeatable",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        choices=[_DTYPE_SHORT[d] for d in DTYPES],
        help="only this dtype; repeatable",
    )
    parser.add_argument("--only", help="only configurations containing this substring")
    parser.add_argument(
        "--mode", choices=("eager", "function"), default="eager", help="how to call the ops"
    )
    parser.add_argument("--no-tf", action="store_true", help="skip the two TF oracles")


def run(args: argparse.Namespace) -> int:
    """Runs the crosscheck for parsed ``args``, printing the table (or JSON) on stdout.

    Args:
        args: Parsed by a parser set up with :func:`add_arguments`.

    Returns:
        The exit code: 0 if every case passes, 1 if any fails, 2 if nothing could run (no
        configuration selected, or our op library cannot be loaded).
    """
    started = time.monotonic()
    short_to_op = {v: k for k, v in _OP_SHORT.items()}
    short_to_dtype = {v: k for k, v in _DTYPE_SHORT.items()}
    ops = [short_to_op[o] for o in args.op] if args.op else None
    dtypes = [short_to_dtype[d] for d in args.dtype] if args.dtype else list(DTYPES)
    configs = build_grid(quick=args.quick, ops=ops)
    if args.only:
        configs = [c for c in configs if args.only in str(c)]
    if not configs:
        print("crosscheck: no configuration selected", file=sys.stderr)
        return 2
    with_tf = not args.no_tf
    print(
        f"crosscheck: {len(configs)} configurations x {len(dtypes)} dtypes = "
        f"{len(configs) * len(dtypes)} cases ({args.mode})",
        file=sys.stderr,
        flush=True,
    )
    try:
        rows = run_grid(configs, dtypes, mode=args.mode, with_tf=with_tf)
    except ImportError as error:
        print(f"crosscheck: cannot load tf_convgrad's op library: {error}", file=sys.stderr)
        return 2
    summary = summarize(rows, with_tf)
    summary["seconds"] = round(time.monotonic() - started, 1)
    line = summary_line(summary)
    if args.json:
        payload = {"summary": summary, "tolerances": TOLERANCES, "results": rows}
        print(json.dumps(_jsonable(payload), indent=1))
        print(line, file=sys.stderr)
    else:
        tols = ", ".join(f"{_DTYPE_SHORT[d]} {t:g}" for d, t in TOLERANCES.items())
        print(_LEGEND.format(tols=tols))
        print()
        print(format_table(rows, with_tf))
        print()
        if with_tf:
            for key, name in (("tf_native", "TF native"), ("tf_onednn", "TF oneDNN")):
                counts = ", ".join(f"{n} {status}" for status, n in sorted(summary[key].items()))
                print(f"{name}: {counts}")
        failures = [row for row in rows if not row["pass"]]
        for row in failures:
            detail = row["ours"].get("message") or f"err {_fmt_err(row['ours']['err'])}"
            print(f"FAIL {_OP_SHORT[row['op']]} {row['config']} {row['dtype']}: {detail}")
        print(f"{line} ({summary['seconds']} s)")
    return 0 if summary["failures"] == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m tf_convgrad.crosscheck``.

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
