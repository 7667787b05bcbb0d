"""Graph mode for everything tf_convgrad offers: ops, gradients of both orders, forward functions.

* Inside ``tf.function`` with Grappler on (the default), results equal the eager ones (bitwise
  for the ops) and the static output shapes are inferred (fully, or all but an unknown batch);
  a ``tf.function`` traced for unknown shapes computes the same values.
* The ops' shape functions agree with TF's own for the same graph (constructing a graph runs no
  kernel, so this is safe in process), errors included; a traced graph holds our namespaced op.
* Errors: a shape error the kernel finds at run time is an InvalidArgumentError in graphs too,
  and invalid attributes give the same error in a graph as eagerly. Grappler's cost model
  divides by the strides of TF's convolution ops and kills the process with SIGFPE for a zero
  stride (docs/SEMANTICS.md, "Graph mode"), so no gradient may put a zero stride into a TF
  convolution. Those probes run in a subprocess (this file run as a script, oneDNN on as users
  have it): a crash fails the test instead of killing pytest.
* Every spelling of the sizes argument gives the same result as a tensor.
* ``jit_compile=True``: XLA cannot compile a custom op; the error says so and what to do.

SavedModel round trips are in test_savedmodel.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_convgrad
from tf_convgrad._optable import OPS

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
# One case per op for the gradients, the error probes and XLA.
OP_CASES = {
    "cbf": BY_ID["cbf-grouped_dilated_g2-EXPLICIT"],
    "dbf": BY_ID["dbf-unequal_strides_dilated-EXPLICIT"],
    "dbi": BY_ID["dbi-unequal_strides_dilated-EXPLICIT"],
}
_ids = {"ids": lambda case: case.id}


def _call(case, data_format, inputs, **attrs):
    """Our op for ``case`` on ``inputs``, with the case's attributes updated by ``attrs``."""
    return helpers.OURS[case.op](**inputs, **(helpers.op_attrs(case, data_format) | attrs))


def _bits(tensor) -> bytes:
    return np.ascontiguousarray(tensor.numpy()).tobytes()


# --------------------------------------------------------------------------------------------
# The ops in tf.function


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


# --------------------------------------------------------------------------------------------
# Shape functions


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


# --------------------------------------------------------------------------------------------
# Graph contents and run-time errors


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


# --------------------------------------------------------------------------------------------
# The sizes argument

# Eagerly, the wrappers turn a list or tuple of Python ints into the sizes tensor themselves (the
# generated op's fast path takes only tensors there). Every other spelling of the sizes must give
# the same result, and what they do not convert must fail as the generated op itself fails.
SIZES = {"cbf": [3, 3, 4, 8], "dbf": [3, 3, 4, 2], "dbi": [2, 6, 5, 4]}


@pytest.mark.parametrize("op", configs.OPS)
def test_sizes_spellings_agree(op):
    key, sizes = OPS[op].sizes, SIZES[op]
    rng = np.random.default_rng(7)
    args = dict(out_backprop=tf.constant(rng.standard_normal((2, 6, 5, 8)), tf.float32),
                strides=[1, 1, 1, 1], padding="SAME")  # fmt: skip
    if op == "dbi":
        args["filter"] = tf.constant(rng.standard_normal((3, 3, 4, 2)), tf.float32)
    else:
        args["input"] = tf.constant(rng.standard_normal((2, 6, 5, 4)), tf.float32)
    ours = helpers.OURS[op]
    generated = getattr(tf_convgrad.ops._lib, "conv_grad_" + OPS[op].function)
    want = generated(**{key: tf.constant(sizes, tf.int32)}, **args).numpy()
    for spelling in (sizes, tuple(sizes), np.array(sizes, np.int32), [np.int64(v) for v in sizes]):
        np.testing.assert_array_equal(ours(**{key: spelling}, **args).numpy(), want)
    for bad in ([1, 2, 3], sizes[:3] + [2**31], sizes[:3] + [1.5], sizes[:3] + [True]):
        with pytest.raises(Exception) as generated_error:
            generated(**{key: bad}, **args)
        with pytest.raises(type(generated_error.value)):
            ours(**{key: bad}, **args)


# --------------------------------------------------------------------------------------------
# Gradients of both orders and the forward functions


