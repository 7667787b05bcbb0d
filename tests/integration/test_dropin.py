"""tf_convgrad.enable(): TensorFlow's own convolutions differentiate through our ops.

* The switch: off by default, enable/disable/is_enabled, context managers and nesting, the
  registry check and its clear error.
* Every way a model reaches TF's Conv2D or DepthwiseConv2dNative (Keras layers, tf.nn
  functions, attributes as TF stores them) traces to our ops and to none of TF's three, and
  gives TF's gradients (float32 tolerance), eagerly and in tf.function.
* Higher-order gradients, mixed precision, XLA (TF's own gradient there), functions traced
  before enable() keep what they traced, and Keras fit losses equal stock TF's.

Scenarios in their own processes (determinism across thread counts, SavedModel, multi-worker
training) are in test_dropin_scenarios.py; the model cross-check in test_model_crosscheck.py.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_convgrad
from tf_convgrad import _attrs, _tf_gradient_registry, dropin

import configs
from models import compile_for_test, mobilenet_like, training_data

OUR_TYPES = {"ConvGrad>" + name for name in configs.OP_NAMES.values()}
TF_BACKPROP_TYPES = set(configs.OP_NAMES.values())


@pytest.fixture(autouse=True)
def _restore_switch():
    """Every test starts and ends with the switch off (TF's own gradients)."""
    tf_convgrad.disable()
    yield
    tf_convgrad.disable()


def graph_op_types(concrete) -> set[str]:
    """Op types in a concrete function's graph and in every function it calls."""
    graph_def = concrete.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def norm_rel(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


# --------------------------------------------------------------------------------------------
# The switch


def test_off_by_default_and_import_changes_nothing():
    assert not tf_convgrad.is_enabled()
    for op_type in _tf_gradient_registry.OP_TYPES:
        assert _tf_gradient_registry.lookup(op_type) is dropin._TF_GRADIENTS[op_type]
        assert dropin._TF_GRADIENTS[op_type].__module__ == "tensorflow.python.ops.nn_grad"


def test_enable_disable_and_nesting():
    handle = tf_convgrad.enable()
    assert tf_convgrad.is_enabled()
    assert _tf_gradient_registry.lookup("Conv2D") is dropin._REPLACEMENTS["Conv2D"]
    with tf_convgrad.disable():
        assert not tf_convgrad.is_enabled()
        assert _tf_gradient_registry.lookup("Conv2D") is dropin._TF_GRADIENTS["Conv2D"]
        with tf_convgrad.enable():
            assert tf_convgrad.is_enabled()
            with tf_convgrad.enable():
                assert tf_convgrad.is_enabled()
            assert tf_convgrad.is_enabled()
        assert not tf_convgrad.is_enabled()
    assert tf_convgrad.is_enabled()
    with handle:  # leaving the block restores what was in force before enable()
        pass
    assert not tf_convgrad.is_enabled()
    assert "enabled" in repr(handle)


def test_context_manager_restores_on_error():
    with pytest.raises(ZeroDivisionError), tf_convgrad.enable():
        assert tf_convgrad.is_enabled()
        _ = 1 / 0
    assert not tf_convgrad.is_enabled()


class _FakeRegistry:
    def __init__(self, table):
        self._registry = table

    def lookup(self, name):
        return self._registry[name]["type"]


def test_registry_check_names_what_changed():
    real = _tf_gradient_registry._REGISTRY
    assert _tf_gradient_registry.check(real) is None
    assert "does not exist" in _tf_gradient_registry.check(None)
    assert "no '_registry' dict" in _tf_gradient_registry.check(object())
    table = {op: {"type": real.lookup(op)} for op in _tf_gradient_registry.OP_TYPES}
    assert _tf_gradient_registry.check(_FakeRegistry(table)) is None
    del table["DepthwiseConv2dNative"]
    assert "'DepthwiseConv2dNative'" in _tf_gradient_registry.check(_FakeRegistry(table))
    table = {op: {"fn": real.lookup(op)} for op in _tf_gradient_registry.OP_TYPES}
    assert "under 'type'" in _tf_gradient_registry.check(_FakeRegistry(table))


def test_enable_fails_clearly_when_the_registry_changed(monkeypatch):
    monkeypatch.setattr(_tf_gradient_registry, "PROBLEM", "the gradient registry has no X")
    with pytest.raises(RuntimeError, match="cannot replace TensorFlow's gradient functions.*no X"):
        tf_convgrad.enable()
    assert not tf_convgrad.is_enabled()
    tf_convgrad.disable()  # nothing to undo: no error


# --------------------------------------------------------------------------------------------
# Every path to TF's convolutions


def _forward_cases():
    """(id, builder) where builder() returns (forward(x) -> y, x, variables)."""
    rng = np.random.default_rng(3)

    def var(*shape):
        return tf.Variable(rng.normal(size=shape).astype(np.float32))

    def keras_layer(layer, shape):
        def build():
            keras.utils.set_random_seed(5)
            x = tf.constant(rng.normal(size=shape).astype(np.float32))
            layer_ = layer()
            layer_(x)
            return (lambda x: layer_(x)), x, layer_.trainable_variables

        return build

    def fn_case(forward, shape, *weights):
        def build():
            ws = [var(*w) for w in weights]
            x = tf.constant(rng.normal(size=shape).astype(np.float32))
            return (lambda x: forward(x, *ws)), x, ws

        return build

    L = keras.layers  # noqa: N806
    return {
        "keras-Conv2D": keras_layer(
            lambda: L.Conv2D(6, 3, strides=2, padding="same"), (2, 9, 9, 4)
        ),
        "keras-Conv2D-dilated": keras_layer(
            lambda: L.Conv2D(4, 3, dilation_rate=2, padding="same"), (2, 10, 10, 3)
        ),
        "keras-Conv2D-groups": keras_layer(lambda: L.Conv2D(4, 3, groups=2), (2, 8, 8, 4)),
        "keras-Conv1D-causal": keras_layer(
            lambda: L.Conv1D(5, 3, padding="causal", dilation_rate=2), (2, 12, 3)
        ),
        "keras-DepthwiseConv2D": keras_layer(
            lambda: L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same"),
            (2, 9, 9, 4),
        ),
        "keras-SeparableConv2D": keras_layer(
            lambda: L.SeparableConv2D(5, 3, padding="same", dilation_rate=2), (2, 10, 10, 3)
        ),
        "keras-Conv2DTranspose": keras_layer(
            lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same"), (2, 5, 5, 4)
        ),
        "tf.nn.conv2d-explicit": fn_case(
            lambda x, w: tf.nn.conv2d(x, w, [1, 2, 1, 1], [[0, 0], [1, 2], [0, 1], [0, 0]]),
            (2, 8, 7, 3),
            (3, 2, 3, 4),
        ),  # fmt: skip
        "tf.nn.depthwise_conv2d": fn_case(
            lambda x, f: tf.nn.depthwise_conv2d(x, f, [1, 1, 1, 1], "VALID", dilations=[2, 2]),
            (2, 9, 9, 3),
            (3, 3, 3, 2),
        ),  # fmt: skip
        "tf.nn.separable_conv2d": fn_case(
            lambda x, d, p: tf.nn.separable_conv2d(x, d, p, [1, 2, 2, 1], "SAME"),
            (2, 8, 8, 3),
            (3, 3, 3, 2),
            (1, 1, 6, 4),
        ),  # fmt: skip
        "raw-DepthwiseConv2dNative-explicit": fn_case(
            lambda x, f: tf.raw_ops.DepthwiseConv2dNative(
                input=x,
                filter=f,
                strides=[1, 2, 2, 1],
                padding="EXPLICIT",
                explicit_paddings=[0, 0, 1, 0, 2, 1, 0, 0],
            ),
            (2, 7, 8, 3),
            (2, 3, 3, 1),
        ),  # fmt: skip
    }


FORWARD_CASES = _forward_cases()
# Keras 3 runs grouped convolutions in a nested tf.function(jit_compile=True) (TF's CPU Conv2D
# has no groups): XLA compiles the backward function too, so TF's own gradient is used there.
XLA_CASES = {"keras-Conv2D-groups"}


def _loss_and_grads(forward, x, variables):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = forward(x)
        # A fixed, non-symmetric cotangent: every output element weighs differently.
        index = tf.reshape(tf.range(tf.size(y), dtype=y.dtype), tf.shape(y))
        loss = tf.reduce_sum(y * tf.sin(index * 0.37))
    return tape.gradient(loss, [x, *variables])


@pytest.mark.parametrize("name", sorted(FORWARD_CASES))
def test_every_path_traces_to_our_ops_and_matches_tf(name):
    forward, x, variables = FORWARD_CASES[name]()
    step = tf.function(lambda x: _loss_and_grads(forward, x, variables), autograph=False)
    stock_types = graph_op_types(step.get_concrete_function(x))
    stock = step(x)
    assert TF_BACKPROP_TYPES & stock_types, "the case reaches none of TF's three ops"
    with tf_convgrad.enable():
        eager = _loss_and_grads(forward, x, variables)
        step_on = tf.function(lambda x: _loss_and_grads(forward, x, variables), autograph=False)
        on_types = graph_op_types(step_on.get_concrete_function(x))
        ours = step_on(x)
    if name in XLA_CASES:
        assert not on_types & OUR_TYPES, sorted(on_types)
    else:
        assert not TF_BACKPROP_TYPES & on_types, sorted(on_types)
        assert on_types & OUR_TYPES, sorted(on_types)
    for got, got_eager, want in zip(ours, eager, stock, strict=True):
        assert norm_rel(got, want) < 2e-6
        assert norm_rel(got_eager, want) < 2e-6


def test_eager_tape_uses_our_ops(monkeypatch):
    calls = []
    for api in ("conv2d_backprop_filter", "depthwise_conv2d_native_backprop_filter",
                "depthwise_conv2d_native_backprop_input"):  # fmt: skip
        original = getattr(dropin.ops, api)

        def spy(*args, _original=original, _api=api, **kwargs):
            calls.append(_api)
            return _original(*args, **kwargs)

        monkeypatch.setattr(dropin.ops, api, spy)
    x = tf.random.normal([1, 6, 6, 2])
    w, f = tf.Variable(tf.random.normal([3, 3, 2, 2])), tf.Variable(tf.random.normal([3, 3, 2, 1]))
    with tf_convgrad.enable():  # eagerly, the gradient is built at tape.gradient
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.depthwise_conv2d(tf.nn.conv2d(x, w, 1, "SAME"), f, [1, 1, 1, 1], "SAME")
        tape.gradient(y, [x, w, f])
    assert sorted(calls) == sorted(
        ["conv2d_backprop_filter", "depthwise_conv2d_native_backprop_filter",
         "depthwise_conv2d_native_backprop_input"]
    )  # fmt: skip


def test_attributes_as_tf_stores_them():
    """bytes for strings, lists, and data_format None are all read correctly."""

    class Op:
        def __init__(self, attrs):
            self.attrs = attrs

        def get_attr(self, name):
            if name not in self.attrs:
                raise ValueError(name)
            return self.attrs[name]

    attrs = _attrs.from_op(
        Op({"strides": (1, 2, 2, 1), "padding": b"SAME", "data_format": None, "dilations": [1] * 4})
    )
    assert attrs == {
        "strides": [1, 2, 2, 1], "padding": "SAME", "explicit_paddings": [],
        "data_format": "NHWC", "dilations": [1, 1, 1, 1],
    }  # fmt: skip


def test_input_gradient_not_requested_is_not_computed(monkeypatch):
    """The eager tape skips dx of a layer whose input needs no gradient (the first layer)."""
    calls = []
    original = tf.raw_ops.Conv2DBackpropInput

    def spy(**kwargs):
        calls.append(1)
        return original(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "Conv2DBackpropInput", spy)
    x = tf.random.normal([1, 6, 6, 2])
    w = tf.Variable(tf.random.normal([3, 3, 2, 4]))
    with tf_convgrad.enable():
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, w, 1, "SAME")
        (dw,) = tape.gradient(y, [w])
        assert not calls
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, w, 1, "SAME")
        tape.gradient(y, [x, w])
        assert calls
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x, w, 1, "SAME")
    assert norm_rel(dw, tape.gradient(y, w)) < 2e-6


