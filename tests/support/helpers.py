"""Shared helpers: test data, calling our ops and TF's, layouts, error norms.

Imported by the test modules after ``conftest.py`` has set ``TF_ENABLE_ONEDNN_OPTS=0``, so
``tf.raw_ops`` here always runs TF's native kernels.
"""

from __future__ import annotations

import functools
import os
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_convgrad
from tf_convgrad._geometry import from_nhwc_shape
from tf_convgrad._optable import OPS
from tf_convgrad.tools import reference
from tf_convgrad.tools.metrics import round_to

import configs

OURS = {key: getattr(tf_convgrad, op.function) for key, op in OPS.items()}
TF_RAW = {key: getattr(tf.raw_ops, op.tf_name) for key, op in OPS.items()}
OUR_OP_TYPES = {key: op.registered for key, op in OPS.items()}
SIZES_NAME = {key: op.sizes for key, op in OPS.items()}
TENSOR_NAMES = {key: (op.operand, "out_backprop") for key, op in OPS.items()}

TINY = np.finfo(np.float64).tiny

#: tests/support: the shared modules, on sys.path in the suite (conftest.py) and in its scripts.
SUPPORT = Path(__file__).resolve().parent


def script_env(**overrides: str) -> dict[str, str]:
    """This process's environment and ``overrides``, with tests/support first on PYTHONPATH: for a
    test file that runs itself as a script, so that it imports the support modules as here."""
    path = os.pathsep.join(p for p in (str(SUPPORT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **overrides, "PYTHONPATH": path}


# --------------------------------------------------------------------------------------------------
# Layouts and attributes
# --------------------------------------------------------------------------------------------------


def to_format(x: np.ndarray, data_format: str) -> np.ndarray:
    """NHWC array -> data_format layout."""
    return x if data_format == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def from_format(x: np.ndarray, data_format: str) -> np.ndarray:
    """data_format array -> NHWC."""
    return x if data_format == "NHWC" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def shape_to_format(shape, data_format: str) -> list[int]:
    """NHWC shape -> data_format order."""
    return list(from_nhwc_shape(shape, data_format))


def explicit8(explicit, data_format: str) -> list[int]:
    (top, bottom), (left, right) = explicit
    if data_format == "NHWC":
        return [0, 0, top, bottom, left, right, 0, 0]
    return [0, 0, 0, 0, top, bottom, left, right]


def op_attrs(case: configs.Case, data_format: str) -> dict:
    """The attribute kwargs shared by our op and tf.raw_ops."""
    return case.attrs(data_format)


def sizes_value(case: configs.Case, data_format: str) -> list[int]:
    if case.op == "dbi":
        return shape_to_format(case.input_shape, data_format)
    return list(case.filter_shape)


# --------------------------------------------------------------------------------------------------
# Data and float64 references (cached: every dtype x format of a case shares them)
# --------------------------------------------------------------------------------------------------


def _readonly(x: np.ndarray) -> np.ndarray:
    x.setflags(write=False)
    return x


@functools.cache
def case_data(case: configs.Case, dtype: str) -> dict[str, np.ndarray]:
    """T-rounded float64 operands, NHWC/HWIO: {"input" | "filter", "out_backprop"}."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    first_shape = case.filter_shape if case.op == "dbi" else case.input_shape
    first = rng.uniform(-1.0, 1.0, first_shape)
    dy = rng.uniform(-1.0, 1.0, case.out_shape)
    names = TENSOR_NAMES[case.op]
    return {names[0]: _readonly(round_to(first, dtype)), names[1]: _readonly(round_to(dy, dtype))}


def _reference(case: configs.Case, data: dict[str, np.ndarray], method: str) -> np.ndarray:
    """The reference's NHWC kernel (``"loops"`` or ``"einsum"``) on ``data``."""
    shape = case.input_shape if case.op == "dbi" else case.filter_shape
    return reference.KERNELS[method][case.op](
        data[OPS[case.op].operand], data["out_backprop"], shape, case.strides, case.dilations,
        case.pads_before,
    )  # fmt: skip


@functools.cache
def reference_result(case: configs.Case, dtype: str, method: str = "loops") -> np.ndarray:
    """float64 result on the T-rounded operands (NHWC / HWIO), by the reference's loops (the
    definition) or, for big problems, its einsum form."""
    return _readonly(_reference(case, case_data(case, dtype), method))


@functools.cache
def abs_reference_result(case: configs.Case, dtype: str, method: str = "loops") -> np.ndarray:
    """The reference on |operands|: the sum of |terms| of each output element."""
    data = {k: np.abs(v) for k, v in case_data(case, dtype).items()}
    return _readonly(_reference(case, data, method))


# --------------------------------------------------------------------------------------------------
# Running the ops
# --------------------------------------------------------------------------------------------------


def op_inputs(case: configs.Case, dtype: str, data_format: str) -> dict:
    """Keyword arguments for the tensors and sizes: T tensors in data_format, sizes int32."""
    tf_dtype = tf.as_dtype(dtype)
    kwargs = {}
    for name, value in case_data(case, dtype).items():
        if name != "filter":
            value = to_format(value, data_format)
        kwargs[name] = tf.cast(tf.constant(value), tf_dtype)  # exact: values are T-rounded
    kwargs[SIZES_NAME[case.op]] = tf.constant(sizes_value(case, data_format), tf.int32)
    return kwargs


def result_to_nhwc(case: configs.Case, value, data_format: str) -> np.ndarray:
    value = np.asarray(value).astype(np.float64)
    return from_format(value, data_format) if case.op == "dbi" else value


def run_ours(case: configs.Case, dtype: str, data_format: str = "NHWC") -> np.ndarray:
    """Our op, eager; the result as float64 NHWC/HWIO."""
    out = OURS[case.op](**op_inputs(case, dtype, data_format), **op_attrs(case, data_format))
    assert out.dtype == tf.as_dtype(dtype), f"output dtype {out.dtype.name}, expected {dtype}"
    return result_to_nhwc(case, out.numpy(), data_format)


def run_tf_native(case: configs.Case, dtype: str) -> np.ndarray:
    """tf.raw_ops in this process (oneDNN off: native kernels), NHWC only."""
    out = TF_RAW[case.op](**op_inputs(case, dtype, "NHWC"), **op_attrs(case, "NHWC"))
    return np.asarray(out.numpy()).astype(np.float64)


# --------------------------------------------------------------------------------------------------
# Which cases TF can serve as an oracle for (docs/SEMANTICS.md, "Capability matrix"; G-ids there)
# --------------------------------------------------------------------------------------------------


def tf_native_supports(case: configs.Case) -> bool:
    """TF's native CPU kernels compute this case correctly (NHWC is applied by the caller)."""
    if case.op == "cbf":
        if case.dilations != (1, 1) or case.groups != 1:
            return False  # G2, G3
        # G4: an empty output spatial extent returns uninitialised memory (observed for VALID
        # with filter > input, and here also for SAME with a zero-row input).
        if 0 in case.out_hw and 0 not in case.filter_shape:
            return False
        return True
    if case.dilations != (1, 1) or case.strides[0] != case.strides[1]:
        return False  # G8 (dilations ignored), G9
    if case.op == "dbf" and 0 in case.out_shape:
        return False  # G11: empty out_backprop leaves the filter gradient uninitialised
    if case.op == "dbi" and case.filter_shape[3] == 0 and 0 not in case.input_shape:
        return False  # G12: depth multiplier 0 leaves the input gradient uninitialised
    return True


def onednn_supports(case: configs.Case) -> bool:
    """TF's oneDNN kernels (f32/bf16 only; checked by the caller) handle this case.

    SAME/VALID only (EXPLICIT is never rewritten), NHWC and NCHW, CBF dilations and groups,
    depthwise unequal strides; depthwise dilations are ignored by oneDNN, so never compared.
    Empty problems are left out: oneDNN's behaviour on them is not an oracle for anything.
    """
    if case.padding == "EXPLICIT" or case.is_empty:
        return False
    if case.op != "cbf" and case.dilations != (1, 1):
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Error norms and assertions
# --------------------------------------------------------------------------------------------------


def scale_of(ref: np.ndarray) -> float:
    return max(float(np.max(np.abs(ref))) if ref.size else 0.0, TINY)


def norm_err(got: np.ndarray, ref: np.ndarray, scale: float | None = None) -> float:
    """max|got - ref| / max(max|ref|, tiny)."""
    if ref.size == 0:
        return 0.0
    scale = scale_of(ref) if scale is None else scale
    return float(np.max(np.abs(got - ref))) / scale


def assert_matches(got: np.ndarray, ref: np.ndarray, tol: float, what: str = "ours") -> None:
    """Shape equality, finiteness, and the norm-relative error bound.

    A result with no elements, or a reference that is all zero (an empty reduction), must match
    exactly: empty problems give zeros.
    """
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    if got.size == 0:
        return
    assert np.all(np.isfinite(got)), f"{what}: non-finite values {got[~np.isfinite(got)][:8]}"
    if not np.any(ref):
        worst = float(np.max(np.abs(got)))
        assert worst == 0.0, f"{what}: expected exact zeros (empty reduction), max|got| = {worst}"
        return
    err = norm_err(got, ref)
    where = np.unravel_index(np.argmax(np.abs(got - ref)), ref.shape)
    assert err <= tol, (
        f"{what}: norm-relative error {err:.3g} > {tol:.3g} "
        f"(worst at {tuple(int(k) for k in where)}: got {got[where]!r}, expected {ref[where]!r}, "
        f"max|ref| = {scale_of(ref):.6g})"
    )


def gamma(n: int, unit_roundoff: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): worst-case relative bound for n roundings."""
    nu = n * unit_roundoff
    return nu / (1.0 - nu) if nu < 1.0 else float("inf")
