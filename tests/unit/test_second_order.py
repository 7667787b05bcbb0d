"""First- and second-order gradients, checked by finite differences (tf.test.compute_gradient).

Two families, float64, small problems, NHWC and NCHW:

* The three ops: ``F(a, b, g) = d<g, op(a, b)>/d(a, b)`` is the registered (first-order)
  gradient; ``compute_gradient(F)`` checks its own gradient, i.e. the ops' second-order
  gradients, including dilated, strided-and-dilated, unequal-stride, explicit-padding and grouped
  cases where TF's own second-order path fails (docs/SEMANTICS.md, "Gradient registrations
  (nn_grad.py) and TF's second-order gaps").
* The forward functions ``tf_convgrad.conv2d`` / ``depthwise_conv2d``: their first-order
  gradients (our backprop ops, through ``tf.custom_gradient``) and their second-order gradients.

Each checked function ``F`` is projected on a random direction ``r`` (``<r, F(...)>``, one
scalar), so compute_gradient needs one backward pass per input instead of one per output element;
its numerical Jacobian still perturbs every input element, so every entry of the gradient of
``<r, F>`` (a Hessian-vector product for the second order) is compared. Finite differences of
these (bi)linear functions are exact up to rounding, so the tolerance is tight (1e-9 absolute on
O(1) values). A structural check asserts that the second-order graphs
contain our ops and none of TF's three backprop ops.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_convgrad

import configs
import helpers

G = configs.Geometry
ONE_SIDE = ((1, 0), (0, 1))
GEOMETRIES = {
    "cbf": [
        G("3x2", (1, 4, 4, 2), (3, 2, 2, 2), paddings=("SAME",)),
        G("s2x1", (1, 5, 4, 2), (2, 2, 2, 2), strides=(2, 1), paddings=("EXPLICIT",),
          explicit=ONE_SIDE),
        G("dilated", (1, 5, 5, 1), (2, 2, 1, 2), dilations=(2, 2), paddings=("VALID",)),
        G("strided_dilated", (1, 6, 5, 2), (2, 2, 2, 2), strides=(2, 1), dilations=(1, 2),
          paddings=("SAME",)),
        G("grouped_g2", (1, 4, 4, 4), (2, 2, 2, 2), paddings=("SAME",)),
    ],
    "dw": [
        G("3x2_m2", (1, 4, 4, 2), (3, 2, 2, 2), paddings=("SAME",)),
        G("unequal_strides", (1, 5, 4, 2), (2, 2, 2, 1), strides=(2, 1),
          paddings=("EXPLICIT",), explicit=ONE_SIDE),
        G("dilated", (1, 5, 5, 1), (2, 2, 1, 2), dilations=(2, 1), paddings=("VALID",)),
        G("strided_dilated", (1, 6, 5, 2), (2, 2, 2, 1), strides=(2, 2), dilations=(2, 1),
          paddings=("SAME",)),
    ],
}  # fmt: skip
CASES = (
    configs.expand("cbf", GEOMETRIES["cbf"])
    + configs.expand("dbf", GEOMETRIES["dw"])
    + configs.expand("dbi", GEOMETRIES["dw"])
)
# Formats per geometry (both for the dilated ones, one otherwise, to keep the run short).
_FORMATS_OF = {
    "3x2": ("NHWC",),
    "3x2_m2": ("NHWC",),
    "s2x1": ("NCHW",),
    "unequal_strides": ("NCHW",),
    "dilated": ("NHWC", "NCHW"),
    "strided_dilated": ("NCHW",),
    "grouped_g2": ("NCHW",),
}
CASE_FORMATS = [
    pytest.param(case, data_format, id=f"{case.id}-{data_format}")
    for case in CASES
    for data_format in _FORMATS_OF[case.id.split("-")[1]]
]
TF_BACKPROP_TYPES = set(configs.OP_NAMES.values())
ATOL = 1e-9


def _operand_shapes(case, data_format):
    """Shapes of the op's two T inputs (first, out_backprop) in data_format."""
    first = case.filter_shape if case.op == "dbi" else case.input_shape
    if case.op != "dbi":
        first = helpers.shape_to_format(first, data_format)
    return list(first), helpers.shape_to_format(case.out_shape, data_format)


def _op(case, data_format):
    names = helpers.TENSOR_NAMES[case.op]
    sizes = helpers.sizes_value(case, data_format)
    attrs = helpers.op_attrs(case, data_format)

    def apply(a, b):
        kwargs = {names[0]: a, names[1]: b, helpers.SIZES_NAME[case.op]: sizes}
        return helpers.OURS[case.op](**kwargs, **attrs)

    return apply


def _first_order(apply):
    """(a, b, g) -> the registered gradient of <g, apply(a, b)>, flattened into one vector."""

    def first(a, b, g):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = tf.reduce_sum(g * apply(a, b))
        da, db = tape.gradient(loss, [a, b])
        return tf.concat([tf.reshape(da, [-1]), tf.reshape(db, [-1])], axis=0)

    return first


def _assert_close(theoretical, numerical):
    for t, n in zip(theoretical, numerical, strict=True):
        assert t.shape == n.shape
        np.testing.assert_allclose(t, n, rtol=0, atol=ATOL)
        assert np.abs(t).max() > 0.05, "degenerate Jacobian: the check would prove nothing"


def _random(rng, shape):
    return tf.constant(rng.uniform(-1, 1, shape), tf.float64)


