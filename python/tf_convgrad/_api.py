"""The package's public API, imported by ``tf_convgrad/__init__.py`` (which see)."""

from . import dropin, layers, nn
from . import grads as _grads  # noqa: F401 -- registers gradients
from .dropin import disable, enable, is_enabled
from .nn import conv2d, depthwise_conv2d
from .ops import (
    conv2d_backprop_filter,
    depthwise_conv2d_native_backprop_filter,
    depthwise_conv2d_native_backprop_input,
)

__all__ = [
    "conv2d",
    "conv2d_backprop_filter",
    "depthwise_conv2d",
    "depthwise_conv2d_native_backprop_filter",
    "depthwise_conv2d_native_backprop_input",
    "disable",
    "dropin",
    "enable",
    "is_enabled",
    "layers",
    "nn",
]
