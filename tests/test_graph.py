"""Graph mode: tf.function, static shape inference, graph construction and execution errors.

The shape functions are compared with TF's own for the same graph (constructing a graph runs no
kernel, so this is safe in process). SavedModel round trips are tested elsewhere (issue 4).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_convgrad

import configs
import helpers

BY_ID = {case.id: case for case in configs.SMALL}
GRAPH_CASES = [
    BY_ID[cid]
    for cid in (
        "cbf-odd_3x5_filter_odd_hw-SAME",
        "cbf-grouped_dilated_g2-EXPLICIT",
        "cbf-empty_batch-VALID",
        "dbf-m8-VALID",
        "dbf-unequal_strides_dilated-EXPLICIT",
        "dbf-multiplier0-SAME",
        "dbi-odd_3x5_filter_odd_hw-SAME",
        "dbi-unequal_strides_dilated-EXPLICIT",
        "dbi-multiplier0-SAME",
    )
]
_ids = {"ids": lambda case: case.id}


def _call(case, data_format, inputs):
    return helpers.OURS[case.op](**inputs, **helpers.op_attrs(case, data_format))


def _bits(tensor) -> bytes:
    return np.ascontiguousarray(tensor.numpy()).tobytes()


@pytest.mark.parametrize("data_format", configs.FORMATS)
@pytest.mark.parametrize("dtype", ("float32", "float16", "bfloat16"))
@pytest.mark.parametrize("case", GRAPH_CASES, **_ids)
def test_function_equals_eager_bitwise(case, dtype, data_format):
    inputs = helpers.op_inputs(case, dtype, data_format)
    eager = _call(case, data_format, inputs)
    graph = tf.function(lambda kw: _call(case, data_format, kw), autograph=False)(inputs)
    assert graph.dtype == eager.dtype and graph.shape == eager.shape
    assert _bits(graph) == _bits(eager)


def _specs(case, dtype, sizes_spec):
    """Unknown-shape TensorSpecs for the T inputs; ``sizes_spec`` for the sizes input."""
    specs = {name: tf.TensorSpec([None] * 4, dtype) for name in helpers.TENSOR_NAMES[case.op]}
    if sizes_spec is not None:
        specs[helpers.SIZES_NAME[case.op]] = sizes_spec
    return specs


@pytest.mark.parametrize("data_format", configs.FORMATS)
@pytest.mark.parametrize("case", GRAPH_CASES, **_ids)
def test_unknown_shape_signature(case, data_format):
    """Traced once for unknown shapes: static shape unknown (sizes not constant), values right."""
    fn = tf.function(
        lambda kw: _call(case, data_format, kw),
        input_signature=[_specs(case, tf.float64, tf.TensorSpec([None], tf.int32))],
        autograph=False,
    )
    concrete = fn.get_concrete_function()
    assert concrete.structured_outputs.shape.as_list() == [None] * 4
    got = fn(helpers.op_inputs(case, "float64", data_format))
    helpers.assert_matches(
        helpers.result_to_nhwc(case, got.numpy(), data_format),
        helpers.reference_result(case, "float64"),
        configs.TOL["float64"],
    )


@pytest.mark.parametrize("data_format", configs.FORMATS)
@pytest.mark.parametrize("case", GRAPH_CASES, **_ids)
def test_static_shape_from_constant_sizes(case, data_format):
    """Sizes a tf.constant in the graph: the output shape is fully known at trace time, even
    with every other input of unknown shape."""
    sizes = helpers.sizes_value(case, data_format)

    def body(kw):
        kw = dict(kw, **{helpers.SIZES_NAME[case.op]: tf.constant(sizes, tf.int32)})
        return _call(case, data_format, kw)

    fn = tf.function(body, input_signature=[_specs(case, tf.float32, None)], autograph=False)
    static = fn.get_concrete_function().structured_outputs.shape
    assert static.is_fully_defined() and static.as_list() == sizes
    inputs = helpers.op_inputs(case, "float32", data_format)
    inputs.pop(helpers.SIZES_NAME[case.op])
    assert fn(inputs).shape.as_list() == sizes


def _graph_op_output(fn_name, op, sizes, data_format="NHWC"):
    """Builds (only builds) one op in a fresh v1 graph; returns its output's static shape.

    ``sizes``: a constant value, or a callable building the sizes tensor inside the graph.
    """
    with tf.Graph().as_default():
        sizes = sizes() if callable(sizes) else tf.constant(sizes, tf.int32)
        x = tf.compat.v1.placeholder(tf.float32, [None] * 4)
        dy = tf.compat.v1.placeholder(tf.float32, [None] * 4)
        attrs = {"strides": [1, 1, 1, 1], "padding": "SAME", "data_format": data_format}
        if op == "dbi":
            kw = {"input_sizes": sizes, "filter": x, "out_backprop": dy}
        else:
            kw = {"input": x, "filter_sizes": sizes, "out_backprop": dy}
        fn = helpers.OURS[op] if fn_name == "ours" else helpers.TF_RAW[op]
        return fn(**kw, **attrs).shape


@pytest.mark.parametrize("op", configs.OPS)
@pytest.mark.parametrize(
    "sizes",
    [[3, 5, 5, 2], [3, -1, 3, 4], [0, 0, 0, 0], [2**31 - 1, 1, 1, 1]],
    ids=["static", "minus_one_is_unknown", "zeros", "int32_max"],
)
def test_shape_function_matches_tf(op, sizes):
    ours = _graph_op_output("ours", op, sizes)
    theirs = _graph_op_output("tf", op, sizes)
    assert ours.as_list() == theirs.as_list()
    assert ours.as_list() == [None if s == -1 else s for s in sizes]


@pytest.mark.parametrize("op", configs.OPS)
def test_shape_function_partial_shape_tensor(op):
    """tf.shape(x) of a partially known x gives a partially known static shape, as for TF."""

    def build(fn_name):
        def sizes():
            return tf.shape(tf.compat.v1.placeholder(tf.float32, [None, 7, 5, 3]))

        return _graph_op_output(fn_name, op, sizes)

    assert build("ours").as_list() == build("tf").as_list() == [None, 7, 5, 3]


@pytest.mark.parametrize("op", configs.OPS)
@pytest.mark.parametrize(
    "sizes",
    [5, [[3, 3], [3, 2]], [3, 3, 3], [3, 3, 3, 2, 1], [3, -3, 3, 2]],
    ids=["scalar", "rank2", "len3", "len5", "minus3"],
)
def test_shape_function_errors_match_tf(op, sizes):
    """Bad constant sizes fail at graph construction with the same class as TF's op."""
    outcomes = []
    for fn_name in ("ours", "tf"):
        try:
            _graph_op_output(fn_name, op, sizes)
            outcomes.append("ok")
        except Exception as error:  # noqa: BLE001 - the class is what is compared
            outcomes.append(type(error).__name__)
    assert outcomes[0] == outcomes[1] == "ValueError", outcomes


