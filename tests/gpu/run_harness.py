"""Standalone harness for the GPU kernels (no TensorFlow anywhere).

Builds the kernel sources of ``tf_ops/cc/kernels/gpu`` into a small library with C entry points
(``build.py``), then:

1. **Correctness grid**: every op x dtype (half, bfloat16, float, double) x format (NHWC, NCHW)
   x padding (SAME, VALID, EXPLICIT) over awkward geometries (odd channel counts, unequal
   strides, dilations, depth multipliers, groups, 1x1/2x4/7x7 filters, empty tensors), plus
   the same problems with each kernel variant forced (generic filter path, 64-bit indexing,
   several reduction splits, SIMT instead of tensor cores). Outputs and scratch are poisoned
   with NaN bytes first; results are compared with the float64 NumPy reference
   (``python/tf_convgrad/tools/reference.py``) by ``max|ours - ref| / max|ref|`` against the test
   suite's tolerances, empty reductions must give exact zeros, and repeated runs must be
   bitwise identical. On a GPU, PyTorch (cuDNN, TF32 off) is computed too and its error shown.
2. **Over 2^31 elements** (GPU): one case per op whose input or output exceeds 2^31 elements,
   checked against PyTorch float64 on batch slices.
3. **Benchmarks** (GPU): MobileNetV2 / EfficientNet-B0 depthwise layers and ResNet-50 layers,
   ours vs PyTorch (cuDNN with ``benchmark=True``; channels_last for NHWC), CUDA-graph replays
   timed with CUDA events (medians after warm-up; inputs rotated so that L2 does not flatter),
   with the fraction of measured memory bandwidth and FLOP rate. The table is printed and
   written to ``--out`` as ``gpu_benchmark_<date>_<gpu>.md``.

Modes::

    python tests/gpu/run_harness.py               # GPU machine: nvcc, numpy, torch
    python tests/gpu/run_harness.py --emulate     # no GPU: same kernels on the CPU emulation
    python tests/gpu/run_harness.py --dry-run     # builds nothing: configs + reference checks

``--quick`` shrinks the grid; ``--skip-bench``/``--skip-large`` skip parts. The exit status is
non-zero if any correctness check fails.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import importlib.util
import itertools
import json
import math
import os
import re
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import build  # noqa: E402  (tests/gpu/build.py)


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# NumPy-only references, loaded by path (importing the tf_convgrad package would import TF).
REF = _load_module("tfcg_reference", ROOT / "python" / "tf_convgrad" / "tools" / "reference.py")
NAIVE = _load_module("tfcg_naive_reference", ROOT / "tests" / "reference.py")

OPS = ("cbf", "dbf", "dbi")
OP_CODE = {"cbf": 0, "dbf": 1, "dbi": 2}
DTYPES = ("float16", "bfloat16", "float32", "float64")
DTYPE_CODE = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
STORAGE = {
    "float16": np.float16,
    "bfloat16": np.uint16,
    "float32": np.float32,
    "float64": np.float64,
}
# Norm-relative tolerances of the test suite (tests/configs.py TOL).
TOL = {"float64": 1e-12, "float32": 2e-5, "float16": 1e-3, "bfloat16": 8e-3}
FORMATS = ("NHWC", "NCHW")
PADDINGS = ("SAME", "VALID", "EXPLICIT")
EXPLICIT = ((1, 2), (2, 0))  # asymmetric on purpose


# --------------------------------------------------------------------------------------------------
# ctypes mirror of tf_convgrad::gpu::ConvShape / LaunchOptions (conv_backprop_gpu.h)
# --------------------------------------------------------------------------------------------------

SHAPE_FIELDS = (
    "batch in_rows in_cols in_depth filter_rows filter_cols groups depth_multiplier out_rows "
    "out_cols out_depth stride_rows stride_cols dilation_rows dilation_cols pad_top pad_left nchw"
).split()


class ConvShape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in SHAPE_FIELDS]


class LaunchOptions(ctypes.Structure):
    _fields_ = [
        ("force_index64", ctypes.c_int32),
        ("force_generic", ctypes.c_int32),
        ("force_simt", ctypes.c_int32),
        ("force_splits", ctypes.c_int32),
    ]


def load_library(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    shape_p, opts_p = ctypes.POINTER(ConvShape), ctypes.POINTER(LaunchOptions)
    lib.tfcg_launch.argtypes = [ctypes.c_int, ctypes.c_int, shape_p, vp, vp, vp, vp, sz, vp, opts_p]
    lib.tfcg_launch.restype = ctypes.c_int
    lib.tfcg_scratch_bytes.argtypes = [ctypes.c_int, ctypes.c_int, shape_p, opts_p]
    lib.tfcg_scratch_bytes.restype = sz
    lib.tfcg_describe.argtypes = [ctypes.c_int, ctypes.c_int, shape_p, opts_p]
    lib.tfcg_describe.restype = ctypes.c_char_p
    lib.tfcg_error_string.argtypes = [ctypes.c_int]
    lib.tfcg_error_string.restype = ctypes.c_char_p
    lib.tfcg_shape_bytes.restype = ctypes.c_int
    lib.tfcg_emulated.restype = ctypes.c_int
    lib.tfcg_emu_set_schedule.argtypes = [ctypes.c_int, ctypes.c_uint]
    if lib.tfcg_shape_bytes() != ctypes.sizeof(ConvShape):
        raise RuntimeError("ConvShape layout differs between the library and this script")
    return lib


# --------------------------------------------------------------------------------------------------
# Dtypes
# --------------------------------------------------------------------------------------------------


def to_storage(a: np.ndarray, dtype: str) -> np.ndarray:
    """float64 -> the dtype's storage (bfloat16 as uint16 bits, rounded to nearest even)."""
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.ascontiguousarray(a, dtype=STORAGE[dtype])


def to_float64(s: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (s.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return s.astype(np.float64)


def norm_err(got: np.ndarray, ref: np.ndarray) -> float:
    if ref.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - ref))) / scale


# --------------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    name: str
    input_shape: tuple  # NHWC
    filter_shape: tuple  # HWIO: (fh, fw, C / groups, Cout) for cbf, (fh, fw, C, M) depthwise
    strides: tuple = (1, 1)
    dilations: tuple = (1, 1)
    paddings: tuple = PADDINGS
    explicit: tuple = EXPLICIT


