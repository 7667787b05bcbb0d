"""``python -m tf_convgrad crosscheck --model NAME``: one training step of a real model, three ways.

The model (``mobilenet_v2``, ``mobilenet_v3_small``, ``efficientnet_b0``, ``resnet50`` from
``keras.applications`` with ``weights=None``, or a ``.keras`` file) is rebuilt from its config
three times with the same weights: float32 with TF's gradients ("stock", oneDNN on as TF ships),
float32 under :func:`tf_convgrad.enable` ("ours") and float64 with TF's gradients (the
reference). Dropout-family layers get ``rate`` 0 so that the three see the same function. For a
seeded batch ``x`` and cotangent ``c``, each computes the gradients of
``sum(model(x, training=True) * c)`` in a ``tf.function`` (traced inside ``enable()`` for ours);
ours is run ``--repeats`` times. Per convolution kernel the tool prints the norm-relative error
``||g - g64|| / ||g64||`` of stock and ours and whether ours was bitwise identical run to run.

Exit code 0: every kernel of ours within :func:`tolerance`, bitwise reproducible, and the
enabled graph holds our ops and none of TF's three; 1: otherwise; 2: usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from . import crosscheck

__all__ = ["APPLICATIONS", "FACTOR", "FLOOR", "add_arguments", "check_model", "run", "tolerance"]

APPLICATIONS = {
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3Small",
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
}

# Tolerance for OUR kernel gradient in float32. Both float32 runs share every op but the
# convolution gradients, so the error of a correct kernel is float32 rounding carried through the
# network's forward and backward passes, the same as stock TF's; ours and stock's then differ by
# the luck of summation order, not by magnitude (ratios 0.3x-2.3x on the four applications at
# the defaults). FACTOR 4 leaves room for that, FLOOR is the single-op float32 tolerance of the op
# cross-check (layers whose stock error is far below one op's rounding). A wrong kernel is off by
# O(1) (a transposed filter, a missing batch image) or by its own scale error; 1% is > 10x this
# bound on every layer measured (worst stock error 1.0e-4 on ResNet50).
FLOOR = crosscheck.TOLERANCES["float32"]
FACTOR = 4.0


def tolerance(stock_err: float) -> float:
    """The largest error ours may have on a layer where stock TF float32 has ``stock_err``."""
    return max(FLOOR, FACTOR * stock_err)


_DROPOUTS = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate",
             "SpatialDropout3D": "rate", "AlphaDropout": "rate", "GaussianDropout": "rate",
             "GaussianNoise": "stddev"}  # fmt: skip
_FLOATS = ("float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16")
_TF_OPS = ("Conv2DBackpropFilter", "DepthwiseConv2dNativeBackpropFilter",
           "DepthwiseConv2dNativeBackpropInput")  # fmt: skip
_OURS = tuple("ConvGrad>" + op for op in _TF_OPS)
_CHILD = "TF_CONVGRAD_CALLER_ONEDNN_OPTS"  # set when the tool re-ran itself with oneDNN on


def _progress(message: str) -> None:
    print(f"crosscheck --model: {message}", file=sys.stderr, flush=True)


class UsageError(ValueError):
    """A bad ``--model`` or option; exit code 2."""


# --------------------------------------------------------------------------------------------
# The model, three times


def _retype(config: Any, dtype: str, dropped: list[str]) -> Any:
    """``config`` with every float dtype (policies included) set to ``dtype``, dropout off."""
    if isinstance(config, list | tuple):
        return type(config)(_retype(c, dtype, dropped) for c in config)
    if not isinstance(config, dict):
        return config
    if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        return dtype
    out = {}
    for key, value in config.items():
        if key == "dtype" and isinstance(value, str) and value in _FLOATS:
            out[key] = dtype
        elif key == "compile_config":
            continue
        else:
            out[key] = _retype(value, dtype, dropped)
    field = _DROPOUTS.get(config.get("class_name"))
    if field and isinstance(out.get("config"), dict) and out["config"].get(field):
        dropped.append(f"{out['config'].get('name')} ({field} {out['config'][field]:g})")
        out["config"] = dict(out["config"], **{field: 0.0})
    return out


def _layers(model) -> list:
    """All layers, nested models' included, depth first."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found += _layers(layer)
    return found


