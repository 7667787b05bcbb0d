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