def _check(fn, inputs, rng):
    """compute_gradient of <r, fn(*inputs)> for a random r, against finite differences."""
    r = _random(rng, fn(*inputs).shape)
    projected = tf.function(lambda *xs: tf.reduce_sum(r * fn(*xs)), autograph=False)
    _assert_close(*tf.test.compute_gradient(projected, inputs))


@pytest.mark.parametrize(("case", "data_format"), CASE_FORMATS)
def test_op_second_order(case, data_format):
    rng = np.random.default_rng(3)
    apply = _op(case, data_format)
    a_shape, b_shape = _operand_shapes(case, data_format)
    a, b = _random(rng, a_shape), _random(rng, b_shape)
    g = _random(rng, apply(a, b).shape)
    _check(_first_order(apply), [a, b, g], rng)


def _graph_op_types(fn, *args) -> list[str]:
    graph = tf.function(fn, autograph=False).get_concrete_function(*args).graph
    return [op.type for op in graph.get_operations()]


@pytest.mark.parametrize("data_format", configs.FORMATS)
@pytest.mark.parametrize("op", configs.OPS)
def test_second_order_graph_runs_on_our_ops(op, data_format):
    """d/d(a, b, g) of the first-order gradient: our ops again, never TF's backprop kernels."""
    case = next(c for c in CASES if c.op == op and "dilated" in c.id)
    apply = _op(case, data_format)
    rng = np.random.default_rng(4)
    a_shape, b_shape = _operand_shapes(case, data_format)
    a, b = _random(rng, a_shape), _random(rng, b_shape)
    g = _random(rng, apply(a, b).shape)
    first = _first_order(apply)

    def second(a, b, g):
        with tf.GradientTape() as tape:
            tape.watch([a, b, g])
            loss = tf.reduce_sum(first(a, b, g) ** 2)
        return tape.gradient(loss, [a, b, g])

    types = _graph_op_types(second, a, b, g)
    assert not TF_BACKPROP_TYPES & set(types), sorted(set(types))
    ours = [t for t in types if t.startswith("ConvGrad>")]
    # The forward op, plus our ops in the first- and second-order gradients.
    assert len(ours) >= 3, sorted(set(types))


# --------------------------------------------------------------------------------------------
# tf_convgrad.conv2d / depthwise_conv2d

FORWARD_CASES = [
    # id, kind, input NHWC, filter, strides, padding, dilations, formats
    ("conv_3x2_same", "conv", (1, 4, 5, 2), (3, 2, 2, 3), 1, "SAME", 1, ("NHWC",)),
    ("conv_s2x1_explicit_dilated", "conv", (1, 6, 5, 2), (2, 2, 2, 2), (2, 1),
     [[1, 0], [0, 2]], (1, 2), ("NHWC", "NCHW")),
    ("conv_grouped_g2_strided", "conv", (1, 5, 5, 4), (2, 2, 2, 2), 2, "SAME", 1, ("NCHW",)),
    ("dw_m2_same", "depthwise", (1, 4, 5, 2), (3, 2, 2, 2), 1, "SAME", 1, ("NCHW",)),
    ("dw_unequal_strides_dilated", "depthwise", (1, 6, 5, 2), (2, 2, 2, 1), (2, 1), "VALID",
     (2, 1), ("NHWC", "NCHW")),
]  # fmt: skip
FORWARD_FORMATS = [
    pytest.param(spec, data_format, id=f"{spec[0]}-{data_format}")
    for spec in FORWARD_CASES
    for data_format in spec[-1]
]


def _forward(kind, strides, padding, dilations, data_format):
    fn = tf_convgrad.conv2d if kind == "conv" else tf_convgrad.depthwise_conv2d
    if not isinstance(padding, str):
        padding = [list(p) for p in padding]
    return lambda x, w: fn(x, w, strides, padding, data_format=data_format, dilations=dilations)


@pytest.mark.parametrize(("spec", "data_format"), FORWARD_FORMATS)
def test_forward_function_first_and_second_order(spec, data_format):
    _, kind, input_shape, filter_shape, strides, padding, dilations, _ = spec
    forward = _forward(kind, strides, padding, dilations, data_format)
    rng = np.random.default_rng(6)
    x = _random(rng, helpers.shape_to_format(input_shape, data_format))
    w = _random(rng, filter_shape)
    # First order: the custom gradient (our backprop ops) against finite differences.
    _check(forward, [x, w], rng)
    # Second order: the gradient of that gradient.
    g = _random(rng, forward(x, w).shape)
    _check(_first_order(forward), [x, w, g], rng)


@pytest.mark.parametrize("kind", ("conv", "depthwise"))
def test_forward_function_gradients_use_our_ops(kind):
    spec = next(s for s in FORWARD_CASES if s[1] == kind and "dilated" in s[0])
    _, _, input_shape, filter_shape, strides, padding, dilations, _ = spec
    forward = _forward(kind, strides, padding, dilations, "NCHW")
    x = tf.zeros(helpers.shape_to_format(input_shape, "NCHW"), tf.float64)
    w = tf.zeros(filter_shape, tf.float64)

    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(forward(x, w))
        return tape.gradient(loss, [x, w])

    types = set(_graph_op_types(grads, x, w))
    assert not TF_BACKPROP_TYPES & types, sorted(types)
    expected = (
        {helpers.OUR_OP_TYPES["cbf"]}
        if kind == "conv"
        else {helpers.OUR_OP_TYPES["dbf"], helpers.OUR_OP_TYPES["dbi"]}
    )
    assert expected <= types, sorted(types)