# --------------------------------------------------------------------------------------------
# Higher order, mixed precision, XLA, tracing time


def test_second_order_gradient_matches_tf():
    """A gradient penalty (d/dw of ||d loss / dx||^2) through Conv2D and depthwise."""
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(2, 7, 7, 3)).astype(np.float32))
    w = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    f = tf.Variable(rng.normal(size=(3, 3, 4, 2)).astype(np.float32))

    def penalty_grads():
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.nn.depthwise_conv2d(tf.nn.conv2d(x, w, 1, "SAME"), f, [1, 2, 2, 1], "SAME")
                loss = tf.reduce_sum(tf.tanh(y))
            dx = inner.gradient(loss, x)
            penalty = tf.reduce_sum(dx * dx)
        return outer.gradient(penalty, [w, f])

    want = tf.function(penalty_grads)()
    with tf_convgrad.enable():
        step = tf.function(penalty_grads)
        types = graph_op_types(step.get_concrete_function())
        got = step()
    assert not TF_BACKPROP_TYPES & types, sorted(types)
    for g, v in zip(got, want, strict=True):
        assert norm_rel(g, v) < 1e-5


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_fit(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        stock = mobilenet_like(keras.layers)
        ours = mobilenet_like(keras.layers)
        ours.set_weights(stock.get_weights())
    finally:
        keras.config.set_dtype_policy(previous)
    x, y = training_data()
    compile_for_test(stock, jit_compile=False)
    compile_for_test(ours, jit_compile=False)
    stock_losses = [float(stock.train_on_batch(x, y)) for _ in range(3)]
    with tf_convgrad.enable():
        our_losses = [float(ours.train_on_batch(x, y)) for _ in range(3)]
    assert all(np.isfinite(our_losses)), our_losses
    # 16-bit activations: the two runs agree to the 16-bit type's precision, not float32's.
    np.testing.assert_allclose(our_losses, stock_losses, rtol=0.05)


def test_xla_uses_tf_gradients():
    """Custom ops cannot be compiled: under jit_compile=True TF's own gradients are used."""
    x = tf.random.normal([2, 8, 8, 3])
    w = tf.Variable(tf.random.normal([3, 3, 3, 4]))
    f = tf.Variable(tf.random.normal([3, 3, 4, 1]))

    def grads(x):
        with tf.GradientTape() as tape:
            y = tf.nn.depthwise_conv2d(tf.nn.conv2d(x, w, 1, "SAME"), f, [1, 1, 1, 1], "SAME")
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [w, f])

    want = tf.function(grads)(x)
    with tf_convgrad.enable():
        got = tf.function(grads, jit_compile=True)(x)
    for g, v in zip(got, want, strict=True):
        assert norm_rel(g, v) < 1e-5