@dataclass
class Problem:
    """One op call, in TF terms, with everything the harness needs to run and check it."""

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
        self.input_shape = _fmt_shape(self.input_nhwc, nchw)
        ref_op = {
            "cbf": "Conv2DBackpropFilter",
            "dbf": "DepthwiseConv2dNativeBackpropFilter",
            "dbi": "DepthwiseConv2dNativeBackpropInput",
        }[self.op]
        # Raises ValueError for an invalid combination (e.g. VALID with a filter > input).
        self.dy_shape = tuple(
            REF.out_backprop_shape(
                ref_op,
                self.input_shape,
                self.filter,
                self.strides4,
                self.padding,
                self.explicit8,
                self.data_format,
                self.dilations4,
            )
        )
        self.geo = REF.conv_geometry(
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
        return self.filter if self.op == "dbi" else self.input_shape

    @property
    def out_shape(self) -> tuple:
        return self.input_shape if self.op == "dbi" else self.filter

    def shape_struct(self) -> ConvShape:
        n, h, w, c = self.input_nhwc
        fh, fw, f_in, f_out = self.filter
        depthwise = self.op != "cbf"
        s = ConvShape()
        values = dict(
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
        for name, value in values.items():
            setattr(s, name, value)
        return s

    def options_struct(self) -> LaunchOptions:
        o = LaunchOptions()
        for name, value in self.options.items():
            if name != "misalign":  # a harness option, see Runner.run
                setattr(o, name, int(value))
        return o

    def reference(self, first: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """float64 result from the float64 inputs (already rounded to the dtype)."""
        kw = dict(
            strides=self.strides4,
            padding=self.padding,
            explicit_paddings=self.explicit8,
            data_format=self.data_format,
            dilations=self.dilations4,
        )
        if self.op == "cbf":
            return REF.conv2d_backprop_filter(first, self.filter, dy, **kw)
        if self.op == "dbf":
            return REF.depthwise_conv2d_native_backprop_filter(first, self.filter, dy, **kw)
        return REF.depthwise_conv2d_native_backprop_input(self.input_shape, first, dy, **kw)

    def naive_reference(self, first: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """The independent naive loops of tests/reference.py (NHWC), back in data_format."""
        nchw = self.data_format == "NCHW"
        dy_nhwc = _to_nhwc(dy, nchw)
        strides = (self.geo.stride_h, self.geo.stride_w)
        dilations = (self.geo.dilation_h, self.geo.dilation_w)
        pads = (self.geo.pad_top, self.geo.pad_left)
        if self.op == "cbf":
            return NAIVE.conv2d_backprop_filter_naive(
                _to_nhwc(first, nchw), dy_nhwc, self.filter, strides, dilations, pads
            )
        if self.op == "dbf":
            return NAIVE.depthwise_backprop_filter_naive(
                _to_nhwc(first, nchw), dy_nhwc, self.filter, strides, dilations, pads
            )
        dx = NAIVE.depthwise_backprop_input_naive(
            first, dy_nhwc, self.input_nhwc, strides, dilations, pads
        )
        return dx.transpose(0, 3, 1, 2) if nchw else dx

    def macs(self) -> int:
        n, _, _, c = self.input_nhwc
        fh, fw, f_in, f_out = self.filter
        pixels = n * self.geo.out_h * self.geo.out_w
        if self.op == "cbf":
            return pixels * f_out * fh * fw * f_in
        return pixels * c * f_out * fh * fw


def _spatial4(hw, nchw: bool) -> list[int]:
    return [1, 1, hw[0], hw[1]] if nchw else [1, hw[0], hw[1], 1]


def _explicit8(explicit, nchw: bool) -> list[int]:
    (top, bottom), (left, right) = explicit
    if nchw:
        return [0, 0, 0, 0, top, bottom, left, right]
    return [0, 0, top, bottom, left, right, 0, 0]


def _fmt_shape(nhwc, nchw: bool) -> tuple:
    n, h, w, c = nhwc
    return (n, c, h, w) if nchw else (n, h, w, c)


def _to_nhwc(a: np.ndarray, nchw: bool) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if nchw else a


G = Geometry
# Depthwise geometries: both depthwise ops. Names say what is awkward.
DW_GEOMETRIES = [
    G("3x3_c32", (2, 9, 11, 32), (3, 3, 32, 1)),
    G("3x3_s2_c24", (2, 10, 7, 24), (3, 3, 24, 1), (2, 2)),
    G("3x3_c3_odd", (3, 7, 5, 3), (3, 3, 3, 1)),
    G("3x3_c130_tiles", (1, 6, 5, 130), (3, 3, 130, 1)),
    G("5x5_c20", (1, 12, 10, 20), (5, 5, 20, 1)),
    G("5x5_s2x1_d1x2_c12", (2, 13, 11, 12), (5, 5, 12, 1), (2, 1), (1, 2)),
    G("3x3_m3_c5", (2, 8, 9, 5), (3, 3, 5, 3)),
    G("7x7_c7_chunks", (1, 15, 14, 7), (7, 7, 7, 1)),
    G("1x1_s2_m2", (3, 6, 6, 10), (1, 1, 10, 2), (2, 2)),
    G("2x4_s3x2_d2x3_m2", (2, 14, 17, 6), (2, 4, 6, 2), (3, 2), (2, 3)),
    G("3x3_c1_m8", (2, 9, 9, 1), (3, 3, 1, 8)),
    G("2x2_s3_c8", (1, 11, 11, 8), (2, 2, 8, 1), (3, 3)),
    G("3x3_s1x2_d3_c9", (2, 12, 13, 9), (3, 3, 9, 1), (1, 2), (3, 3)),
    G("3x3_c33_rows", (3, 19, 4, 33), (3, 3, 33, 1), (2, 1)),
    G("empty_batch", (0, 5, 5, 4), (3, 3, 4, 1)),
    G("valid_out0", (1, 2, 2, 3), (3, 3, 3, 1), paddings=("VALID",)),
    G("zero_channels", (1, 5, 5, 0), (3, 3, 0, 2)),
]
CBF_GEOMETRIES = [
    G("3x3_c16_o24", (2, 9, 8, 16), (3, 3, 16, 24)),
    G("1x1_c40_o136", (2, 7, 6, 40), (1, 1, 40, 136)),
    G("3x3_c64_o160_large", (1, 12, 12, 64), (3, 3, 64, 160)),
    G("3x3_g4_cf4", (2, 8, 8, 16), (3, 3, 4, 12)),
    G("3x3_g6_cf1", (2, 8, 8, 6), (3, 3, 1, 12)),
    G("3x3_s2x1_d2_c8", (2, 13, 12, 8), (3, 3, 8, 8), (2, 1), (2, 2)),
    G("5x3_s1x2_c5_o7", (2, 11, 9, 5), (5, 3, 5, 7), (1, 2)),
    G("3x3_c1_o4", (1, 7, 7, 1), (3, 3, 1, 4)),
    G("3x3_k1600_c8", (4, 20, 20, 8), (3, 3, 8, 8)),
    G("3x3_g2_o130", (1, 9, 10, 12), (3, 3, 6, 130)),
    G("empty_batch", (0, 5, 5, 4), (3, 3, 4, 2)),
    G("valid_out0", (1, 2, 2, 3), (3, 3, 3, 2), paddings=("VALID",)),
]
VARIANTS = [
    {"force_generic": 1},
    {"force_index64": 1},
    {"force_splits": 3},
    {"force_splits": 11},  # more splits than the second pass has lanes
    {"misalign": 1},  # tensors one element off alignment: no vector accesses
    {"force_simt": 1},  # CBF, half/bfloat16 only
]


def grid(quick: bool) -> list[Problem]:
    dtypes = ("float16", "float32") if quick else DTYPES
    paddings = ("SAME", "EXPLICIT") if quick else PADDINGS
    variant_dtypes = ("float32",) if quick else ("float32", "bfloat16")
    problems = []
    for op in OPS:
        geometries = CBF_GEOMETRIES if op == "cbf" else DW_GEOMETRIES
        for g in geometries:
            for padding, fmt in itertools.product(g.paddings, FORMATS):
                if padding not in paddings and len(g.paddings) > 1:
                    continue
                for dtype in dtypes:
                    problems.append((op, g, padding, fmt, dtype, {}, ""))
                if g.input_shape[0] == 0 or padding != "EXPLICIT":
                    continue
                for variant in VARIANTS:
                    if "force_simt" in variant and op != "cbf":
                        continue
                    for dtype in variant_dtypes:
                        if "force_simt" in variant and dtype not in ("float16", "bfloat16"):
                            dtype = "float16"
                        problems.append((op, g, padding, fmt, dtype, variant, "variant"))
    out, seen = [], set()
    for op, g, padding, fmt, dtype, options, tag in problems:
        try:
            p = Problem(op, g, padding, fmt, dtype, dict(options), tag)
        except ValueError:
            continue  # e.g. VALID with a filter larger than the input
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def make_inputs(p: Problem, seed_extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs in storage dtype (uniform in [-1, 1), never zeros), seeded by the id."""
    rng = np.random.default_rng(zlib.crc32(p.id.encode()) + seed_extra)
    first = to_storage(rng.uniform(-1, 1, p.first_shape), p.dtype)
    dy = to_storage(rng.uniform(-1, 1, p.dy_shape), p.dtype)
    return first, dy


# --------------------------------------------------------------------------------------------------
# Backends: where buffers live and how a launch is synchronised
# --------------------------------------------------------------------------------------------------


class EmuBackend:
    """Host buffers; the emulated kernels run synchronously on the CPU."""

    name = "emulate"

    def __init__(self):
        self.stream = ctypes.c_void_p(0x1000)  # any non-default handle

    def upload(self, a: np.ndarray, offset: int = 0):
        raw = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
        buf = np.full(max(offset + raw.size, 1), 0xFF, np.uint8)
        buf[offset : offset + raw.size] = raw
        return buf

    def empty(self, nbytes: int):
        return np.full(max(nbytes, 1), 0xFF, np.uint8)

    def poison(self, buf) -> None:
        buf.view(np.uint8).fill(0xFF)

    def ptr(self, buf) -> int:
        return buf.ctypes.data

    def download(self, buf, dtype: str, shape, offset: int = 0) -> np.ndarray:
        n = math.prod(shape) * np.dtype(STORAGE[dtype]).itemsize
        return buf[offset : offset + n].copy().view(STORAGE[dtype]).reshape(shape)

    def sync(self) -> None:
        pass


class CudaBackend:
    """Device buffers through PyTorch, launches on a dedicated (non-default) stream."""

    name = "cuda"

    def __init__(self, torch):
        self.torch = torch
        self.torch_stream = torch.cuda.Stream()
        # Everything (PyTorch's own work included) runs on this one non-default stream, so
        # there are no cross-stream races between uploads, our launches and downloads.
        torch.cuda.set_stream(self.torch_stream)
        self.stream = ctypes.c_void_p(self.torch_stream.cuda_stream)

    def upload(self, a: np.ndarray, offset: int = 0):
        host = self.torch.from_numpy(np.ascontiguousarray(a).view(np.uint8).reshape(-1))
        if offset == 0:
            return host.to("cuda")
        buf = self.empty(offset + host.numel())
        buf[offset:].copy_(host)
        return buf

    def empty(self, nbytes: int):
        return self.torch.full((max(nbytes, 1),), 0xFF, dtype=self.torch.uint8, device="cuda")

    def poison(self, buf) -> None:
        buf.fill_(0xFF)

    def ptr(self, buf) -> int:
        return buf.data_ptr()

    def download(self, buf, dtype: str, shape, offset: int = 0) -> np.ndarray:
        n = math.prod(shape) * np.dtype(STORAGE[dtype]).itemsize
        return buf[offset : offset + n].cpu().numpy().view(STORAGE[dtype]).reshape(shape).copy()

    def sync(self) -> None:
        self.torch_stream.synchronize()


class Runner:
    def __init__(self, lib, backend):
        self.lib = lib
        self.backend = backend

    def describe(self, p: Problem) -> str:
        s, o = p.shape_struct(), p.options_struct()
        return self.lib.tfcg_describe(OP_CODE[p.op], DTYPE_CODE[p.dtype], s, o).decode()

    def launch(self, p: Problem, ptrs: tuple, scratch_buf, scratch_bytes: int) -> None:
        b = self.backend
        s, o = p.shape_struct(), p.options_struct()
        first, dy, out = ptrs
        err = self.lib.tfcg_launch(
            OP_CODE[p.op],
            DTYPE_CODE[p.dtype],
            s,
            first,
            dy,
            out,
            b.ptr(scratch_buf),
            scratch_bytes,
            b.stream,
            o,
        )
        if err != 0:
            raise RuntimeError(f"launch failed: {self.lib.tfcg_error_string(err).decode()}")

    def scratch_bytes(self, p: Problem) -> int:
        s, o = p.shape_struct(), p.options_struct()
        return int(self.lib.tfcg_scratch_bytes(OP_CODE[p.op], DTYPE_CODE[p.dtype], s, o))

    def run(
        self,
        p: Problem,
        first: np.ndarray,
        dy: np.ndarray,
        repeats: int = 2,
        schedules: tuple = (0,),
    ) -> list[np.ndarray]:
        """Runs `repeats` times (output and scratch poisoned each time); returns the outputs.

        With the harness option ``misalign``, every tensor starts one element past an aligned
        address, which turns off the kernels' vector loads and stores.
        """
        b = self.backend
        item = np.dtype(STORAGE[p.dtype]).itemsize
        offset = item if p.options.get("misalign") else 0
        first_buf, dy_buf = b.upload(first, offset), b.upload(dy, offset)
        out_bytes = math.prod(p.out_shape) * item
        scratch_bytes = self.scratch_bytes(p)
        out_buf, scratch_buf = b.empty(offset + out_bytes), b.empty(scratch_bytes)
        ptrs = (b.ptr(first_buf) + offset, b.ptr(dy_buf) + offset, b.ptr(out_buf) + offset)
        results = []
        for r in range(repeats):
            self.lib.tfcg_emu_set_schedule(schedules[r % len(schedules)], 1234 + r)
            b.poison(out_buf)
            b.poison(scratch_buf)
            self.launch(p, ptrs, scratch_buf, scratch_bytes)
            b.sync()
            results.append(b.download(out_buf, p.dtype, p.out_shape, offset))
        self.lib.tfcg_emu_set_schedule(0, 0)
        return results


# --------------------------------------------------------------------------------------------------
# PyTorch (cuDNN) for comparisons and timings
# --------------------------------------------------------------------------------------------------

TORCH_DTYPES = {
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float64": "float64",
}


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

    def __call__(self):
        g = self.p.geo
        grads = self.torch.ops.aten.convolution_backward(
            self.dy,
            self.input,
            self.weight,
            None,
            [g.stride_h, g.stride_w],
            self.padding,
            [g.dilation_h, g.dilation_w],
            False,
            [0, 0],
            self.groups,
            self.mask,
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
        try:
            g = self.p.geo
            b = self.torch._C._select_conv_backend(
                self.input,
                self.weight,
                None,
                [g.stride_h, g.stride_w],
                self.padding,
                [g.dilation_h, g.dilation_w],
                False,
                [0, 0],
                self.groups,
                None,
            )
            return str(b).split(".")[-1]
        except Exception:  # noqa: BLE001 - private API; informative only
            return "?"


# --------------------------------------------------------------------------------------------------
# 1. Correctness grid
# --------------------------------------------------------------------------------------------------


def check_grid(runner: Runner, problems: list[Problem], torch=None, verbose=False) -> list[dict]:
    emulated = runner.backend.name == "emulate"
    schedules = (0, 1, 2) if emulated else (0,)
    repeats = 3
    rows = []
    start = time.monotonic()
    for index, p in enumerate(problems):
        first, dy = make_inputs(p)
        ref = p.reference(to_float64(first, p.dtype), to_float64(dy, p.dtype))
        row = {
            "id": p.id,
            "op": p.op,
            "dtype": p.dtype,
            "format": p.data_format,
            "tag": p.tag,
            "kernel": runner.describe(p),
            "ok": True,
            "why": "",
        }
        try:
            outs = runner.run(p, first, dy, repeats=repeats, schedules=schedules)
        except RuntimeError as e:
            row.update(ok=False, why=str(e))
            rows.append(row)
            print(f"FAIL {p.id}: {e}", flush=True)
            continue
        got = to_float64(outs[0], p.dtype)
        row["err"] = err = norm_err(got, ref)
        why = []
        if got.size and not np.all(np.isfinite(got)):
            why.append(f"{int(np.sum(~np.isfinite(got)))} elements not written (NaN poison left)")
        elif ref.size and not np.any(ref):
            if np.any(got):
                why.append(f"expected exact zeros, max|got| = {np.max(np.abs(got)):.3g}")
        elif err > TOL[p.dtype]:
            why.append(f"error {err:.3g} > {TOL[p.dtype]:.3g}")
        for r, other in enumerate(outs[1:], 1):
            if other.tobytes() != outs[0].tobytes():
                what = f"schedule {schedules[r % len(schedules)]}" if emulated else "repeat"
                why.append(f"not bitwise reproducible ({what} {r} differs)")
                break
        if torch is not None and got.size:
            try:
                conv = TorchConv(
                    torch, p, torch_tensor(torch, first, p.dtype), torch_tensor(torch, dy, p.dtype)
                )
                row["torch_err"] = norm_err(conv.result(), ref)
            except Exception as e:  # noqa: BLE001 - informative only
                row["torch_err"] = float("nan")
                if verbose:
                    print(f"  torch failed on {p.id}: {e}")
        row.update(ok=not why, why="; ".join(why))
        rows.append(row)
        if not row["ok"] or verbose:
            status = "ok  " if row["ok"] else "FAIL"
            print(f"{status} {p.id} [{row['kernel']}] err={err:.3g} {row['why']}", flush=True)
        if (index + 1) % 100 == 0:
            print(
                f"  ... {index + 1}/{len(problems)} checked ({time.monotonic() - start:.0f} s)",
                flush=True,
            )
    return rows


def summarize_grid(rows: list[dict]) -> str:
    lines = [
        "| op | dtype | format | cases | failed | worst err (ours) | tol | worst err (torch) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    key = lambda r: (r["op"], r["dtype"], r["format"])  # noqa: E731
    for (op, dtype, fmt), group in itertools.groupby(sorted(rows, key=key), key=key):
        group = list(group)
        errs = [r.get("err", float("nan")) for r in group]
        terrs = [r["torch_err"] for r in group if not math.isnan(r.get("torch_err", math.nan))]
        worst_t = f"{max(terrs):.2e}" if terrs else "-"
        lines.append(
            f"| {op} | {dtype} | {fmt} | {len(group)} | {sum(not r['ok'] for r in group)} | "
            f"{max(errs):.2e} | {TOL[dtype]:.0e} | {worst_t} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# 2. Over 2^31 elements (GPU only)
# --------------------------------------------------------------------------------------------------

LARGE = [
    # (op, input NHWC, filter HWIO, format); the input (dx for dbi) has > 2^31 elements.
    ("dbi", (16, 512, 512, 520), (3, 3, 520, 1), "NHWC"),
    ("dbf", (16, 512, 512, 520), (3, 3, 520, 1), "NHWC"),
    ("cbf", (16, 512, 512, 520), (1, 1, 520, 8), "NCHW"),
]


def check_large(runner: Runner, torch) -> list[dict]:
    rows = []
    for op, shape, filt, fmt in LARGE:
        p = Problem(
            op, Geometry(f"large_{'x'.join(map(str, shape))}", shape, filt), "SAME", fmt, "float16"
        )
        elems = max(math.prod(p.input_shape), math.prod(p.dy_shape))
        t0 = time.monotonic()
        row = {"id": p.id, "kernel": runner.describe(p), "elements": elems}
        try:
            rows.append(_check_large_one(runner, torch, p, row))
        except Exception as e:  # noqa: BLE001 - reported as a failure
            row.update(ok=False, why=f"{type(e).__name__}: {e}")
            rows.append(row)
        finally:
            torch.cuda.empty_cache()
        print(
            f"{'ok  ' if row.get('ok') else 'FAIL'} {p.id} [{row['kernel']}] "
            f"elements={elems:,} err={row.get('err', float('nan')):.3g} {row.get('why', '')} "
            f"({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
    return rows


def _check_large_one(runner: Runner, torch, p: Problem, row: dict) -> dict:
    """Random data made on the GPU; float64 reference from tensor ops on batch slices."""
    t = torch
    gen = t.Generator(device="cuda").manual_seed(7)
    first = (t.rand(math.prod(p.first_shape), device="cuda", generator=gen) * 2 - 1).half()
    dy = (t.rand(math.prod(p.dy_shape), device="cuda", generator=gen) * 2 - 1).half()
    out_elems = math.prod(p.out_shape)
    out = t.full((out_elems * 2,), 0xFF, dtype=t.uint8, device="cuda")
    scratch_bytes = runner.scratch_bytes(p)
    scratch = t.full((max(scratch_bytes, 1),), 0xFF, dtype=t.uint8, device="cuda")

    b = runner.backend
    err = runner.lib.tfcg_launch(
        OP_CODE[p.op],
        DTYPE_CODE[p.dtype],
        p.shape_struct(),
        first.data_ptr(),
        dy.data_ptr(),
        out.data_ptr(),
        scratch.data_ptr(),
        scratch_bytes,
        b.stream,
        p.options_struct(),
    )
    if err != 0:
        raise RuntimeError(runner.lib.tfcg_error_string(err).decode())
    b.sync()
    ours = out.view(t.float16).reshape(p.out_shape)
    if not bool(t.isfinite(ours).all()):
        return dict(row, ok=False, why="unwritten (NaN) elements")
    n = p.input_nhwc[0]
    first_t = first.reshape(p.first_shape)
    dy_t = dy.reshape(p.dy_shape)
    worst = 0.0
    if p.op == "dbi":
        for bi in (0, n - 1):  # batch entries are independent
            sub = _slice_problem(p, 1)
            ref = _f64_ref(t, sub, first_t, dy_t[bi : bi + 1])
            got = ours[bi : bi + 1].double()
            worst = max(worst, _t_err(t, got, ref))
    else:
        ref = None
        for bi in range(n):  # sum over the batch in float64
            sub = _slice_problem(p, 1)
            part = _f64_ref(t, sub, first_t[bi : bi + 1], dy_t[bi : bi + 1])
            ref = part if ref is None else ref + part
        worst = _t_err(t, ours.double(), ref)
    ok = worst <= TOL["float16"]
    return dict(row, ok=ok, err=worst, why="" if ok else f"error {worst:.3g}")


def _slice_problem(p: Problem, batch: int) -> Problem:
    g = p.geometry
    shape = (batch, *g.input_shape[1:])
    return Problem(
        p.op,
        Geometry(g.name, shape, g.filter_shape, g.strides, g.dilations),
        p.padding,
        p.data_format,
        p.dtype,
    )


def _t_err(t, got, ref) -> float:
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / max(scale, 1e-300)


def _f64_ref(t, p: Problem, first, dy):
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


# --------------------------------------------------------------------------------------------------
# 3. Benchmarks (GPU only)
# --------------------------------------------------------------------------------------------------

BATCH = 32


def _sym(k: int) -> tuple:
    return ((k // 2, k // 2), (k // 2, k // 2))


def bench_layers() -> list[tuple[str, Problem]]:
    """(suite, problem) pairs; symmetric explicit pads (k // 2) as the PyTorch models use."""
    dw = []
    mobilenet_v2 = [
        (112, 32, 1),
        (112, 96, 2),
        (56, 144, 1),
        (56, 144, 2),
        (28, 192, 1),
        (28, 192, 2),
        (14, 384, 1),
        (14, 576, 1),
        (14, 576, 2),
        (7, 960, 1),
    ]
    for hw, c, s in mobilenet_v2:
        dw.append(
            (
                "MobileNetV2",
                G(
                    f"mbv2_{hw}x{hw}x{c}_k3_s{s}",
                    (BATCH, hw, hw, c),
                    (3, 3, c, 1),
                    (s, s),
                    explicit=_sym(3),
                ),
            )
        )
    efficientnet_b0 = [
        (112, 32, 3, 1),
        (112, 96, 3, 2),
        (56, 144, 5, 2),
        (28, 240, 3, 2),
        (28, 240, 5, 1),
        (14, 480, 3, 1),
        (14, 672, 5, 1),
        (14, 672, 5, 2),
        (7, 1152, 5, 1),
        (7, 1152, 3, 1),
    ]
    for hw, c, k, s in efficientnet_b0:
        dw.append(
            (
                "EfficientNet-B0",
                G(
                    f"effb0_{hw}x{hw}x{c}_k{k}_s{s}",
                    (BATCH, hw, hw, c),
                    (k, k, c, 1),
                    (s, s),
                    explicit=_sym(k),
                ),
            )
        )
    resnet50 = [
        (224, 3, 64, 7, 2),
        (56, 64, 64, 1, 1),
        (56, 64, 64, 3, 1),
        (56, 64, 256, 1, 1),
        (56, 256, 64, 1, 1),
        (56, 128, 128, 3, 2),
        (28, 512, 128, 1, 1),
        (28, 128, 128, 3, 1),
        (14, 256, 256, 3, 1),
        (14, 1024, 256, 1, 1),
        (7, 512, 512, 3, 1),
        (7, 2048, 512, 1, 1),
    ]
    out = []
    for suite, g in dw:
        for op in ("dbf", "dbi"):
            out.append((suite, op, g))
    for hw, c, o, k, s in resnet50:
        g = G(
            f"rn50_{hw}x{hw}x{c}_o{o}_k{k}_s{s}",
            (BATCH, hw, hw, c),
            (k, k, c, o),
            (s, s),
            explicit=_sym(k),
        )
        out.append(("ResNet-50", "cbf", g))
    return out


def bench_problems(dtypes, formats) -> list[tuple[str, Problem]]:
    return [
        (suite, Problem(op, g, "EXPLICIT", fmt, dtype))
        for suite, op, g in bench_layers()
        for dtype in dtypes
        for fmt in formats
    ]


def tensor_bytes(p: Problem) -> int:
    item = np.dtype(STORAGE[p.dtype]).itemsize
    return item * (math.prod(p.first_shape) + math.prod(p.dy_shape) + math.prod(p.out_shape))


def measure_ceilings(torch) -> dict:
    """Device-to-device copy bandwidth and matrix-product rates measured on this GPU."""
    t = torch
    ceilings = {}
    nbytes = 1 << 30
    buffers = [t.empty(nbytes, dtype=t.uint8, device="cuda") for _ in range(2)]
    ms = _time_torch(t, lambda: buffers[1].copy_(buffers[0]), reps=20)
    ceilings["bandwidth"] = 2 * nbytes / (ms * 1e-3)  # bytes read + written per second
    buffers.clear()
    t.backends.cuda.matmul.allow_tf32 = False
    for dtype, n in (("float16", 8192), ("bfloat16", 8192), ("float32", 8192), ("float64", 4096)):
        a = t.randn(n, n, device="cuda", dtype=getattr(t, dtype))
        b = t.randn(n, n, device="cuda", dtype=getattr(t, dtype))
        ms = _time_torch(t, lambda a=a, b=b: a @ b, reps=10)
        ceilings[dtype] = 2 * n**3 / (ms * 1e-3)
    t.cuda.empty_cache()
    return ceilings


def _time_torch(t, fn, reps: int) -> float:
    for _ in range(3):
        fn()
    t.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_graph(t, stream, enqueue, rotations: int, target_ms: float = 3.0, replays: int = 15):
    """Median milliseconds per call of enqueue(i) (i = input set), from CUDA-graph replays.

    Warm-up runs each input set (this is also when cuDNN autotunes), then one graph holding K
    calls that cycle through the input sets is captured and replayed; each replay is timed with
    CUDA events and divided by K. Falls back to back-to-back launches if capture fails.
    Returns (milliseconds, "graph" or "stream", milliseconds of plain back-to-back launches):
    the last one includes launch gaps and is a cross-check that the graph really ran the work.
    """
    with t.cuda.stream(stream):
        for i in range(max(3, rotations)):
            enqueue(i % rotations)
        stream.synchronize()
        start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        start.record(stream)
        for i in range(rotations):
            enqueue(i)
        end.record(stream)
        end.synchronize()
        est = max(start.elapsed_time(end) / rotations, 1e-3)
        k = int(min(max(target_ms / est, 4), 400))
        k = max(rotations, k - k % rotations)
        try:
            graph = t.cuda.CUDAGraph()
            with t.cuda.graph(graph, stream=stream):
                for i in range(k):
                    enqueue(i % rotations)
            run = graph.replay
            how = "graph"
        except Exception:  # noqa: BLE001 - fall back to plain launches

            def run():
                for i in range(k):
                    enqueue(i % rotations)

            how = "stream"
        run()
        stream.synchronize()
        times = []
        for _ in range(replays):
            start.record(stream)
            run()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) / k)
        plain = []
        for _ in range(3):
            start.record(stream)
            for i in range(k):
                enqueue(i % rotations)
            end.record(stream)
            end.synchronize()
            plain.append(start.elapsed_time(end) / k)
    return statistics.median(times), how, statistics.median(plain)


class OurLaunch:
    """ours(i): enqueues our op on input set i on PyTorch's current stream."""

    def __init__(self, lib, p: Problem, bufs, out_buf, scratch, scratch_bytes: int):
        self.lib, self.p = lib, p
        self.shape, self.opts = p.shape_struct(), p.options_struct()
        self.ptrs = [(f.data_ptr(), d.data_ptr()) for f, d in bufs]
        self.out, self.scratch, self.scratch_bytes = (
            out_buf.data_ptr(),
            scratch.data_ptr(),
            scratch_bytes,
        )

    def __call__(self, i: int) -> None:
        import torch  # noqa: PLC0415

        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        err = self.lib.tfcg_launch(
            OP_CODE[self.p.op],
            DTYPE_CODE[self.p.dtype],
            self.shape,
            self.ptrs[i][0],
            self.ptrs[i][1],
            self.out,
            self.scratch,
            self.scratch_bytes,
            stream,
            self.opts,
        )
        if err:
            raise RuntimeError(self.lib.tfcg_error_string(err).decode())


def run_benchmarks(runner: Runner, torch, problems, ceilings, l2_bytes: int) -> list[dict]:
    t = torch
    t.backends.cudnn.benchmark = True
    t.backends.cudnn.allow_tf32 = False
    t.backends.cuda.matmul.allow_tf32 = False
    stream = runner.backend.torch_stream
    rows = []
    for suite, p in problems:
        t.cuda.empty_cache()
        set_bytes = tensor_bytes(p)
        rotations = int(min(8, max(1, math.ceil(3 * l2_bytes / max(set_bytes, 1)))))
        b = runner.backend
        gen = t.Generator(device="cuda").manual_seed(zlib.crc32(p.id.encode()))
        dt = getattr(t, TORCH_DTYPES[p.dtype])

        def rand(shape, gen=gen, dt=dt):  # uniform in [-1, 1), made on the GPU
            return (t.rand(shape, device="cuda", generator=gen) * 2 - 1).to(dt)

        bufs = [(rand(p.first_shape), rand(p.dy_shape)) for _ in range(rotations)]
        out_bytes = math.prod(p.out_shape) * np.dtype(STORAGE[p.dtype]).itemsize
        out_buf = b.empty(out_bytes)
        scratch_bytes = runner.scratch_bytes(p)
        scratch = b.empty(scratch_bytes)
        ours = OurLaunch(runner.lib, p, bufs, out_buf, scratch, scratch_bytes)

        row = {
            "suite": suite,
            "op": p.op,
            "layer": p.geometry.name,
            "dtype": p.dtype,
            "format": p.data_format,
            "kernel": runner.describe(p),
        }
        try:
            # Determinism on this size: two eager runs on input set 0, bitwise.
            outs = []
            for _ in range(2):
                b.poison(out_buf)
                with t.cuda.stream(stream):
                    ours(0)
                stream.synchronize()
                outs.append(out_buf.clone())
            row["deterministic"] = bool(t.equal(outs[0], outs[1]))
            row["ours_ms"], row["how"], row["ours_plain_ms"] = time_graph(
                t, stream, ours, rotations
            )
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["error"] = f"ours: {e}"
        try:
            convs = [TorchConv(t, p, f, d) for f, d in bufs]
            row["torch_backend"] = convs[0].backend_name()
            row["torch_ms"], row["torch_how"], row["torch_plain_ms"] = time_graph(
                t, stream, lambda i, convs=convs: convs[i](), rotations
            )
        except Exception as e:  # noqa: BLE001
            row["error"] = (row.get("error", "") + f" torch: {e}").strip()
        if "ours_ms" in row:
            seconds = row["ours_ms"] * 1e-3
            row["gbps"] = set_bytes / seconds / 1e9
            row["bw_frac"] = set_bytes / seconds / ceilings["bandwidth"]
            row["tflops"] = 2 * p.macs() / seconds / 1e12
            row["flop_frac"] = 2 * p.macs() / seconds / ceilings[p.dtype]
        if "ours_ms" in row and "torch_ms" in row:
            row["speedup"] = row["torch_ms"] / row["ours_ms"]
        rows.append(row)
        print(_bench_line(row), flush=True)
        del bufs, out_buf, scratch
    return rows


def _bench_line(r: dict) -> str:
    def f(key, fmt):
        return format(r[key], fmt) if key in r else "-"

    return (
        f"| {r['suite']} | {r['op']} | {r['layer']} | {r['dtype']} | {r['format']} | "
        f"{f('ours_ms', '.4f')} | {f('torch_ms', '.4f')} | {f('speedup', '.2f')} | "
        f"{r.get('torch_backend', '-')} | {f('gbps', '.0f')} ({f('bw_frac', '.0%')}) | "
        f"{f('tflops', '.1f')} ({f('flop_frac', '.0%')}) | "
        f"{'yes' if r.get('deterministic') else 'NO' if 'deterministic' in r else '-'} | "
        f"{r['kernel']} | {r.get('error', '')} |"
    )


BENCH_HEADER = (
    "| suite | op | layer | dtype | format | ours ms | torch ms | speedup | torch backend | "
    "ours GB/s (of copy bw) | ours TFLOP/s (of matmul rate) | bitwise repeat | our kernels | "
    "errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)

TARGETS = {"dbf": 1.5, "dbi": 1.0, "cbf": 0.8}


def geomeans(rows: list[dict]) -> str:
    lines = [
        "| op | dtype | format | layers | geomean speedup (torch ms / ours ms) | target |",
        "|---|---|---|---|---|---|",
    ]
    key = lambda r: (r["op"], r["dtype"], r["format"])  # noqa: E731
    for (op, dtype, fmt), group in itertools.groupby(sorted(rows, key=key), key=key):
        speedups = [r["speedup"] for r in group if "speedup" in r]
        if not speedups:
            continue
        gm = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        lines.append(f"| {op} | {dtype} | {fmt} | {len(speedups)} | {gm:.2f} | >= {TARGETS[op]} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Dry run: everything that needs no compiler and no GPU
# --------------------------------------------------------------------------------------------------


def dry_run(problems: list[Problem]) -> int:
    failures = 0
    counts = {}
    for p in problems:
        counts[(p.op, p.tag or "grid")] = counts.get((p.op, p.tag or "grid"), 0) + 1
        s = p.shape_struct()
        assert ctypes.sizeof(s) == 18 * 8
        n, h, w, c = p.input_nhwc
        assert s.out_rows == p.dy_shape[2 if p.data_format == "NCHW" else 1]
    # The vectorised reference against the naive loops on every float64 NHWC/NCHW grid case.
    checked = 0
    for p in problems:
        if p.dtype != "float64" or p.options:
            continue
        first, dy = make_inputs(p)
        fast = p.reference(first, dy)
        naive = p.naive_reference(first, dy)
        err = norm_err(fast, naive) if np.any(naive) else float(np.max(np.abs(fast), initial=0))
        checked += 1
        if err > 1e-12:
            failures += 1
            print(f"FAIL reference mismatch {p.id}: {err:.3g}")
    # Our storage conversions against NumPy / ml_dtypes where available.
    x = np.random.default_rng(0).standard_normal(10000) * 100
    assert np.array_equal(
        to_float64(to_storage(x, "float16"), "float16"), x.astype(np.float16).astype(np.float64)
    )
    try:
        import ml_dtypes  # noqa: PLC0415

        want = x.astype(ml_dtypes.bfloat16).astype(np.float64)
        assert np.array_equal(to_float64(to_storage(x, "bfloat16"), "bfloat16"), want)
        print("dry-run: bfloat16 rounding matches ml_dtypes")
    except ImportError:
        pass
    for (op, tag), n in sorted(counts.items()):
        print(f"dry-run: {op:3s} {tag:8s} {n:4d} problems")
    print(
        f"dry-run: reference.py vs tests/reference.py naive loops on {checked} float64 cases: "
        f"{failures} mismatches"
    )
    bench = bench_problems(("float16",), ("NHWC",))
    print(f"dry-run: {len(bench)} benchmark layers per (dtype, format); e.g.")
    for suite, p in bench[:3] + bench[-2:]:
        print(
            f"  {suite:16s} {p.op} {p.geometry.name:28s} in={p.input_shape} dy={p.dy_shape} "
            f"MB={tensor_bytes(p) / 1e6:.1f} GFLOP={2 * p.macs() / 1e9:.2f}"
        )
    for op, shape, filt, fmt in LARGE:
        p = Problem(op, Geometry("large", shape, filt), "SAME", fmt, "float16")
        print(
            f"  large {op}: input {p.input_shape} ({math.prod(p.input_shape):,} elements > "
            f"2^31 = {2**31:,}: {math.prod(p.input_shape) > 2**31})"
        )
    return failures


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def _gpu_name(torch) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(0)).strip("-")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="no build, no GPU")
    mode.add_argument("--emulate", action="store_true", help="CPU emulation build, no GPU")
    parser.add_argument("--quick", action="store_true", help="smaller correctness grid")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--bench-dtypes", default="float16,bfloat16,float32")
    parser.add_argument("--bench-formats", default="NHWC,NCHW")
    parser.add_argument("--filter", help="regex on problem ids (grid) / layer names (bench)")
    parser.add_argument("--arch", help="nvcc compute capabilities, e.g. 90 (default: detect)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="directory for the table")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    problems = grid(args.quick)
    if args.filter:
        problems = [p for p in problems if re.search(args.filter, p.id)]
    if args.dry_run:
        failures = dry_run(problems)
        print("dry-run:", "FAILED" if failures else "ok")
        return 1 if failures else 0

    torch = None
    if args.emulate:
        lib = load_library(build.build(emulate=True, jobs=os.cpu_count()))
        backend = EmuBackend()
    else:
        import torch  # noqa: PLC0415

        if not torch.cuda.is_available():
            print("no CUDA GPU visible to PyTorch; use --emulate or --dry-run", file=sys.stderr)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        arch = args.arch.split(",") if args.arch else None
        lib = load_library(build.build(emulate=False, arch=arch))
        backend = CudaBackend(torch)
        print(
            f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
            f"cuDNN {torch.backends.cudnn.version()}",
            flush=True,
        )
    runner = Runner(lib, backend)
    failed = 0
    report = []

    if not args.skip_grid:
        t0 = time.monotonic()
        print(f"grid: {len(problems)} problems ({backend.name})", flush=True)
        rows = check_grid(runner, problems, torch, verbose=args.verbose)
        failed += sum(not r["ok"] for r in rows)
        summary = summarize_grid(rows)
        print(summary)
        print(
            f"grid: {sum(r['ok'] for r in rows)}/{len(rows)} passed "
            f"({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        report += [
            "## Correctness grid",
            "",
            f"{len(rows)} problems, {len(rows) - sum(r['ok'] for r in rows)} failed.",
            "",
            summary,
            "",
        ]

    if torch is not None and not args.skip_large:
        rows = check_large(runner, torch)
        failed += sum(not r.get("ok") for r in rows)
        report += (
            ["## Over 2^31 elements", ""]
            + [
                f"* {r['id']} ({r['elements']:,} elements, {r['kernel']}): "
                f"{'ok' if r.get('ok') else 'FAILED ' + r.get('why', '')}, "
                f"error {r.get('err', float('nan')):.2e}"
                for r in rows
            ]
            + [""]
        )

    if torch is not None and report and args.skip_bench:
        # Correctness only: still leave the evidence under --out.
        date = datetime.date.today().isoformat()
        out = Path(args.out) / f"gpu_correctness_{date}_{_gpu_name(torch)}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        head = f"# GPU correctness: {torch.cuda.get_device_name(0)}, {date}\n\n"
        out.write_text(head + f"torch {torch.__version__}\n\n" + "\n".join(report) + "\n")
        print(f"report written to {out}")

    if torch is not None and not args.skip_bench:
        ceilings = measure_ceilings(torch)
        props = torch.cuda.get_device_properties(0)
        l2 = int(getattr(props, "L2_cache_size", 50 << 20))
        print(
            "ceilings: "
            + ", ".join(
                f"{k} {v / 1e12:.1f} TB/s" if k == "bandwidth" else f"{k} {v / 1e12:.0f} TFLOP/s"
                for k, v in ceilings.items()
            ),
            flush=True,
        )
        problems_b = bench_problems(args.bench_dtypes.split(","), args.bench_formats.split(","))
        if args.filter:
            problems_b = [(s, p) for s, p in problems_b if re.search(args.filter, p.id)]
        print(BENCH_HEADER, flush=True)
        rows = run_benchmarks(runner, torch, problems_b, ceilings, l2)
        failed += sum(r.get("deterministic") is False for r in rows)
        gm = geomeans(rows)
        print(gm)
        name = _gpu_name(torch)
        date = datetime.date.today().isoformat()
        ceil_line = ", ".join(
            f"copy {v / 1e12:.2f} TB/s"
            if k == "bandwidth"
            else f"{k} matmul {v / 1e12:.0f} TFLOP/s"
            for k, v in ceilings.items()
        )
        text = "\n".join(
            [
                f"# GPU benchmark: {torch.cuda.get_device_name(0)}, {date}",
                "",
                f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()} "
                "(benchmark=True, TF32 off). Batch 32. Medians of CUDA-graph replays, "
                "inputs rotated.",
                f"Ceilings measured on this GPU: {ceil_line}.",
                "",
                "Speedup = torch ms / ours ms (> 1: ours faster).",
                "",
                *report,
                "## Geomean speedups",
                "",
                gm,
                "",
                "## Layers",
                "",
                BENCH_HEADER,
                *[_bench_line(r) for r in rows],
                "",
            ]
        )
        out = Path(args.out) / f"gpu_benchmark_{date}_{name}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        raw = {"device": torch.cuda.get_device_name(0), "ceilings": ceilings, "rows": rows}
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
        print(f"table written to {out} (all numbers: {out.with_suffix('.json').name})")

    print("RESULT:", "FAILED" if failed else "ok", f"({failed} failures)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
