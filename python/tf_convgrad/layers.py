"""Keras layers whose gradients run on tf_convgrad's ops.

``tf_convgrad.layers.Conv2D`` and ``tf_convgrad.layers.DepthwiseConv2D`` subclass Keras'
``keras.layers.Conv2D`` and ``keras.layers.DepthwiseConv2D`` (Keras 3, which is what
``import keras`` and ``tf.keras`` give with TensorFlow 2.21; TensorFlow backend only). They take
exactly the same arguments (``strides``, ``padding``, ``data_format`` including
``"channels_first"``, ``dilation_rate``, ``groups``, ``depth_multiplier``, initializers,
regularizers, constraints, ``activation``, ``use_bias``...), create the same weights and
serialize the same way, under the names ``tf_convgrad>Conv2D`` and ``tf_convgrad>DepthwiseConv2D``.
Only the convolution differs: it is :func:`tf_convgrad.conv2d` /
:func:`tf_convgrad.depthwise_conv2d`, so training computes the filter gradients with our ops
(and the depthwise input gradient too).

Beyond the stock layers on CPU:

* ``channels_first`` works on CPU (TF's CPU kernels only do NHWC);
* ``Conv2D`` accepts ``strides > 1`` together with ``dilation_rate > 1`` (Keras refuses it);
* grouped ``Conv2D`` runs without XLA (Keras compiles it with XLA on CPU).

Both add the bias explicitly on the channel axis. (Stock Keras 3.15's ``Conv2D`` adds it with
``keras.ops.add``, whose TensorFlow backend turns it into ``tf.nn.bias_add`` and guesses the
format from the shapes: with ``channels_first`` and an output width equal to the number of
filters it adds the bias along the width. Ours does not.)

The layers set ``supports_jit = False``, so ``Model.compile(jit_compile="auto")`` (the default)
does not compile a model that contains them with XLA, which cannot compile custom ops.
"""

from __future__ import annotations

import keras

from . import nn

__all__ = ["Conv2D", "DepthwiseConv2D"]

_FORMATS = {"channels_last": "NHWC", "channels_first": "NCHW"}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else values  # type: ignore[return-value]


def _with_bias(outputs, bias, channels: int, data_format: str):
    """``outputs`` plus ``bias`` broadcast along the channel axis of ``data_format``."""
    shape = (1, 1, 1, channels) if data_format == "channels_last" else (1, channels, 1, 1)
    return outputs + keras.ops.reshape(bias, shape)


@keras.saving.register_keras_serializable(package="tf_convgrad")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose kernel gradient is tf_convgrad's Conv2DBackpropFilter.

    Same arguments as ``keras.layers.Conv2D``; ``strides > 1`` may also be combined with
    ``dilation_rate > 1``.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        *args,
        **kwargs,
    ):
        # Keras refuses strides > 1 with dilation_rate > 1 only because TF's kernels do.
        both = max(_pair(strides)) > 1 and max(_pair(dilation_rate)) > 1
        super().__init__(
            filters,
            kernel_size,
            strides,
            padding,
            data_format,
            (1, 1) if both else dilation_rate,
            groups,
            *args,
            **kwargs,
        )
        if both:
            self.dilation_rate = _pair(dilation_rate)
        self.supports_jit = False

    def convolution_op(self, inputs, kernel):
        return nn.conv2d(
            inputs,
            kernel,
            strides=list(self.strides),
            padding=self.padding.upper(),
            data_format=_FORMATS[self.data_format],
            dilations=list(self.dilation_rate),
        )

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = _with_bias(outputs, self.bias, self.filters, self.data_format)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="tf_convgrad")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` whose gradients are tf_convgrad's depthwise ops.

    Same arguments as ``keras.layers.DepthwiseConv2D``; unequal strides and ``channels_first``
    work on CPU.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = False

    def call(self, inputs):
        outputs = nn.depthwise_conv2d(
            inputs,
            self.kernel,
            strides=list(self.strides),
            padding=self.padding.upper(),
            data_format=_FORMATS[self.data_format],
            dilations=list(self.dilation_rate),
        )
        if self.use_bias:
            channels = self.depth_multiplier * self._get_input_channel(inputs.shape)
            outputs = _with_bias(outputs, self.bias, channels, self.data_format)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