def test_functions_traced_before_enable_keep_tf_gradients():
    x = tf.random.normal([1, 6, 6, 2])
    w = tf.Variable(tf.random.normal([3, 3, 2, 2]))

    @tf.function
    def grads(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME") ** 2)
        return tape.gradient(loss, w)

    before = grads.get_concrete_function(x)
    with tf_convgrad.enable():
        assert grads.get_concrete_function(x) is before  # cached trace: TF's gradients
        assert "Conv2DBackpropFilter" in graph_op_types(before)
        retraced = tf.function(grads.python_function).get_concrete_function(x)
        assert "ConvGrad>Conv2DBackpropFilter" in graph_op_types(retraced)


def test_cost_free_stand_ins_keep_the_rest_of_the_step():
    """bench --train's measured ceiling: under dropin._StandIns the three roles our ops fill give
    zeros of the right shape and dtype, TF's own gradients are as before, and leaving the block
    restores our ops."""
    rng = np.random.default_rng(11)
    x = tf.constant(rng.normal(size=(2, 8, 8, 3)).astype(np.float32))
    w = tf.Variable(rng.normal(size=(3, 3, 3, 3)).astype(np.float32))
    f = tf.Variable(rng.normal(size=(3, 3, 3, 1)).astype(np.float32))

    def conv(x):
        return tf.nn.conv2d(x, w, 1, "SAME")

    def forward(x):
        return conv(x) + tf.nn.depthwise_conv2d(x, f, [1, 1, 1, 1], "SAME")

    # dx through the conv alone: TF's Conv2DBackpropInput, the part the stand-ins keep.
    want_dx = _loss_and_grads(conv, x, [w])[0]
    with tf_convgrad.enable(), dropin._StandIns():
        step = tf.function(lambda x: _loss_and_grads(forward, x, [w, f]), autograph=False)
        types = graph_op_types(step.get_concrete_function(x))
        dx, dw, df = step(x)
    assert not (OUR_TYPES | TF_BACKPROP_TYPES) & types, sorted(types)
    assert "Conv2DBackpropInput" in types, sorted(types)
    assert norm_rel(dx, want_dx) < 1e-6 and np.any(dx.numpy())
    for zeros, like in ((dw, w), (df, f)):
        assert zeros.shape == like.shape and zeros.dtype == like.dtype
        assert not np.any(zeros.numpy())
    with tf_convgrad.enable():
        retraced = tf.function(lambda x: _loss_and_grads(forward, x, [w, f]), autograph=False)
        assert OUR_TYPES <= graph_op_types(retraced.get_concrete_function(x))


# --------------------------------------------------------------------------------------------
# Keras training


def _fit_losses(model, x, y, enabled: bool) -> list[float]:
    compile_for_test(model, jit_compile=False)
    with tf_convgrad.enable() if enabled else tf_convgrad.disable():
        history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    return history.history["loss"]


def test_fit_matches_stock_and_traces_our_ops():
    x, y = training_data(batch=8)
    stock = mobilenet_like(keras.layers)
    ours = mobilenet_like(keras.layers)
    ours.set_weights(stock.get_weights())
    stock_losses = _fit_losses(stock, x, y, enabled=False)
    our_losses = _fit_losses(ours, x, y, enabled=True)
    assert stock_losses[-1] < stock_losses[0], stock_losses
    np.testing.assert_allclose(our_losses, stock_losses, rtol=1e-4)
    # Keras' own train_step (forward, loss, gradients, optimizer update), traced as fit does.
    with tf_convgrad.enable():
        types = graph_op_types(tf.function(ours.train_step).get_concrete_function((x, y)))
    assert OUR_TYPES <= types, sorted(types)
    assert not TF_BACKPROP_TYPES & types, sorted(types)


def test_keras_applications_model_trains_like_stock():
    """A stock keras.applications model: its fit step holds only our ops, and the losses of two
    train_on_batch steps equal stock TF's. (Randomly initialised MobileNets amplify float32
    rounding quickly: a 1e-6 relative change of the kernels moves MobileNetV2's second loss by
    2.7% at 64x64, see docs/USAGE.md; the first two steps are the comparison that means
    something.)"""

    def build():
        keras.utils.set_random_seed(0)
        model = keras.applications.MobileNetV3Small(
            weights=None, input_shape=(32, 32, 3), classes=4, include_preprocessing=False
        )
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=False)
        return model

    stock, ours = build(), build()
    ours.set_weights(stock.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 3, 1, 2])
    stock_losses = [float(stock.train_on_batch(x, y)) for _ in range(2)]
    with tf_convgrad.enable():
        our_losses = [float(ours.train_on_batch(x, y)) for _ in range(2)]
        types = graph_op_types(tf.function(ours.train_step).get_concrete_function((x, y)))
    assert OUR_TYPES <= types, sorted(types)
    assert not TF_BACKPROP_TYPES & types, sorted(types)
    assert stock_losses[0] != stock_losses[1]
    np.testing.assert_allclose(our_losses, stock_losses, rtol=1e-4)
