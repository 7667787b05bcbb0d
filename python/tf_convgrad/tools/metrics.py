"""The one tolerance table and the error measures every checker uses.

Tests, ``crosscheck``, ``crosscheck --model``, the fuzzer and the GPU harness (which loads this
file without TensorFlow) all judge results with these. NumPy only (``ml_dtypes``, a TensorFlow
dependency, for bfloat16).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "DTYPES",
    "TOLERANCES",
    "UNIT_ROUNDOFF",
    "abs_error",
    "relative_error",
    "round_to",
    "ulp_distance",
]

#: The dtypes of the ops' ``T``, narrowest first.
DTYPES = ("float16", "bfloat16", "float32", "float64")

#: Pass thresholds for our ops against the float64 reference: the norm-relative error
#: ``max|ours - ref| / max|ref|`` (:func:`relative_error`) must not exceed these.
TOLERANCES = {"float64": 1e-12, "float32": 2e-5, "float16": 1e-3, "bfloat16": 8e-3}

#: Unit roundoff u = 2^-p of each dtype (p = significand bits including the implicit one).
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}

_TINY = np.finfo(np.float64).tiny


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


def _int_view(dtype: str) -> tuple[Any, Any]:
    if dtype == "bfloat16":
        import ml_dtypes  # a TensorFlow dependency

        return ml_dtypes.bfloat16, np.int16
    return {"float16": (np.float16, np.int16), "float32": (np.float32, np.int32),
            "float64": (np.float64, np.int64)}[dtype]  # fmt: skip


def _ordered_bits(values: np.ndarray, dtype: str) -> np.ndarray:
    """Integers in the order of the floats (adjacent floats differ by 1; -0 and +0 are 0)."""
    float_type, int_type = _int_view(dtype)
    bits = values.astype(float_type).view(int_type).astype(np.int64)
    magnitude = bits & np.int64(np.iinfo(int_type).max)
    return np.where(bits < 0, -magnitude, magnitude)


def ulp_distance(value: np.ndarray, ref: np.ndarray, dtype: str) -> float:
    """Largest distance in units in the last place of ``dtype`` between ``value`` and ``ref``
    rounded to ``dtype`` (0: every element is the correctly rounded reference).

    Args:
        value: Results, exactly representable in ``dtype`` (held in any float type).
        ref: The float64 reference.
        dtype: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.

    Returns:
        The maximum distance (0 for empty arrays), inf for a wrong shape or a non-finite value
        where the rounded reference is finite.
    """
    value = np.asarray(value, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if value.shape != ref.shape:
        return math.inf
    if value.size == 0:
        return 0.0
    float_type, _ = _int_view(dtype)
    with np.errstate(over="ignore"):
        rounded = ref.astype(float_type)
        rounded_f64 = rounded.astype(np.float64)
    if np.any(~np.isfinite(value) & np.isfinite(rounded_f64)):
        return math.inf
    a, r = _ordered_bits(value, dtype), _ordered_bits(rounded_f64, dtype)
    same_side = (a >= 0) == (r >= 0)
    # Same side: the integer difference is exact; across zero it may not fit in int64.
    near = np.abs(np.where(same_side, a, 0) - np.where(same_side, r, 0))
    far = np.abs(a.astype(np.float64)) + np.abs(r.astype(np.float64))
    return float(max(near.max(), np.where(same_side, 0.0, far).max()))


def abs_error(value: np.ndarray, ref: np.ndarray) -> float:
    """``max|value - ref|``: 0 for empty arrays, inf for a wrong shape or non-finite values."""
    value = np.asarray(value, dtype=np.float64)
    if value.shape != np.shape(ref):
        return math.inf
    if value.size == 0:
        return 0.0
    if not np.all(np.isfinite(value)):
        return math.inf
    with np.errstate(over="ignore"):
        return float(np.max(np.abs(value - np.asarray(ref, dtype=np.float64))))
