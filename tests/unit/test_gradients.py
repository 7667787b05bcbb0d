"""Registered gradients of the three ops (importing tf_convgrad registers them).

Each op is bilinear in its two T inputs, so with ``L = <g, op(a, b)>`` the gradients are exact
adjoints, with no finite differences needed::

    <dL/da, v> == <g, op(v, b)>      and      <dL/db, u> == <g, op(a, u)>

for random ``g, v, u``. The right-hand sides use our forward op, itself checked against the
float64 reference elsewhere; float64 throughout, tolerance 1e-12 relative to the sum of |terms|.
``tf.test.compute_gradient`` (finite differences) checks one tiny case per op as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import configs
import helpers

G = configs.Geometry
EXPLICIT = {"paddings": ("EXPLICIT",), "explicit": ((1, 0), (0, 2))}
GRAD_GEOMETRIES = {
    "cbf": [
        G("3x2_s1", (2, 4, 5, 2), (3, 2, 2, 3), paddings=("SAME", "VALID")),
        G("explicit_s2x1", (1, 5, 4, 2), (2, 3, 2, 2), strides=(2, 1), **EXPLICIT),
        G("dilated", (1, 6, 6, 1), (2, 2, 1, 2), dilations=(2, 2), paddings=("VALID",)),
        G("grouped_g2", (1, 4, 4, 4), (2, 2, 2, 4), paddings=("SAME",)),
    ],
    "dw": [
        G("3x2_m2", (2, 4, 5, 2), (3, 2, 2, 2), paddings=("SAME", "VALID")),
        G("explicit_s2", (1, 5, 4, 2), (2, 3, 2, 1), strides=(2, 2), **EXPLICIT),
        G("unequal_strides", (1, 6, 5, 2), (2, 2, 2, 1), strides=(2, 1), paddings=("SAME",)),
        G("dilated", (1, 6, 6, 1), (2, 2, 1, 2), dilations=(2, 1), paddings=("VALID",)),
    ],
}
GRAD_CASES = (
    configs.expand("cbf", GRAD_GEOMETRIES["cbf"])
    + configs.expand("dbf", GRAD_GEOMETRIES["dw"])
    + configs.expand("dbi", GRAD_GEOMETRIES["dw"])
)


def _operand_shapes(case, data_format):
    """Shapes of the two T inputs (first, out_backprop) in data_format."""
    first = case.filter_shape if case.op == "dbi" else case.input_shape
    if case.op != "dbi":
        first = helpers.shape_to_format(first, data_format)
    return list(first), helpers.shape_to_format(case.out_shape, data_format)


def _apply(case, data_format, first, dy):
    names = helpers.TENSOR_NAMES[case.op]
    sizes = helpers.sizes_value(case, data_format)
    return helpers.OURS[case.op](
        **{names[0]: first, names[1]: dy, helpers.SIZES_NAME[case.op]: sizes},
        **helpers.op_attrs(case, data_format),
    )


@pytest.mark.parametrize("mode", ("eager", "function"))
@pytest.mark.parametrize("data_format", configs.FORMATS)
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.id)
def test_gradients_are_exact_adjoints(case, data_format, mode):
    rng = np.random.default_rng(11)
    first_shape, dy_shape = _operand_shapes(case, data_format)
    a = tf.constant(rng.uniform(-1, 1, first_shape))
    b = tf.constant(rng.uniform(-1, 1, dy_shape))
    out_shape = _apply(case, data_format, a, b).shape
    g = tf.constant(rng.uniform(-1, 1, out_shape))
    v = tf.constant(rng.uniform(-1, 1, first_shape))
    u = tf.constant(rng.uniform(-1, 1, dy_shape))

    def grads(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = tf.reduce_sum(g * _apply(case, data_format, a, b))
        return tape.gradient(loss, [a, b])

    if mode == "function":
        grads = tf.function(grads, autograph=False)
    da, db = grads(a, b)
    for name, grad, direction, image in (
        ("first input", da, v, _apply(case, data_format, v, b)),
        ("out_backprop", db, u, _apply(case, data_format, a, u)),
    ):
        assert grad is not None, f"no gradient for {name}"
        assert grad.shape == direction.shape, f"{name}: gradient shape {grad.shape}"
        lhs = float(tf.reduce_sum(grad * direction))
        terms = g * image
        rhs = float(tf.reduce_sum(terms))
        magnitude = float(tf.reduce_sum(tf.abs(terms))) + float(
            tf.reduce_sum(tf.abs(grad * direction))
        )
        assert abs(lhs - rhs) <= 1e-12 * max(magnitude, 1.0), (
            f"{name}: <grad, v> = {lhs!r} but <g, op(v)> = {rhs!r}"
        )


@pytest.mark.parametrize("op", configs.OPS)
def test_compute_gradient_finite_differences(op):
    case = next(c for c in GRAD_CASES if c.op == op and c.padding == "SAME")
    rng = np.random.default_rng(5)
    first_shape, dy_shape = _operand_shapes(case, "NHWC")
    a = tf.constant(rng.uniform(-1, 1, first_shape))
    b = tf.constant(rng.uniform(-1, 1, dy_shape))
    theoretical, numerical = tf.test.compute_gradient(
        lambda a, b: _apply(case, "NHWC", a, b), [a, b]
    )
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, rtol=0, atol=1e-8)