def _op_fn(op, data_format, dtype="float64", **attrs):
    """Op ``op`` (its case in OP_CASES, attributes updated by ``attrs``) as a function of its two
    tensor inputs, and those inputs."""
    case = OP_CASES[op]
    names = helpers.TENSOR_NAMES[op]
    sizes = {helpers.SIZES_NAME[op]: helpers.sizes_value(case, data_format)}

    def apply(a, b):
        return _call(case, data_format, {names[0]: a, names[1]: b, **sizes}, **attrs)

    inputs = helpers.op_inputs(case, dtype, data_format)
    return apply, [inputs[names[0]], inputs[names[1]]]


def _forward_fn(kind, data_format):
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, helpers.shape_to_format((2, 9, 7, 4), data_format))
    if kind == "conv2d":
        w = rng.uniform(-1, 1, (3, 2, 2, 6))  # 2 groups

        def apply(x, w):
            return tf_convgrad.conv2d(x, w, (2, 1), "SAME", data_format, dilations=(1, 2))

    else:
        w = rng.uniform(-1, 1, (3, 3, 4, 2))

        def apply(x, w):
            return tf_convgrad.depthwise_conv2d(
                x, w, (1, 2), [[1, 0], [2, 1]], data_format, dilations=2
            )

    return apply, [tf.constant(x), tf.constant(w)]