def build_model(name: str, size: int, seed: int):
    """The float32 model: a ``keras.applications`` one (seeded) or a ``.keras`` file."""
    import keras

    keras.utils.set_random_seed(seed)
    if name in APPLICATIONS:
        builder = getattr(keras.applications, APPLICATIONS[name])
        return builder(weights=None, input_shape=(size, size, 3))
    if not name.endswith(".keras"):
        raise UsageError(f"--model {name!r}: expected one of {sorted(APPLICATIONS)} or a .keras file")
    if not os.path.isfile(name):
        raise UsageError(f"--model {name!r}: no such file")
    return keras.models.load_model(name, compile=False)


def rebuild(model, dtype: str) -> tuple[Any, list[str]]:
    """``model`` rebuilt from its config in ``dtype`` with its weights; the dropouts turned off."""
    import keras

    dropped: list[str] = []
    config = _retype(keras.saving.serialize_keras_object(model), dtype, dropped)
    copy = keras.saving.deserialize_keras_object(config)
    weights = model.get_weights()
    copy.set_weights([w.astype(dtype) if w.dtype.kind == "f" else w for w in weights])
    return copy, dropped


def make_inputs(model, size: int, batch: int, seed: int) -> tuple[list, list, str]:
    """Seeded inputs and cotangents (float32 values) and a note on the input range."""
    import keras

    rng = np.random.default_rng(seed)
    pixels = any(type(layer).__name__ == "Rescaling" for layer in _layers(model))
    low, high = (0.0, 255.0) if pixels else (-1.0, 1.0)
    inputs = []
    for tensor in model.inputs:
        shape = [batch] + [size if d is None else int(d) for d in tensor.shape[1:]]
        inputs.append(rng.uniform(low, high, shape).astype(np.float32))
    specs = [keras.KerasTensor(x.shape, "float32") for x in inputs]
    outputs = model.compute_output_spec(specs if len(specs) > 1 else specs[0])
    cotangents = [
        rng.standard_normal(o.shape).astype(np.float32) for o in keras.tree.flatten(outputs)
    ]
    shapes = ", ".join("x".join(map(str, x.shape)) for x in inputs)
    return inputs, cotangents, f"{shapes} uniform[{low:g}, {high:g}]"


def conv_kernels(model) -> list[dict[str, Any]]:
    """The convolution kernels: layer, kind, shape and index in ``model.trainable_variables``."""
    from keras import layers as kl

    kinds = (kl.Conv1D, kl.Conv2D, kl.DepthwiseConv1D, kl.DepthwiseConv2D, kl.SeparableConv1D,
             kl.SeparableConv2D, kl.Conv1DTranspose, kl.Conv2DTranspose)  # fmt: skip
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    rows = []
    for layer in _layers(model):
        if not isinstance(layer, kinds):
            continue
        for weight in layer.trainable_weights:
            if len(weight.shape) < 3 or id(weight) not in index:
                continue
            kind = type(layer).__name__
            if "Separable" in kind:
                kind += ":dw" if "depthwise" in weight.name else ":pw"
            shape = "x".join(str(d) for d in weight.shape)
            rows.append({"layer": layer.name, "kind": kind, "shape": shape,
                         "index": index[id(weight)]})  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------
# Gradients


def _graph_ops(concrete) -> Counter:
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return Counter(n.op for n in nodes if n.op in _TF_OPS + _OURS)


def gradients(model, inputs, cotangents, repeats: int, ours: bool, label: str) -> dict:
    """Traces (inside ``enable()`` if ``ours``) and runs one training-step gradient.

    Returns:
        ``{"grads": [np arrays, first run], "bitwise": [bool per variable], "ops": Counter}``.
    """
    import tensorflow as tf

    from . import dropin

    variables = model.trainable_variables
    dtype = variables[0].dtype if variables else "float32"
    xs = [tf.constant(x, dtype) for x in inputs]
    cs = [tf.constant(c, dtype) for c in cotangents]

    @tf.function
    def step(xs, cs):
        with tf.GradientTape() as tape:
            outputs = tf.nest.flatten(model(xs if len(xs) > 1 else xs[0], training=True))
            loss = tf.add_n([tf.reduce_sum(o * c) for o, c in zip(outputs, cs, strict=True)])
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                for g, v in zip(tape.gradient(loss, variables), variables, strict=True)]  # fmt: skip

    started = time.monotonic()
    with dropin.enable() if ours else dropin.disable():
        concrete = step.get_concrete_function(xs, cs)
    traced = time.monotonic() - started
    runs = []
    for _ in range(repeats):
        runs.append([g.numpy() for g in concrete(xs, cs)])
    timing = f"traced in {traced:.1f} s, {repeats} run(s) in {time.monotonic() - started - traced:.1f} s"
    _progress(f"{label}: {timing}")
    bitwise = [all(np.array_equal(r[i], runs[0][i]) for r in runs[1:]) for i in range(len(variables))]
    return {"grads": runs[0], "bitwise": bitwise, "ops": _graph_ops(concrete)}


