"""Self-checks of tests/reference.py, so that the float64 oracle is not taken on trust.

* Output sizes and pads reproduce the configurations TF's formulas were verified on
  (docs/SEMANTICS.md, "Output size and padding").
* The naive loops reproduce the exact values of TF's own conv_ops_test.py.
* The naive loops and the vectorised formulation agree on every small case.
* Both backprops are adjoint to the forward depthwise convolution.
"""

from __future__ import annotations

import numpy as np
import pytest

import configs
import reference
from test_values import GOLDEN


@pytest.mark.parametrize(
    ("padding", "in_hw", "k_hw", "stride", "explicit", "out_hw", "pads_before"),
    [
        ("SAME", (2, 3), (4, 4), 1, None, (2, 3), (1, 1)),
        ("SAME", (2, 3), (3, 2), 2, None, (1, 2), (0, 0)),
        ("VALID", (3, 4), (2, 3), 2, None, (1, 1), (0, 0)),
        ("EXPLICIT", (5, 6), (3, 3), 2, ((1, 2), (2, 1)), (3, 4), (1, 2)),
        ("EXPLICIT", (4, 5), (2, 3), 3, ((0, 3), (1, 0)), (2, 2), (0, 1)),
    ],
)
def test_output_size_matches_tf_table(padding, in_hw, k_hw, stride, explicit, out_hw, pads_before):
    got = reference.conv_geometry(
        in_hw, k_hw, (stride, stride), (1, 1), padding, explicit or ((0, 0), (0, 0))
    )
    assert got == (out_hw, pads_before)


def test_output_size_truncates_like_cpp():
    # docs/SEMANTICS.md, "Output size and padding": input 1, filter 4, VALID, stride 2 -> 0
    # (accepted); stride 1 -> error.
    assert reference.output_size(1, 4, 2, 1, "VALID")[0] == 0
    with pytest.raises(ValueError):
        reference.output_size(1, 4, 1, 1, "VALID")


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g[0])
def test_naive_reference_golden_values(golden):
    name, input_shape, filter_shape, strides, padding, expected = golden
    case = configs.make_case(
        "cbf", configs.Geometry(name, input_shape, filter_shape, strides), padding
    )
    x = np.arange(1, np.prod(input_shape) + 1, dtype=np.float64).reshape(input_shape)
    dy = np.arange(1, np.prod(case.out_shape) + 1, dtype=np.float64).reshape(case.out_shape)
    for fn in (reference.conv2d_backprop_filter_naive, reference.conv2d_backprop_filter_fast):
        dw = fn(x, dy, filter_shape, case.strides, case.dilations, case.pads_before)
        np.testing.assert_array_equal(dw.ravel(), expected)


def _operands(case):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, case.input_shape)
    w = rng.uniform(-1, 1, case.filter_shape)
    dy = rng.uniform(-1, 1, case.out_shape)
    return x, w, dy


@pytest.mark.parametrize("case", configs.DEFAULT, ids=lambda c: c.id)
def test_naive_equals_fast(case):
    x, w, dy = _operands(case)
    geometry = (case.strides, case.dilations, case.pads_before)
    if case.op == "cbf":
        pair = (reference.conv2d_backprop_filter_naive, reference.conv2d_backprop_filter_fast)
        args = (x, dy, case.filter_shape)
    elif case.op == "dbf":
        pair = (reference.depthwise_backprop_filter_naive, reference.depthwise_backprop_filter_fast)
        args = (x, dy, case.filter_shape)
    else:
        pair = (reference.depthwise_backprop_input_naive, reference.depthwise_backprop_input_fast)
        args = (w, dy, case.input_shape)
    naive, fast = (fn(*args, *geometry) for fn in pair)
    assert naive.shape == fast.shape == case.result_shape
    np.testing.assert_allclose(
        naive, fast, rtol=0, atol=1e-12 * max(1.0, np.abs(naive).max(initial=0))
    )


@pytest.mark.parametrize("case", [c for c in configs.DEFAULT if c.op == "dbf"], ids=lambda c: c.id)
def test_depthwise_references_are_adjoint_to_forward(case):
    """<fprop(x, w), dy> == <wgrad(dy, x), w> == <dgrad(dy, w), x>."""
    x, w, dy = _operands(case)
    geometry = (case.strides, case.dilations, case.pads_before)
    y = reference.depthwise_forward_fast(x, w, case.out_hw, *geometry)
    dw = reference.depthwise_backprop_filter_naive(x, dy, case.filter_shape, *geometry)
    dx = reference.depthwise_backprop_input_naive(w, dy, case.input_shape, *geometry)
    forward = float(np.sum(y * dy))
    assert np.isclose(float(np.sum(dw * w)), forward, rtol=1e-12, atol=1e-12)
    assert np.isclose(float(np.sum(dx * x)), forward, rtol=1e-12, atol=1e-12)


def test_reference_does_not_import_tensorflow():
    source = open(reference.__file__).read()
    assert "import tensorflow" not in source and "from tensorflow" not in source
