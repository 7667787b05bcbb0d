"""Python wrappers: the same arguments, order and defaults as the tf.raw_ops twins.

Each wrapper runs its op (a row of :mod:`tf_convgrad._optable`) through the function TF generated
for it when the library was loaded; the sizes argument gets a fast path eagerly and the XLA
guard (:mod:`tf_convgrad._xla`) while tracing.
"""

from __future__ import annotations

import tensorflow as _tf

from . import _loader, _xla
from ._optable import OPS, Op

_lib = _loader.load()
# The generated wrapper of each op, by key: conv_grad_<function> for ConvGrad><TF name>.
_GENERATED = {key: getattr(_lib, f"conv_grad_{row.function}") for key, row in OPS.items()}


def _sizes(row: Op, sizes):
    """The op's int32 sizes argument, ready to pass; under XLA (traced only), a clear error.

    Eagerly, a list or tuple of Python ints in int32 range becomes a tensor here: the generated
    wrapper's fast path takes only tensors for this input, and its fallback, which would convert
    the list to the same tensor, costs about 50 us per call (62 us against 13 us for a tiny op
    given a tensor). Anything else goes to the op as it is, so errors stay the op's own.
    """
    if _tf.executing_eagerly():  # XLA compiles traced functions only; skip the check's cost
        if isinstance(sizes, (list, tuple)) and all(
            type(v) is int and -(2**31) <= v < 2**31 for v in sizes
        ):
            return _tf.constant(sizes, _tf.int32)
        return sizes
    _xla.check_not_xla(f"tf_convgrad.{row.function}", [row.registered])
    return sizes


def _run(row: Op, sizes, **args):
    """Runs the op of the op table's ``row`` with its sizes argument (see :func:`_sizes`) and the
    others (``args``)."""
    return _GENERATED[row.key](**{row.sizes: _sizes(row, sizes)}, **args)


def conv2d_backprop_filter(
    input,
    filter_sizes,
    out_backprop,
    strides,
    padding,
    use_cudnn_on_gpu=True,
    explicit_paddings=[],  # noqa: B006 -- mirrors tf.raw_ops; never mutated
    data_format="NHWC",
    dilations=[1, 1, 1, 1],  # noqa: B006
    name=None,
):
    """Gradient of Conv2D with respect to its filter (tf.raw_ops.Conv2DBackpropFilter).

    Beyond TensorFlow's CPU kernel, supports NCHW, dilations and grouped filters
    (input depth = groups * filter_sizes[2]) on CPU; half and bfloat16 accumulate in
    float32; the result is bitwise deterministic.

    Args:
      input: 4-D tensor, the forward input (NHWC or NCHW per data_format).
      filter_sizes: int32 vector [rows, cols, in_depth / groups, out_depth].
      out_backprop: 4-D tensor, the gradient of the forward output.
      strides, padding, use_cudnn_on_gpu, explicit_paddings, data_format, dilations:
        as for tf.raw_ops.Conv2DBackpropFilter (use_cudnn_on_gpu is accepted and ignored).
      name: optional op name.

    Returns:
      The filter gradient, shape filter_sizes (HWIO), dtype of input.

    Raises:
      tf.errors.InvalidArgumentError: on inconsistent shapes or attributes.
    """
    return _run(
        OPS["cbf"], filter_sizes, input=input, out_backprop=out_backprop, strides=strides,
        padding=padding, use_cudnn_on_gpu=use_cudnn_on_gpu, explicit_paddings=explicit_paddings,
        data_format=data_format, dilations=dilations, name=name,
    )  # fmt: skip


def depthwise_conv2d_native_backprop_filter(
    input,
    filter_sizes,
    out_backprop,
    strides,
    padding,
    explicit_paddings=[],  # noqa: B006
    data_format="NHWC",
    dilations=[1, 1, 1, 1],  # noqa: B006
    name=None,
):
    """Depthwise filter gradient (tf.raw_ops.DepthwiseConv2dNativeBackpropFilter).

    Unlike TensorFlow, honours `dilations` (TF ignores them) and accepts unequal row and
    column strides and NCHW on CPU.

    Args:
      input: 4-D tensor, the forward input.
      filter_sizes: int32 vector [rows, cols, in_depth, depth_multiplier].
      out_backprop: 4-D tensor with depth in_depth * depth_multiplier.
      strides, padding, explicit_paddings, data_format, dilations: as for the raw op.
      name: optional op name.

    Returns:
      The filter gradient, shape filter_sizes.

    Raises:
      tf.errors.InvalidArgumentError: on inconsistent shapes or attributes.
    """
    return _run(
        OPS["dbf"], filter_sizes, input=input, out_backprop=out_backprop, strides=strides,
        padding=padding, explicit_paddings=explicit_paddings, data_format=data_format,
        dilations=dilations, name=name,
    )  # fmt: skip


def depthwise_conv2d_native_backprop_input(
    input_sizes,
    filter,
    out_backprop,
    strides,
    padding,
    explicit_paddings=[],  # noqa: B006
    data_format="NHWC",
    dilations=[1, 1, 1, 1],  # noqa: B006
    name=None,
):
    """Depthwise input gradient (tf.raw_ops.DepthwiseConv2dNativeBackpropInput).

    Unlike TensorFlow, honours `dilations` and accepts unequal strides and NCHW on CPU.

    Args:
      input_sizes: int32 vector, the forward input's shape (4 values).
      filter: [rows, cols, in_depth, depth_multiplier] tensor.
      out_backprop: 4-D tensor with depth in_depth * depth_multiplier.
      strides, padding, explicit_paddings, data_format, dilations: as for the raw op.
      name: optional op name.

    Returns:
      The input gradient, shape input_sizes.

    Raises:
      tf.errors.InvalidArgumentError: on inconsistent shapes or attributes.
    """
    return _run(
        OPS["dbi"], input_sizes, filter=filter, out_backprop=out_backprop, strides=strides,
        padding=padding, explicit_paddings=explicit_paddings, data_format=data_format,
        dilations=dilations, name=name,
    )  # fmt: skip
