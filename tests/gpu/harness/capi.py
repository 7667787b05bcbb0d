"""ctypes mirror of the harness library's C API (``tests/gpu/capi.cu.cc``).

The structs mirror ``tf_convgrad::gpu::ConvShape`` and ``LaunchOptions``, the codes mirror the
``Op`` and ``DType`` enums of ``tf_ops/cc/kernels/gpu/conv_backprop_gpu.h``, and the storage
types are how each element type lies in memory (bfloat16 as the upper half of a binary32, held
in ``uint16``). :func:`load_library` checks the struct layout against the library.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

SHAPE_FIELDS = (
    "batch in_rows in_cols in_depth filter_rows filter_cols groups depth_multiplier out_rows "
    "out_cols out_depth stride_rows stride_cols dilation_rows dilation_cols pad_top pad_left nchw"
).split()

#: ``gpu::Op`` by op key.
OP_CODE = {"cbf": 0, "dbf": 1, "dbi": 2}
#: ``gpu::DType`` by dtype name.
DTYPE_CODE = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
#: NumPy storage type of each element type.
STORAGE = {
    "float16": np.float16,
    "bfloat16": np.uint16,
    "float32": np.float32,
    "float64": np.float64,
}


class ConvShape(ctypes.Structure):
    """``gpu::ConvShape``: 18 int64 fields."""

    _fields_ = [(name, ctypes.c_int64) for name in SHAPE_FIELDS]


class LaunchOptions(ctypes.Structure):
    """``gpu::LaunchOptions``: test switches that force a kernel variant."""

    _fields_ = [
        ("force_index64", ctypes.c_int32),
        ("force_generic", ctypes.c_int32),
        ("force_simt", ctypes.c_int32),
        ("force_splits", ctypes.c_int32),
    ]


def load_library(path: Path) -> ctypes.CDLL:
    """Loads the harness library built by ``build.py`` and declares its entry points.

    Raises:
        RuntimeError: If the library's ``ConvShape`` differs in size from :class:`ConvShape`.
    """
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


def itemsize(dtype: str) -> int:
    """Bytes per element of ``dtype``."""
    return np.dtype(STORAGE[dtype]).itemsize


def to_storage(a: np.ndarray, dtype: str) -> np.ndarray:
    """float64 -> the dtype's storage (bfloat16 as uint16 bits, rounded to nearest even)."""
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.ascontiguousarray(a, dtype=STORAGE[dtype])


def to_float64(s: np.ndarray, dtype: str) -> np.ndarray:
    """The dtype's storage -> float64 (exact)."""
    if dtype == "bfloat16":
        return (s.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return s.astype(np.float64)