def _rel(value: np.ndarray, ref: np.ndarray) -> float:
    value, ref = value.astype(np.float64), ref.astype(np.float64)
    if not np.all(np.isfinite(value)):
        return math.inf
    num, den = float(np.linalg.norm(value - ref)), float(np.linalg.norm(ref))
    return num / den if den else (0.0 if num == 0 else math.inf)


def check_model(name: str, size: int = 128, batch: int = 4, seed: int = 0,
                repeats: int = 2) -> dict[str, Any]:  # fmt: skip
    """Runs the three computations and compares them; the report :func:`run` prints."""
    started = time.monotonic()
    model = build_model(name, size, seed)
    stock_model, dropped = rebuild(model, "float32")
    ours_model, _ = rebuild(model, "float32")
    ref_model, _ = rebuild(model, "float64")
    inputs, cotangents, input_note = make_inputs(model, size, batch, seed)
    kernels = conv_kernels(stock_model)
    _progress(f"built {model.name} three times ({len(stock_model.trainable_variables)} "
              f"trainable variables, {len(kernels)} conv kernels) in "
              f"{time.monotonic() - started:.1f} s; input {input_note}")  # fmt: skip
    stock = gradients(stock_model, inputs, cotangents, repeats, False, "stock TF float32")
    ours = gradients(ours_model, inputs, cotangents, repeats, True, "enable() float32")
    ref = gradients(ref_model, inputs, cotangents, 1, False, "stock TF float64 (reference)")

    rows = []
    for kernel in kernels:
        i = kernel.pop("index")
        stock_err, ours_err = _rel(stock["grads"][i], ref["grads"][i]), _rel(ours["grads"][i], ref["grads"][i])
        kernel["ours_vs_stock"] = _rel(ours["grads"][i], stock["grads"][i])
        ok = ours_err <= tolerance(stock_err) and ours["bitwise"][i]
        rows.append(dict(kernel, stock_err=stock_err, ours_err=ours_err,
                         tolerance=tolerance(stock_err), bitwise=ours["bitwise"][i],
                         stock_bitwise=stock["bitwise"][i], ok=ok))  # fmt: skip
    graph_ok = not any(ours["ops"][op] for op in _TF_OPS) and any(ours["ops"][op] for op in _OURS)
    ratios = [r["ours_err"] / r["stock_err"] for r in rows
              if r["stock_err"] > 0 and 0 < r["ours_err"] < math.inf]  # fmt: skip
    worst = max(rows, key=lambda r: r["ours_err"] / r["tolerance"], default=None)
    failures = sum(not r["ok"] for r in rows)
    summary = {
        "layers": len(rows), "failures": failures, "graph_ok": graph_ok,
        "pass": failures == 0 and graph_ok and bool(rows),
        "worst_layer": worst and {k: worst[k] for k in ("layer", "kind", "ours_err", "stock_err")},
        "geomean_ratio": math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None,
        "stock_nonbitwise": sum(not r["stock_bitwise"] for r in rows),
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    return {
        "model": name, "keras_name": model.name, "size": size, "batch": batch, "seed": seed,
        "repeats": repeats, "input": input_note, "dropout_neutralised": dropped,
        "graph_ops": {"stock": dict(stock["ops"]), "ours": dict(ours["ops"])},
        "tolerance_rule": f"ours <= max({FLOOR:g}, {FACTOR:g} x stock)",
        "rows": rows, "summary": summary,
    }  # fmt: skip
