"""Keras layers tf_convgrad.layers.Conv2D / DepthwiseConv2D (Keras 3, TensorFlow backend).

* Every layer option (channels_first, dilation_rate, unequal strides, strides with dilation,
  groups, depth_multiplier, bias, activation) against a float64 oracle built from pure TF ops
  (tap slices + einsum for Conv2D, pad + stride-1 depthwise + subsample for depthwise; see
  ``tf_convgrad._forward``), forward and gradients for the input, kernel and bias.
* A small MobileNet-style model trains like the same model built from stock Keras layers: the
  loss curve over a few SGD steps and the final weights match within float32 tolerance, and its
  training graph uses our three ops and none of TF's backprop kernels.
* Same constructor arguments as Keras' layers; serialization (get_config, .keras files).
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_convgrad
from tf_convgrad import _attrs, _forward

import configs
from models import compile_for_test, mobilenet_like, training_data

OUR_TYPES = {"ConvGrad>" + name for name in configs.OP_NAMES.values()}
TF_BACKPROP_TYPES = set(configs.OP_NAMES.values())
FORMATS = {"channels_last": "NHWC", "channels_first": "NCHW"}


# --------------------------------------------------------------------------------------------
# Layer options against a pure-TF float64 oracle

CONV_OPTIONS = [
    dict(filters=4, kernel_size=3, padding="same"),
    dict(filters=3, kernel_size=(3, 2), strides=(2, 1), padding="valid",
         data_format="channels_first"),
    dict(filters=4, kernel_size=3, dilation_rate=(2, 1), padding="same", activation="relu"),
    dict(filters=4, kernel_size=2, strides=2, dilation_rate=2, padding="same",
         data_format="channels_first"),
    dict(filters=6, kernel_size=3, groups=2, strides=(1, 2), padding="same", use_bias=True),
    dict(filters=4, kernel_size=(2, 3), groups=4, dilation_rate=(1, 2), padding="valid",
         data_format="channels_first"),
]  # fmt: skip
DEPTHWISE_OPTIONS = [
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=(3, 2), strides=(2, 1), depth_multiplier=2, padding="valid",
         data_format="channels_first"),
    dict(kernel_size=3, dilation_rate=(2, 1), padding="same", activation="relu"),
    dict(kernel_size=3, strides=2, dilation_rate=2, padding="same", depth_multiplier=3,
         data_format="channels_first"),
    dict(kernel_size=(2, 3), strides=(1, 2), padding="same", use_bias=False),
]  # fmt: skip


def _option_id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()).replace(" ", "")


def _oracle(layer, x):
    """The layer's output computed with the pure-TF helpers, from its own weights."""
    data_format = FORMATS[layer.data_format]
    attrs = _attrs.normalize(
        "oracle", list(layer.strides), layer.padding, data_format, list(layer.dilation_rate)
    )
    kernel = tf.convert_to_tensor(layer.kernel)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        y = _forward.depthwise_conv2d_forward(x, kernel, **attrs)
    else:
        y = _forward.conv2d_forward(x, kernel, **attrs)
    if layer.use_bias:
        y = tf.nn.bias_add(y, tf.convert_to_tensor(layer.bias), data_format=data_format)
    return layer.activation(y)


def _check_layer(layer, input_shape):
    rng = np.random.default_rng(21)
    x = tf.constant(rng.uniform(-1, 1, input_shape))
    layer.build(input_shape)
    weights = [w.value for w in layer.trainable_weights]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = layer(x)
        expected = _oracle(layer, x)
        g = tf.constant(rng.uniform(-1, 1, ours.shape))
        loss_ours = tf.reduce_sum(g * ours)
        loss_expected = tf.reduce_sum(g * expected)
    assert ours.shape == expected.shape
    assert tuple(ours.shape) == tuple(layer.compute_output_shape(input_shape))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    grads = tape.gradient(loss_ours, [x, *weights])
    expected_grads = tape.gradient(loss_expected, [x, *weights])
    for name, got, want in zip(["input"] + [w.name for w in layer.trainable_weights],
                               grads, expected_grads, strict=True):  # fmt: skip
        assert got is not None, f"no gradient for {name}"
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("options", CONV_OPTIONS, ids=_option_id)
def test_conv2d_layer_options(options):
    layer = tf_convgrad.layers.Conv2D(**options, dtype="float64")
    shape = (2, 4, 7, 6) if options.get("data_format") == "channels_first" else (2, 7, 6, 4)
    _check_layer(layer, shape)


@pytest.mark.parametrize("options", DEPTHWISE_OPTIONS, ids=_option_id)
def test_depthwise_layer_options(options):
    layer = tf_convgrad.layers.DepthwiseConv2D(**options, dtype="float64")
    shape = (2, 3, 7, 6) if options.get("data_format") == "channels_first" else (2, 7, 6, 3)
    _check_layer(layer, shape)


