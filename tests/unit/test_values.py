"""Values of the three ops against three oracles.

1. The float64 NumPy reference (``tf_convgrad.tools.reference``, its loops) on the same
   T-rounded inputs, for every hand-written case x dtype x format (random cases: two drawn
   pairs each, ``configs.combos``).
   Norm-relative tolerance ``configs.TOL``: our half/bfloat16 accumulate in float32 and round
   once, so they must be within about one unit roundoff of the exact result.
2. ``tf.raw_ops`` with TF's native kernels (in process; conftest turned oneDNN off), NHWC, where
   TF's kernels compute the case correctly (``helpers.tf_native_supports``).
3. ``tf.raw_ops`` with oneDNN (one subprocess per tier through ``tf_convgrad.tools.oracle``),
   float32 and bfloat16, NHWC and NCHW, SAME/VALID.

Comparisons between two implementations use ``2 * TOL``: each is within ``TOL`` of the reference.
TF's native half/bfloat16 kernels accumulate in T (docs/SEMANTICS.md, "Numerics: accumulation
types": bfloat16 CBF errors up to 15%), so they are not held to ``TOL``. Instead the test checks
the rigorous worst-case bound of any summation order in T, elementwise::

    |ours - tf| <= TOL * max|ref| + gamma_{n+2}(u_T) * sum|terms|

with ``n`` the number of products per output element (plus one rounding of each product and one
of the result), ``gamma_k = k u / (1 - k u)``. Where that bound is vacuous (``k u >= 1``, only
big 16-bit reductions) the comparison is skipped, and says so.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tf_convgrad.tools.metrics import UNIT_ROUNDOFF

import configs
import helpers
from configs import DEFAULT, DTYPES, FORMATS, GOLDEN, ONEDNN_DTYPES, SLOW, TOL

_case_ids = {"ids": lambda case: case.id}


def _params(cases, dtypes=None, formats=None):
    """pytest params (case, dtype, data_format) over configs.combos of each case."""
    return [
        pytest.param(case, dtype, fmt, id=f"{case.id}-{dtype}-{fmt}")
        for case in cases
        for dtype, fmt in configs.combos(case, dtypes, formats)
    ]


def _params_nhwc(cases, dtypes=None):
    """(case, dtype) params for NHWC-only oracles: the dtypes a case is tested with at all."""
    params = []
    for case in cases:
        case_dtypes = dict.fromkeys(dtype for dtype, _ in configs.combos(case, dtypes))
        params += [pytest.param(case, dtype, id=f"{case.id}-{dtype}") for dtype in case_dtypes]
    return params


# --------------------------------------------------------------------------------------------------
# Oracle 1: the float64 NumPy reference
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "dtype", "data_format"), _params(DEFAULT))
def test_matches_reference(case, dtype, data_format):
    got = helpers.run_ours(case, dtype, data_format)
    helpers.assert_matches(got, helpers.reference_result(case, dtype), TOL[dtype])


@pytest.mark.slow
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SLOW, **_case_ids)
def test_layer_matches_reference(case, dtype, data_format):
    got = helpers.run_ours(case, dtype, data_format)
    ref = helpers.reference_result(case, dtype, method="einsum")
    helpers.assert_matches(got, ref, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", configs.DBI_STREAM, **_case_ids)
def test_streamed_dx_matches_reference(case, dtype):
    got = helpers.run_ours(case, dtype, "NHWC")
    ref = helpers.reference_result(case, dtype, method="einsum")
    helpers.assert_matches(got, ref, TOL[dtype])


# --------------------------------------------------------------------------------------------------
# Oracle 2: TF's native kernels, in process
# --------------------------------------------------------------------------------------------------


def _check_against_tf(case, dtype, tf_value, method, what):
    ref = helpers.reference_result(case, dtype, method=method)
    ours = helpers.run_ours(case, dtype, "NHWC")
    assert tf_value.shape == ref.shape, f"{what}: shape {tf_value.shape}, expected {ref.shape}"
    if dtype in ("float32", "float64"):
        helpers.assert_matches(ours, tf_value, 2 * TOL[dtype], what=f"ours vs {what}")
        return
    # 16-bit: TF accumulates in T. Elementwise worst-case bound on |ours - tf| (module docstring).
    bound_factor = helpers.gamma(case.terms_per_output + 2, UNIT_ROUNDOFF[dtype])
    if not np.isfinite(bound_factor):
        pytest.skip(
            f"worst-case bound of {what}'s {dtype} accumulation is vacuous for "
            f"{case.terms_per_output} terms per output; ours is checked against float64 instead"
        )
    if ref.size == 0:
        return
    abs_ref = helpers.abs_reference_result(case, dtype, method=method)
    bound = TOL[dtype] * helpers.scale_of(ref) + bound_factor * abs_ref
    excess = np.abs(ours - tf_value) - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert np.all(excess <= 0), (
        f"ours vs {what} ({dtype}): |diff| exceeds the accumulation bound at {worst}: "
        f"ours {ours[worst]!r}, tf {tf_value[worst]!r}, float64 {ref[worst]!r}, "
        f"bound {bound[worst]!r}"
    )


def _tf_native_cases(cases):
    return [case for case in cases if helpers.tf_native_supports(case)]


@pytest.mark.parametrize(("case", "dtype"), _params_nhwc(_tf_native_cases(DEFAULT)))
def test_matches_tf_native(case, dtype):
    tf_value = helpers.run_tf_native(case, dtype)
    _check_against_tf(case, dtype, tf_value, method="loops", what="tf.raw_ops native")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", _tf_native_cases(SLOW), **_case_ids)
def test_layer_matches_tf_native(case, dtype):
    tf_value = helpers.run_tf_native(case, dtype)
    _check_against_tf(case, dtype, tf_value, method="einsum", what="tf.raw_ops native")


# --------------------------------------------------------------------------------------------------
# Oracle 3: TF's oneDNN kernels, all cases of a tier batched into one subprocess
# --------------------------------------------------------------------------------------------------


def _check_against_onednn(onednn_results, tier, case, dtype, data_format):
    result = onednn_results.get(tier, case, dtype, data_format)
    if not result["ok"]:
        detail = result.get("error_class") or f"crashed, returncode {result.get('returncode')}"
        pytest.skip(f"TF oneDNN cannot compute this case: {detail}: {result.get('message')}")
    onednn_value = helpers.result_to_nhwc(case, result["value"], data_format)
    ours = helpers.run_ours(case, dtype, data_format)
    # oneDNN accumulates bfloat16 in float32 and rounds once, like ours (docs/SEMANTICS.md,
    # "Numerics: accumulation types").
    helpers.assert_matches(
        ours, onednn_value, 2 * TOL[dtype], what=f"ours vs TF oneDNN ({result.get('kernel')})"
    )


@pytest.mark.parametrize(
    ("case", "dtype", "data_format"),
    _params([c for c in DEFAULT if helpers.onednn_supports(c)], ONEDNN_DTYPES),
)
def test_matches_tf_onednn(onednn_results, case, dtype, data_format):
    _check_against_onednn(onednn_results, "default", case, dtype, data_format)


@pytest.mark.slow
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", ONEDNN_DTYPES)
@pytest.mark.parametrize("case", [c for c in SLOW if helpers.onednn_supports(c)], **_case_ids)
def test_layer_matches_tf_onednn(onednn_results, case, dtype, data_format):
    _check_against_onednn(onednn_results, "slow", case, dtype, data_format)


def test_onednn_oracle_really_ran_onednn(onednn_results):
    """Guards the oracle itself: float32 SAME/VALID cases must have run a oneDNN kernel."""
    kernels = [
        onednn_results.get("default", case, dtype, fmt).get("kernel", "")
        for case in DEFAULT
        if helpers.onednn_supports(case)
        for dtype, fmt in configs.combos(case, ("float32",), ("NHWC",))
    ]
    mkl = [k for k in kernels if "mkl" in k.lower()]
    assert len(mkl) == len(kernels), f"kernels seen: {sorted(set(kernels))}"


# --------------------------------------------------------------------------------------------------
# Known values from TF's own conv_ops_test.py (data = arange(1, n + 1)); independent of all oracles
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g[0])
def test_conv2d_backprop_filter_golden_values(golden, dtype, data_format):
    """Small integers: exact in every dtype, up to the one rounding of the result to T
    (bfloat16 has 8 significant bits: 287 becomes 288)."""
    name, input_shape, filter_shape, strides, padding, expected = golden
    case = configs.make_case(
        "cbf", configs.Geometry(name, input_shape, filter_shape, strides), padding
    )
    x = np.arange(1, np.prod(input_shape) + 1, dtype=np.float64).reshape(input_shape)
    dy = np.arange(1, np.prod(case.out_shape) + 1, dtype=np.float64).reshape(case.out_shape)
    tf_dtype = tf.as_dtype(dtype)
    out = helpers.OURS["cbf"](
        input=tf.cast(helpers.to_format(x, data_format), tf_dtype),
        filter_sizes=list(filter_shape),
        out_backprop=tf.cast(helpers.to_format(dy, data_format), tf_dtype),
        **helpers.op_attrs(case, data_format),
    )
    expected = helpers.round_to(np.asarray(expected, np.float64), dtype)
    np.testing.assert_array_equal(out.numpy().astype(np.float64).ravel(), expected)


# --------------------------------------------------------------------------------------------------
# Metamorphic relations between our own ops (PyTorch's test_Conv2d_depthwise_naive_groups spirit)
# --------------------------------------------------------------------------------------------------

DW_CASES = [c for c in DEFAULT if c.op == "dbf"]
GROUPED_CASES = [c for c in DEFAULT if c.op == "cbf" and c.groups > 1]


def _tensor(x, data_format, dtype="float64"):
    return tf.cast(helpers.to_format(x, data_format), dtype)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("case", [c for c in DW_CASES if c.input_shape[3] > 0], **_case_ids)
def test_depthwise_filter_equals_grouped_conv2d(case, data_format):
    """DBF(x, dy)[i, j, c, m] == CBF with G = C groups (filter [fh, fw, 1, C*M])[i, j, 0, c*M+m]."""
    data = helpers.case_data(case, "float64")
    fh, fw, channels, mult = case.filter_shape
    attrs = helpers.op_attrs(case, data_format)
    x = _tensor(data["input"], data_format)
    dy = _tensor(data["out_backprop"], data_format)
    depthwise = helpers.OURS["dbf"](
        input=x, filter_sizes=list(case.filter_shape), out_backprop=dy, **attrs
    ).numpy()
    grouped = helpers.OURS["cbf"](
        input=x, filter_sizes=[fh, fw, 1, channels * mult], out_backprop=dy, **attrs
    ).numpy()
    helpers.assert_matches(depthwise, grouped.reshape(fh, fw, channels, mult), 1e-12)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("case", DW_CASES, **_case_ids)
def test_depthwise_ops_are_adjoint(case, data_format):
    """<DBF(x, dy), w> == <dy, fprop(x, w)> == <DBI(w, dy), x> for any x, w, dy."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, case.input_shape)
    w = rng.uniform(-1, 1, case.filter_shape)
    dy = rng.uniform(-1, 1, case.out_shape)
    attrs = helpers.op_attrs(case, data_format)
    dw = helpers.OURS["dbf"](
        input=_tensor(x, data_format),
        filter_sizes=list(case.filter_shape),
        out_backprop=_tensor(dy, data_format),
        **attrs,
    ).numpy()
    dx = helpers.OURS["dbi"](
        input_sizes=helpers.shape_to_format(case.input_shape, data_format),
        filter=tf.constant(w),
        out_backprop=_tensor(dy, data_format),
        **attrs,
    ).numpy()
    lhs = float(np.sum(dw * w))
    rhs = float(np.sum(helpers.from_format(dx, data_format) * x))
    magnitude = float(np.sum(np.abs(dw * w))) + float(np.sum(np.abs(dx))) + 1.0
    assert abs(lhs - rhs) <= 1e-12 * magnitude, f"<dw, w> = {lhs!r} but <dx, x> = {rhs!r}"


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("case", GROUPED_CASES, **_case_ids)
def test_grouped_conv2d_equals_concatenated_groups(case, data_format):
    """A grouped CBF equals the per-group CBFs concatenated along the output depth."""
    data = helpers.case_data(case, "float64")
    fh, fw, cin_f, cout = case.filter_shape
    groups, cout_g = case.groups, cout // case.groups
    attrs = helpers.op_attrs(case, data_format)
    grouped = helpers.OURS["cbf"](
        input=_tensor(data["input"], data_format),
        filter_sizes=list(case.filter_shape),
        out_backprop=_tensor(data["out_backprop"], data_format),
        **attrs,
    ).numpy()
    parts = []
    for g in range(groups):
        parts.append(
            helpers.OURS["cbf"](
                input=_tensor(data["input"][..., g * cin_f : (g + 1) * cin_f], data_format),
                filter_sizes=[fh, fw, cin_f, cout_g],
                out_backprop=_tensor(
                    data["out_backprop"][..., g * cout_g : (g + 1) * cout_g], data_format
                ),
                **attrs,
            ).numpy()
        )
    helpers.assert_matches(grouped, np.concatenate(parts, axis=3), 1e-12)
