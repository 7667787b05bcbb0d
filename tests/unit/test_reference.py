"""Self-checks of the float64 reference (``tf_convgrad.tools.reference``), so that the oracle is
not taken on trust.

* Output sizes and pads reproduce the configurations TF's formulas were verified on
  (docs/SEMANTICS.md, "Output size and padding").
* Both formulations reproduce the exact values of TF's own conv_ops_test.py.
* The loops (the definition) and the einsum form agree on every default-run case, and through the
  ops' front end on crosscheck's grid (NHWC and NCHW).
* Both depthwise backprops are adjoint to the forward depthwise convolution.
"""

from __future__ import annotations

import numpy as np
import pytest
from tf_convgrad import _geometry
from tf_convgrad._optable import OPS
from tf_convgrad.tools import problems, reference

import configs
from configs import GOLDEN


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
    problem = problems.Problem(
        "cbf", (1, *in_hw, 1), (*k_hw, 1, 1), (stride, stride), (1, 1), padding,
        explicit or ((0, 0), (0, 0)),
    )  # fmt: skip
    assert (problem.out_hw, problem.pads_before) == (out_hw, pads_before)


def test_output_size_truncates_like_cpp():
    # docs/SEMANTICS.md, "Output size and padding": input 1, filter 4, VALID, stride 2 -> 0
    # (accepted); stride 1 -> error.
    assert _geometry.windowed_output_size(1, 4, 1, 2, "VALID")[0] == 0
    with pytest.raises(ValueError):
        _geometry.windowed_output_size(1, 4, 1, 1, "VALID")


@pytest.mark.parametrize("method", reference.METHODS)
@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g[0])
def test_reference_golden_values(golden, method):
    name, input_shape, filter_shape, strides, padding, expected = golden
    case = configs.make_case(
        "cbf", configs.Geometry(name, input_shape, filter_shape, strides), padding
    )
    x = np.arange(1, np.prod(input_shape) + 1, dtype=np.float64).reshape(input_shape)
    dy = np.arange(1, np.prod(case.out_shape) + 1, dtype=np.float64).reshape(case.out_shape)
    dw = reference.conv2d_backprop_filter(x, filter_shape, dy, **case.attrs(), method=method)
    np.testing.assert_array_equal(dw.ravel(), expected)


def _operands(case):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, case.input_shape)
    w = rng.uniform(-1, 1, case.filter_shape)
    dy = rng.uniform(-1, 1, case.out_shape)
    return x, w, dy


def _assert_agree(loops, einsum, shape):
    assert loops.shape == einsum.shape == tuple(shape)
    np.testing.assert_allclose(
        loops, einsum, rtol=0, atol=1e-12 * max(1.0, np.abs(loops).max(initial=0))
    )


@pytest.mark.parametrize("case", configs.DEFAULT, ids=lambda c: c.id)
def test_loops_equal_einsum(case):
    x, w, dy = _operands(case)
    first, shape = (w, case.input_shape) if case.op == "dbi" else (x, case.filter_shape)
    loops, einsum = (
        reference.KERNELS[method][case.op](
            first, dy, shape, case.strides, case.dilations, case.pads_before
        )
        for method in ("loops", "einsum")
    )
    _assert_agree(loops, einsum, case.result_shape)


@pytest.mark.parametrize("problem", problems.tier("grid"), ids=lambda p: f"{p.op} {p}")
def test_front_end_methods_agree(problem):
    """The ops' front end (TF's arguments, NCHW too) gives the same with either kernel."""
    rng = np.random.default_rng(5)
    op = OPS[problem.op]
    args = {
        op.sizes: problem.input_sizes if op.sizes == "input_sizes" else problem.filter_sizes,
        op.operand: rng.uniform(
            -1, 1, problem.filter_sizes if op.operand == "filter" else problem.input_sizes
        ),
        "out_backprop": rng.uniform(-1, 1, problem.out_backprop_sizes),
    }
    function = getattr(reference, op.function)
    loops, einsum = (
        function(**args, **problem.attrs(), method=method) for method in ("loops", "einsum")
    )
    expected = problem.input_sizes if problem.op == "dbi" else problem.filter_sizes
    _assert_agree(loops, einsum, expected)


@pytest.mark.parametrize("case", [c for c in configs.DEFAULT if c.op == "dbf"], ids=lambda c: c.id)
def test_depthwise_references_are_adjoint_to_forward(case):
    """<fprop(x, w), dy> == <wgrad(dy, x), w> == <dgrad(dy, w), x>."""
    x, w, dy = _operands(case)
    geometry = (case.strides, case.dilations, case.pads_before)
    y = reference.depthwise_conv2d_forward_einsum(x, w, case.out_hw, *geometry)
    dw = reference.depthwise_conv2d_native_backprop_filter_loops(
        x, dy, case.filter_shape, *geometry
    )
    dx = reference.depthwise_conv2d_native_backprop_input_loops(w, dy, case.input_shape, *geometry)
    forward = float(np.sum(y * dy))
    assert np.isclose(float(np.sum(dw * w)), forward, rtol=1e-12, atol=1e-12)
    assert np.isclose(float(np.sum(dx * x)), forward, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("module", [reference, problems, _geometry], ids=lambda m: m.__name__)
def test_pure_modules_import_no_tensorflow(module):
    """The reference and the problem tables load without TensorFlow (the GPU harness needs it);
    the problem tables without NumPy too."""
    source = open(module.__file__).read()
    assert "import tensorflow" not in source and "from tensorflow" not in source
    if module is not reference:
        assert "import numpy" not in source