@pytest.mark.parametrize("name", ("Conv2D", "DepthwiseConv2D"))
def test_same_constructor_arguments_as_keras(name):
    ours, theirs = getattr(tf_convgrad.layers, name), getattr(keras.layers, name)
    assert issubclass(ours, theirs)
    keras_params = list(inspect.signature(theirs.__init__).parameters)
    # Conv2D spells out Keras' leading parameters and passes the rest through (*args, **kwargs);
    # DepthwiseConv2D passes everything through.
    our_params = [
        p.name
        for p in inspect.signature(ours.__init__).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert keras_params[: len(our_params)] == our_params
    # Positional arguments mean the same as for Keras.
    args = (4, 3, 2, "same", "channels_first") if name == "Conv2D" else (3, 2, "same", 2)
    assert ours(*args).get_config() | {"name": ""} == theirs(*args).get_config() | {"name": ""}


def test_conv2d_accepts_strides_with_dilation():
    with pytest.raises(ValueError, match="dilation_rate"):
        keras.layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    layer = tf_convgrad.layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    assert layer.strides == (2, 2) and layer.dilation_rate == (2, 2)
    clone = tf_convgrad.layers.Conv2D.from_config(layer.get_config())
    assert clone.strides == (2, 2) and clone.dilation_rate == (2, 2)


# --------------------------------------------------------------------------------------------
# A small MobileNet-style model


def _train(model, x, y, steps):
    return [float(model.train_on_batch(x, y)) for _ in range(steps)]


def test_mobilenet_like_trains_like_stock_keras():
    stock = mobilenet_like(keras.layers)
    ours = mobilenet_like(tf_convgrad.layers)
    ours.set_weights(stock.get_weights())
    compile_for_test(stock, jit_compile=False)
    compile_for_test(ours)  # jit_compile="auto" must resolve to False for our layers
    assert ours.jit_compile is False
    x, y = training_data()
    stock_losses, our_losses = _train(stock, x, y, 5), _train(ours, x, y, 5)
    assert stock_losses[-1] < 0.8 * stock_losses[0], f"the model did not train: {stock_losses}"
    np.testing.assert_allclose(our_losses, stock_losses, rtol=1e-4)
    for got, want in zip(ours.get_weights(), stock.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_mobilenet_like_channels_first_matches_channels_last():
    """channels_first (which stock TF cannot run on CPU) trains like channels_last."""
    last = mobilenet_like(tf_convgrad.layers)
    first = mobilenet_like(tf_convgrad.layers, data_format="channels_first")
    first.set_weights(last.get_weights())
    compile_for_test(last)
    compile_for_test(first)
    x, y = training_data()
    x_first, _ = training_data("channels_first")
    np.testing.assert_allclose(_train(first, x_first, y, 3), _train(last, x, y, 3), rtol=1e-4)


def test_training_graph_uses_our_ops():
    model = mobilenet_like(tf_convgrad.layers)
    x, y = training_data()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(autograph=False)
    def grads(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    types = {op.type for op in grads.get_concrete_function(x, y).graph.get_operations()}
    assert OUR_TYPES <= types, sorted(types)
    assert not TF_BACKPROP_TYPES & types, sorted(types)


# Keras 3.15's own weight saving warns under NumPy 2 (stock layers too).
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_file_round_trip(tmp_path):
    model = mobilenet_like(tf_convgrad.layers, data_format="channels_first")
    x, _ = training_data("channels_first")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    kinds = {type(layer) for layer in loaded.layers}
    assert {tf_convgrad.layers.Conv2D, tf_convgrad.layers.DepthwiseConv2D} <= kinds
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("data_format", sorted(FORMATS))
@pytest.mark.parametrize("kind", ["Conv2D", "DepthwiseConv2D"])
def test_bias_on_the_channel_axis_when_width_equals_channels(kind, data_format):
    """Output width == channel count: the bias still goes on the channel axis (stock Keras 3.15's
    Conv2D adds it along the width with channels_first there)."""
    channels = 4
    shape = (8, 8, 2) if data_format == "channels_last" else (2, 8, 8)
    if kind == "Conv2D":
        layer = tf_convgrad.layers.Conv2D(channels, 1, strides=2, data_format=data_format)
    else:
        layer = tf_convgrad.layers.DepthwiseConv2D(1, strides=2, depth_multiplier=2,
                                                   data_format=data_format)  # fmt: skip
    x = tf.zeros((1, *shape))
    layer(x)  # build
    bias = np.arange(1, channels + 1, dtype=np.float32)
    layer.bias.assign(bias)
    y = layer(x).numpy()  # zero input: the output is the bias alone, width 4 == channels 4
    want = bias.reshape(
        (1, 1, 1, channels) if data_format == "channels_last" else (1, channels, 1, 1)
    )
    np.testing.assert_array_equal(y, np.broadcast_to(want, y.shape))
