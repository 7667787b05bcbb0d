"""Shared helpers: test data, calling our ops and TF's, layouts, error norms.

Imported by the test modules after ``conftest.py`` has set ``TF_ENABLE_ONEDNN_OPTS=0``, so
``tf.raw_ops`` here always runs TF's native kernels.
"""

from __future__ import annotations

import functools
import zlib

import ml_dtypes
import numpy as np
import tensorflow as tf
import tf_convgrad

import configs
import reference

NP_DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}

OURS = {
    "cbf": tf_convgrad.conv2d_backprop_filter,
    "dbf": tf_convgrad.depthwise_conv2d_native_backprop_filter,
    "dbi": tf_convgrad.depthwise_conv2d_native_backprop_input,
}
TF_RAW = {op: getattr(tf.raw_ops, name) for op, name in configs.OP_NAMES.items()}
OUR_OP_TYPES = {op: "ConvGrad>" + name for op, name in configs.OP_NAMES.items()}
SIZES_NAME = {"cbf": "filter_sizes", "dbf": "filter_sizes", "dbi": "input_sizes"}
TENSOR_NAMES = {
    "cbf": ("input", "out_backprop"),
    "dbf": ("input", "out_backprop"),
    "dbi": ("filter", "out_backprop"),
}

REFERENCE_NAIVE = {
    "cbf": reference.conv2d_backprop_filter_naive,
    "dbf": reference.depthwise_backprop_filter_naive,
    "dbi": reference.depthwise_backprop_input_naive,
}
REFERENCE_FAST = {
    "cbf": reference.conv2d_backprop_filter_fast,
    "dbf": reference.depthwise_backprop_filter_fast,
    "dbi": reference.depthwise_backprop_input_fast,
}

TINY = np.finfo(np.float64).tiny


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
    shape = list(shape)
    return shape if data_format == "NHWC" else [shape[0], shape[3], shape[1], shape[2]]


def spatial4(hw, data_format: str) -> list[int]:
    """(h, w) -> the 4-element strides/dilations list, 1 in the batch and depth positions."""
    return [1, hw[0], hw[1], 1] if data_format == "NHWC" else [1, 1, hw[0], hw[1]]


def explicit8(explicit, data_format: str) -> list[int]:
    (top, bottom), (left, right) = explicit
    if data_format == "NHWC":
        return [0, 0, top, bottom, left, right, 0, 0]
    return [0, 0, 0, 0, top, bottom, left, right]


def op_attrs(case: configs.Case, data_format: str) -> dict:
    """The attribute kwargs shared by our op and tf.raw_ops."""
    return {
        "strides": spatial4(case.strides, data_format),
        "padding": case.padding,
        "explicit_paddings": explicit8(case.explicit, data_format)
        if case.padding == "EXPLICIT"
        else [],
        "data_format": data_format,
        "dilations": spatial4(case.dilations, data_format),
    }


def sizes_value(case: configs.Case, data_format: str) -> list[int]:
    if case.op == "dbi":
        return shape_to_format(case.input_shape, data_format)
    return list(case.filter_shape)


# --------------------------------------------------------------------------------------------------
# Data and float64 references (cached: every dtype x format of a case shares them)
# --------------------------------------------------------------------------------------------------


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """float64 values rounded to T, returned as float64."""
    return x.astype(NP_DTYPES[dtype]).astype(np.float64)


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


def _reference(case: configs.Case, data: dict[str, np.ndarray], fast: bool) -> np.ndarray:
    fn = (REFERENCE_FAST if fast else REFERENCE_NAIVE)[case.op]
    if case.op == "dbi":
        return fn(
            data["filter"],
            data["out_backprop"],
            case.input_shape,
            case.strides,
            case.dilations,
            case.pads_before,
        )
    return fn(
        data["input"],
        data["out_backprop"],
        case.filter_shape,
        case.strides,
        case.dilations,
        case.pads_before,
    )


@functools.cache
def reference_result(case: configs.Case, dtype: str, fast: bool = False) -> np.ndarray:
    """float64 result on the T-rounded operands (NHWC / HWIO)."""
    return _readonly(_reference(case, case_data(case, dtype), fast))


@functools.cache
def abs_reference_result(case: configs.Case, dtype: str, fast: bool = False) -> np.ndarray:
    """The reference on |operands|: the sum of |terms| of each output element."""
    data = {k: np.abs(v) for k, v in case_data(case, dtype).items()}
    return _readonly(_reference(case, data, fast))


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
