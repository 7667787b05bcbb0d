"""tf_convgrad: complete, deterministic convolution-gradient ops for TensorFlow 2.21.

Importing the package loads the op library and registers the ops' gradients, so
graphs and SavedModels that use the ops work after `import tf_convgrad`. It changes
nothing for TensorFlow's own ops until `tf_convgrad.enable()` (see `dropin`).
"""

from . import dropin, layers, nn
from . import grads as _grads  # noqa: F401 -- registers gradients
from ._loader import build_info
from .dropin import disable, enable, is_enabled
from .nn import conv2d, depthwise_conv2d
from .ops import (
    conv2d_backprop_filter,
    depthwise_conv2d_native_backprop_filter,
    depthwise_conv2d_native_backprop_input,
)

__version__ = "0.1.0"
__all__ = [
    "build_info",
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
