"""A small MobileNet-style Keras model and its data, shared by the layer, drop-in, SavedModel and
distribution tests (and their worker processes)."""

from __future__ import annotations

import keras
import numpy as np


def mobilenet_like(layers, data_format="channels_last", synchronized_bn=False, seed=0):
    """Stem conv, two depthwise-separable blocks (one strided, one with multiplier 2), head.

    Args:
        layers: A namespace with ``Conv2D`` and ``DepthwiseConv2D`` (``keras.layers`` or
            ``tf_convgrad.layers``).
        data_format: Keras data format.
        synchronized_bn: BatchNormalization(synchronized=...) (for distribution strategies).
        seed: Initializer seed.

    Returns:
        An uncompiled ``keras.Model`` for 16x16x3 images and 4 classes.
    """
    keras.utils.set_random_seed(seed)
    shape = (16, 16, 3) if data_format == "channels_last" else (3, 16, 16)
    axis = -1 if data_format == "channels_last" else 1
    conv = {"data_format": data_format, "padding": "same", "use_bias": False}

    def bn_relu(y):
        y = keras.layers.BatchNormalization(axis=axis, synchronized=synchronized_bn)(y)
        return keras.layers.ReLU()(y)

    inputs = keras.Input(shape)
    y = bn_relu(layers.Conv2D(8, 3, strides=2, **conv)(inputs))
    y = bn_relu(layers.DepthwiseConv2D(3, **conv)(y))
    y = bn_relu(layers.Conv2D(12, 1, **conv)(y))
    y = bn_relu(layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, **conv)(y))
    y = bn_relu(layers.Conv2D(16, 1, **conv)(y))
    y = keras.layers.GlobalAveragePooling2D(data_format=data_format)(y)
    outputs = keras.layers.Dense(4)(y)
    return keras.Model(inputs, outputs)


def training_data(data_format="channels_last", batch=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 16, 16, 3)).astype(np.float32)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y = rng.integers(0, 4, size=(batch,))
    return x, y


def compile_for_test(model, **kwargs):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **kwargs,
    )