@pytest.mark.parametrize("op", configs.OPS)
def test_graph_contains_namespaced_op(op):
    case = next(c for c in GRAPH_CASES if c.op == op)
    inputs = helpers.op_inputs(case, "float32", "NHWC")
    fn = tf.function(lambda kw: _call(case, "NHWC", kw), autograph=False)
    graph = fn.get_concrete_function(inputs).graph
    op_types = {node.type for node in graph.get_operations()}
    assert helpers.OUR_OP_TYPES[op] in op_types, sorted(op_types)


@pytest.mark.parametrize("op", configs.OPS)
def test_graph_mode_invalid_argument(op):
    """A shape error detected by the kernel at run time is an InvalidArgumentError in graphs too."""
    case = next(c for c in GRAPH_CASES if c.op == op and 0 not in c.input_shape)
    inputs = helpers.op_inputs(case, "float32", "NHWC")
    dy = inputs["out_backprop"]
    inputs["out_backprop"] = tf.concat([dy, dy], axis=0)  # batch mismatch
    fn = tf.function(lambda kw: _call(case, "NHWC", kw), autograph=False)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(inputs)
    assert f"{helpers.OUR_OP_TYPES[op]}: " in str(info.value)
    assert "same batch size" in str(info.value)


# Eagerly, the wrappers turn a list or tuple of Python ints into the sizes tensor themselves (the
# generated op's fast path takes only tensors there). Every other spelling of the sizes must give
# the same result, and what they do not convert must fail as the generated op itself fails.
SIZES_CASES = {
    "DBI": ("depthwise_conv2d_native_backprop_input", "input_sizes", [2, 6, 5, 4]),
    "DBF": ("depthwise_conv2d_native_backprop_filter", "filter_sizes", [3, 3, 4, 2]),
    "CBF": ("conv2d_backprop_filter", "filter_sizes", [3, 3, 4, 8]),
}


@pytest.mark.parametrize("op", sorted(SIZES_CASES))
def test_sizes_spellings_agree(op):
    api, key, sizes = SIZES_CASES[op]
    rng = np.random.default_rng(7)
    args = dict(out_backprop=tf.constant(rng.standard_normal((2, 6, 5, 8)), tf.float32),
                strides=[1, 1, 1, 1], padding="SAME")  # fmt: skip
    if op == "DBI":
        args["filter"] = tf.constant(rng.standard_normal((3, 3, 4, 2)), tf.float32)
    else:
        args["input"] = tf.constant(rng.standard_normal((2, 6, 5, 4)), tf.float32)
    ours = getattr(tf_convgrad, api)
    generated = getattr(tf_convgrad.ops._lib, "conv_grad_" + api)
    want = generated(**{key: tf.constant(sizes, tf.int32)}, **args).numpy()
    for spelling in (sizes, tuple(sizes), np.array(sizes, np.int32), [np.int64(v) for v in sizes]):
        np.testing.assert_array_equal(ours(**{key: spelling}, **args).numpy(), want)
    for bad in ([1, 2, 3], sizes[:3] + [2**31], sizes[:3] + [1.5], sizes[:3] + [True]):
        with pytest.raises(Exception) as generated_error:
            generated(**{key: bad}, **args)
        with pytest.raises(type(generated_error.value)):
            ours(**{key: bad}, **args)