def _with_order(apply, order):
    """apply itself (order 0), its gradient (1) or the gradient of the squared gradient (2)."""
    if order == 0:
        return lambda a, b: [apply(a, b)]

    def first(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            y = apply(a, b)
            weights = tf.sin(tf.cast(tf.range(tf.size(y)), y.dtype))
            loss = tf.reduce_sum(y * tf.reshape(weights, tf.shape(y)))
        return tape.gradient(loss, [a, b])

    if order == 1:
        return first

    def second(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = sum(tf.reduce_sum(g * g) for g in first(a, b))
        return tape.gradient(loss, [a, b])

    return second


TARGETS = [
    pytest.param(kind, fmt, order, id=f"{kind}-{fmt}-order{order}")
    for kind in ("cbf", "dbf", "dbi", "conv2d", "depthwise_conv2d")
    for fmt in configs.FORMATS
    for order in (0, 1, 2)
]


def _target(kind, data_format, order):
    if kind in OP_CASES:
        apply, inputs = _op_fn(kind, data_format)
    else:
        apply, inputs = _forward_fn(kind, data_format)
    return _with_order(apply, order), inputs


def test_grappler_is_on():
    options = tf.config.optimizer.get_experimental_options()
    assert not options.get("disable_meta_optimizer", False), options


@pytest.mark.parametrize(("kind", "data_format", "order"), TARGETS)
def test_function_matches_eager_with_static_shapes(kind, data_format, order):
    fn, inputs = _target(kind, data_format, order)
    eager = fn(*inputs)
    graph_fn = tf.function(fn, autograph=False)
    concrete = graph_fn.get_concrete_function(*inputs)
    graph = graph_fn(*inputs)
    for e, g, spec in zip(eager, graph, concrete.structured_outputs, strict=True):
        assert spec.shape.is_fully_defined(), f"static shape {spec.shape}"
        assert spec.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", (0, 1))
@pytest.mark.parametrize("kind", ("conv2d", "depthwise_conv2d"))
def test_unknown_batch_keeps_other_dims_static(kind, order):
    fn, inputs = _target(kind, "NCHW", order)
    specs = [
        tf.TensorSpec([None, *inputs[0].shape[1:]], tf.float64),
        tf.TensorSpec.from_tensor(inputs[1]),
    ]
    concrete = tf.function(fn, autograph=False).get_concrete_function(*specs)
    eager = fn(*inputs)
    for spec, value in zip(concrete.structured_outputs, eager, strict=True):
        expected = value.shape.as_list()
        if order == 0 or spec is concrete.structured_outputs[0]:
            expected[0] = None  # the output and the input gradient have the unknown batch
        assert spec.shape.as_list() == expected


# --------------------------------------------------------------------------------------------
# Invalid attributes in graphs (subprocess probes)

_BAD_ATTRS = {
    "strides0": {"strides": [1, 0, 0, 1]},
    "strides0_rows": {"strides": [1, 0, 1, 1]},
    "strides_len3": {"strides": [1, 1, 1]},
    "dilations0": {"dilations": [1, 0, 1, 1]},
}


def _probe_list():
    probes = []
    for op in configs.OPS:
        for bad in _BAD_ATTRS:
            for order in (0, 1, 2):
                probes.append({"id": f"{op}-{bad}-order{order}", "op": op, "bad": bad,
                               "order": order})  # fmt: skip
    for kind in ("conv2d", "depthwise_conv2d"):
        probes.append({"id": f"{kind}-strides0-order1", "op": kind, "bad": "strides0", "order": 1})
    return probes


def _probe_fn(probe):
    op, bad = probe["op"], _BAD_ATTRS[probe["bad"]]
    if op in OP_CASES:
        apply, inputs = _op_fn(op, "NHWC", "float32", **bad)
    else:
        fn = tf_convgrad.conv2d if op == "conv2d" else tf_convgrad.depthwise_conv2d

        def apply(x, w):
            return fn(x, w, bad["strides"], "SAME")

        inputs = [tf.ones([1, 5, 5, 2]), tf.ones([3, 3, 2, 2])]
    return _with_order(apply, probe["order"]), inputs


def _clean(message: str) -> str:
    """The kernel's message: no eager function-node prefix, no graph traceback, no [Op:...]."""
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("ConvGrad>")]
    line = ours[0] if ours else (lines[-1] if lines else "")
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", line)


def _probe_main() -> int:
    for probe in _probe_list():
        fn, inputs = _probe_fn(probe)
        outcome = {"id": probe["id"]}
        for mode in ("eager", "function"):
            call = fn if mode == "eager" else tf.function(fn, autograph=False)
            try:
                call(*inputs)
                outcome[mode] = ["ok", ""]
            except Exception as error:  # noqa: BLE001 - the class and message are the result
                outcome[mode] = [type(error).__name__, _clean(str(error))]
        print(json.dumps(outcome), flush=True)
    return 0


def test_invalid_attributes_same_errors_in_graphs_no_crash():
    env = helpers.script_env(TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--probe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = {r["id"] for r in results}
    missing = [p["id"] for p in _probe_list() if p["id"] not in done]
    assert proc.returncode == 0 and not missing, (
        f"probe process exited with {proc.returncode} before {missing[:1]}:\n{proc.stderr[-3000:]}"
    )
    for result in results:
        eager, graph = result["eager"], result["function"]
        expected = "ValueError" if result["id"].startswith(("conv2d", "depthwise")) else (
            "InvalidArgumentError"
        )  # fmt: skip
        assert eager[0] == graph[0] == expected, result
        assert eager[1] == graph[1], result
        if expected == "InvalidArgumentError":
            assert eager[1].startswith("ConvGrad>"), result


# --------------------------------------------------------------------------------------------
# XLA


@pytest.mark.parametrize("kind", ("conv2d", "depthwise_conv2d"))
def test_jit_compile_forward_functions_explain(kind):
    fn, inputs = _target(kind, "NHWC", 1)
    with pytest.raises(tf.errors.UnimplementedError, match="jit_compile") as info:
        tf.function(fn, jit_compile=True, autograph=False)(*inputs)
    assert "ConvGrad>" in str(info.value) and "USAGE.md" in str(info.value)


@pytest.mark.parametrize("op", configs.OPS)
def test_jit_compile_raw_ops_name_the_op(op):
    fn, inputs = _target(op, "NHWC", 0)
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)) as info:
        tf.function(fn, jit_compile=True, autograph=False)(*inputs)
    assert helpers.OUR_OP_TYPES[op] in str(info.value)


def test_jit_compile_gradient_of_op_explains():
    """Differentiating our op inside an XLA function: the gradient refuses clearly too."""
    apply, inputs = _op_fn("dbf", "NHWC")

    def fn(a, b):
        with tf.GradientTape() as tape:
            tape.watch(a)
            y = apply(a, b)
        return tape.gradient(y, a)

    with pytest.raises(tf.errors.UnimplementedError, match="jit_compile") as info:
        tf.function(fn, jit_compile=True, autograph=False)(*inputs)
    assert "ConvGrad>" in str(info.value)


def test_keras_layers_opt_out_of_xla():
    model = keras.Sequential([keras.Input((6, 6, 2)), tf_convgrad.layers.DepthwiseConv2D(3)])
    assert all(not layer.supports_jit for layer in model.layers)
    model.compile(loss="mse")  # jit_compile="auto"
    assert model.jit_compile is False
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(loss="mse", jit_compile=True)
    history = model.fit(np.ones((2, 6, 6, 2)), np.zeros((2, 4, 4, 2)), verbose=0)
    assert np.isfinite(history.history["loss"][0])


if __name__ == "__main__" and "--probe" in sys.argv:
    sys.exit(_probe_main())
