"""Half and bfloat16 accumulate in float32 and are rounded once (docs/SEMANTICS.md).

Hand-made problems whose exact result is representable in T but which any accumulation in T,
or any rounding of partial sums (per batch, per row, per tap) to T, gets wrong:

* ``cancel_*``: 32*32 + 0.5*0.5 - 32*32 = 0.25. The 0.25 is below half an ulp of 1024 in both
  half (ulp 1) and bfloat16 (ulp 8), so a partial sum rounded to T loses it and gives 0.
* ``overflow``: 200*200 + 200*200 - 200*200 - 200*200 + 1 = 1. The partial sum 80000 overflows
  half (max 65504); a half accumulator gives inf or nan.
* ``stagnation``: 4096 ones. A half accumulator stalls at 2048, a bfloat16 one at 256.

TF's native kernels fail these (docs/SEMANTICS.md G14); they are not compared here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import tensorflow as tf

import helpers


class Problem(NamedTuple):
    id: str
    op: str
    first: np.ndarray  # input (cbf, dbf) or filter (dbi); NHWC / HWIO
    dy: np.ndarray  # NHWC
    sizes: tuple  # filter sizes (HWIO), or input sizes (NHWC) for dbi
    padding: str
    explicit: tuple  # ((top, bottom), (left, right))
    expected: np.ndarray  # exact result, NHWC / HWIO


def _filter_problems(op):
    """CBF and DBF with one channel and a 1x1 filter: dw = sum_{b, h, w} x * dy."""
    return [
        Problem(
            f"{op}-cancel_across_batch",
            op,
            np.array([32.0, 0.5, 32.0, 0.0]).reshape(2, 1, 2, 1),
            np.array([32.0, 0.5, -32.0, 0.0]).reshape(2, 1, 2, 1),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 0.25),
        ),
        Problem(
            f"{op}-cancel_across_rows",
            op,
            np.array([32.0, 0.5, 32.0, 0.0]).reshape(1, 2, 2, 1),
            np.array([32.0, 0.5, -32.0, 0.0]).reshape(1, 2, 2, 1),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 0.25),
        ),
        Problem(
            f"{op}-overflow",
            op,
            np.array([200.0, 200.0, 200.0, 200.0, 1.0]).reshape(1, 1, 5, 1),
            np.array([200.0, 200.0, -200.0, -200.0, 1.0]).reshape(1, 1, 5, 1),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 1.0),
        ),
        Problem(
            f"{op}-stagnation_4096",
            op,
            np.ones((4, 32, 32, 1)),
            np.ones((4, 32, 32, 1)),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 4096.0),
        ),
    ]


def _input_problems():
    """DBI: dx = sum over taps and multipliers of f * dy."""
    # 1x1 input, 2x2 filter, one pad on every side: out 2x2, and output (ho, wo) reads the
    # filter tap (1 - ho, 1 - wo); the four taps are summed into the single input pixel.
    taps = np.zeros((2, 2, 1, 1))
    taps[1, 1], taps[1, 0], taps[0, 1] = 32.0, 0.5, 32.0
    dy_taps = np.zeros((1, 2, 2, 1))
    dy_taps[0, 0, 0], dy_taps[0, 0, 1], dy_taps[0, 1, 0] = 32.0, 0.5, -32.0
    return [
        Problem(
            "dbi-cancel_across_taps",
            "dbi",
            taps,
            dy_taps,
            (1, 1, 1, 1),
            "EXPLICIT",
            ((1, 1), (1, 1)),
            np.full((1, 1, 1, 1), 0.25),
        ),
        Problem(
            "dbi-cancel_across_multiplier",
            "dbi",
            np.array([32.0, 0.5, 32.0]).reshape(1, 1, 1, 3),
            np.array([32.0, 0.5, -32.0]).reshape(1, 1, 1, 3),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 0.25),
        ),
        Problem(
            "dbi-overflow",
            "dbi",
            np.array([200.0, 200.0, 200.0, 200.0, 1.0]).reshape(1, 1, 1, 5),
            np.array([200.0, 200.0, -200.0, -200.0, 1.0]).reshape(1, 1, 1, 5),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 1.0),
        ),
        Problem(
            "dbi-stagnation_4096",
            "dbi",
            np.ones((1, 1, 1, 4096)),
            np.ones((1, 1, 1, 4096)),
            (1, 1, 1, 1),
            "VALID",
            ((0, 0), (0, 0)),
            np.full((1, 1, 1, 1), 4096.0),
        ),
    ]


PROBLEMS = _filter_problems("cbf") + _filter_problems("dbf") + _input_problems()


@pytest.mark.parametrize("data_format", ("NHWC", "NCHW"))
@pytest.mark.parametrize("dtype", ("float16", "bfloat16", "float32", "float64"))
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.id)
def test_single_rounding(problem, dtype, data_format):
    tf_dtype = tf.as_dtype(dtype)
    attrs = {
        "strides": [1, 1, 1, 1],
        "padding": problem.padding,
        "explicit_paddings": helpers.explicit8(problem.explicit, data_format)
        if problem.padding == "EXPLICIT"
        else [],
        "data_format": data_format,
    }
    dy = tf.cast(helpers.to_format(problem.dy, data_format), tf_dtype)
    if problem.op == "dbi":
        out = helpers.OURS["dbi"](
            input_sizes=helpers.shape_to_format(problem.sizes, data_format),
            filter=tf.cast(problem.first, tf_dtype),
            out_backprop=dy,
            **attrs,
        )
    else:
        out = helpers.OURS[problem.op](
            input=tf.cast(helpers.to_format(problem.first, data_format), tf_dtype),
            filter_sizes=list(problem.sizes),
            out_backprop=dy,
            **attrs,
        )
    got = out.numpy().astype(np.float64)
    if problem.op == "dbi":
        got = helpers.from_format(got, data_format)
    np.testing.assert_array_equal(got, problem.expected)


# bfloat16 Conv2DBackpropFilter runs on AMX tiles where the CPU has them. The core checks the
# exponents it packs and leaves operands with an infinity, a NaN, a denormal, or products beyond
# float32's normal range to the general core, so that such values propagate as IEEE float32
# arithmetic has them. (TensorFlow runs ops with denormals flushed to zero, AMX or not.)
# 3x3 SAME, 16 channels in and out: a geometry the AMX core takes.
def _amx_edge_operands(kind: str, rng: np.random.Generator):
    def bf16(values):
        return values.astype(tf.bfloat16.as_numpy_dtype).astype(np.float64)

    x = bf16(rng.standard_normal((2, 8, 8, 16)))
    dy = bf16(rng.standard_normal((2, 8, 8, 16)))
    if kind == "inf_and_nan":
        x[0, 2, 3, 4] = np.inf
        x[1, 5, 5, 9] = -np.inf
        dy[0, 6, 1, 3] = np.nan
    elif kind == "overflowing_products":
        # Products of about 2^130: infinities in float32, with signs.
        x[0, 4, 4, :] = 2.0**90
        dy[0, 4, 4, 0] = 2.0**40
    return x, dy


@pytest.mark.parametrize("kind", ("inf_and_nan", "overflowing_products"))
def test_bfloat16_cbf_special_values(kind):
    x, dy = _amx_edge_operands(kind, np.random.default_rng(7))
    out = helpers.OURS["cbf"](
        input=tf.constant(x, tf.bfloat16),
        filter_sizes=[3, 3, 16, 16],
        out_backprop=tf.constant(dy, tf.bfloat16),
        strides=[1, 1, 1, 1],
        padding="SAME",
    )
    got = out.numpy().astype(np.float64)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((3, 3, 16, 16))
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(3):
            for j in range(3):
                ref[i, j] = np.einsum("bhwc,bhwo->co", xp[:, i : i + 8, j : j + 8], dy)
        if kind == "overflowing_products":
            # Every product touching the 2^130 ones overflows float32 on its own.
            ref = np.where(np.abs(ref) > 2.0**127, np.copysign(np.inf, ref), ref)
    assert np.isnan(ref).any() or np.isinf(ref).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_array_equal(np.sign(got[np.isinf(ref)]), np.sign(ref[np.isinf(ref)]))
    finite = np.isfinite(ref)
    assert np.abs(got[finite] - ref[finite]).max() <= 8e-3 * np.abs(ref[finite]).max()
