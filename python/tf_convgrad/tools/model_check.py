"""``python -m tf_convgrad crosscheck --model NAME``: one training step of a real model, three ways.

The model (``mobilenet_v2``, ``mobilenet_v3_small``, ``efficientnet_b0``, ``resnet50`` from
``keras.applications`` with ``weights=None`` and a seed, or a ``.keras`` file) is rebuilt from
its config three times with its weights: float32 with TF's gradients ("stock", oneDNN on as TF
ships), float32 with gradients traced under :func:`tf_convgrad.enable` ("ours"), and float64
with TF's gradients (the reference). Dropout-family layers get rate 0 so that the three compute
the same function. Each computes, in a ``tf.function``, the gradients of every trainable
variable for ``loss = sum(model(x, training=True) * c)`` (seeded ``x`` and cotangent ``c``);
ours runs ``--repeats`` times. Per convolution kernel the tool prints the norm-relative error
``||g - g64|| / ||g64||`` of stock and of ours, and whether ours was bitwise identical run to run.

Exit code 0: every kernel of ours within :func:`tolerance` and bitwise reproducible, and the
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

from .. import _cli
from . import crosscheck_report, metrics

__all__ = ["APPLICATIONS", "FACTOR", "FLOOR", "add_arguments", "check_model", "run", "tolerance"]

APPLICATIONS = {
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3Small",
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
}

# The float32 tolerance of OUR kernel gradients: ours_err <= FLOOR + FACTOR * stock_err.
# Ours and stock run the same float32 forward pass and differ only in the convolution-gradient
# kernels, so a correct kernel's error is stock's plus one more float32 rounding of the same kind
# (triangle inequality: ours_err <= stock_err + ||g_ours - g_stock|| / ||g64||). FLOOR is one op's
# float32 tolerance in the op cross-check (metrics.TOLERANCES), for kernels whose stock error
# is below one op's rounding; FACTOR 2 lets our rounding, carried through the network, grow as
# large as stock's whole error. Measured at the defaults (128x128, batch 4, seed 0) on the four
# applications (240 kernels): ours/stock 0.81-1.14 and ||g_ours - g_stock|| / ||g64|| <= 5e-6,
# while stock's own error is 2e-6 (MobileNetV3) to 2e-2 (ResNet50): the float32 step itself is
# unstable at random init (2 ulp on the input move ResNet50's float32 gradients by 3%, 1e-12 moves
# float64's by 1e-13), and ours shares that. A wrong kernel fails everywhere: a batch image
# missing (ResNet50: errors 0.4-1.0 on all 53 kernels), a 1% scale error (MobileNetV2: all 52
# kernels, 1.6x over the limit at the worst); in general 1% fails where stock's error < 0.3%.
FLOOR = metrics.TOLERANCES["float32"]
FACTOR = 2.0


def tolerance(stock_err: float) -> float:
    """The largest error ours may have on a kernel where stock TF float32 has ``stock_err``."""
    return FLOOR + FACTOR * stock_err if math.isfinite(stock_err) else FLOOR


_DROPOUTS = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate",
             "SpatialDropout3D": "rate", "AlphaDropout": "rate", "GaussianDropout": "rate",
             "GaussianNoise": "stddev"}  # fmt: skip
_FLOATS = ("float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16")
_TF_OPS = ("Conv2DBackpropFilter", "DepthwiseConv2dNativeBackpropFilter",
           "DepthwiseConv2dNativeBackpropInput")  # fmt: skip
_OURS = tuple("ConvGrad>" + op for op in _TF_OPS)
_CALLER = "TF_CONVGRAD_CALLER_ONEDNN_OPTS"  # set when the tool re-runs itself with oneDNN on


class UsageError(ValueError):
    """A bad ``--model`` or a model the tool cannot check; exit code 2."""


def _progress(message: str) -> None:
    print(f"crosscheck --model: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The model, three times


def _retype(config: Any, dtype: str, dropped: list[str]) -> Any:
    """A copy of a serialized model with every float dtype (and policy) ``dtype``, dropout off."""
    if isinstance(config, list | tuple):
        return type(config)(_retype(c, dtype, dropped) for c in config)
    if not isinstance(config, dict):
        return config
    if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        return dtype
    out = {key: dtype if key == "dtype" and value in _FLOATS else _retype(value, dtype, dropped)
           for key, value in config.items() if key != "compile_config"}  # fmt: skip
    field = _DROPOUTS.get(config.get("class_name"))
    if field and isinstance(out.get("config"), dict) and out["config"].get(field):
        dropped.append(f"{out['config'].get('name')} ({field} {out['config'][field]:g})")
        out["config"] = dict(out["config"], **{field: 0.0})
    return out


def _layers(model) -> list:
    """All layers, nested models' included, depth first."""
    found = []
    for layer in model.layers:
        found += [layer] + (_layers(layer) if hasattr(layer, "layers") else [])
    return found


def check_name(name: str) -> None:
    """Raises :class:`UsageError` unless ``name`` is a known application or a ``.keras`` file."""
    if name not in APPLICATIONS and not name.endswith(".keras"):
        raise UsageError(f"--model {name!r}: expected one of {', '.join(APPLICATIONS)} or a .keras")
    if name not in APPLICATIONS and not os.path.isfile(name):
        raise UsageError(f"--model {name!r}: no such file")


def build_model(name: str, size: int, seed: int):
    """The float32 model: a ``keras.applications`` one (seeded) or a ``.keras`` file."""
    import keras

    keras.utils.set_random_seed(seed)
    if name in APPLICATIONS:
        return getattr(keras.applications, APPLICATIONS[name])(
            weights=None, input_shape=(size, size, 3)
        )
    check_name(name)
    try:
        return keras.models.load_model(name, compile=False)
    except Exception as error:  # any failure to load is the file's
        raise UsageError(f"--model {name!r}: cannot load it: {error}") from error


def rebuild(model, dtype: str) -> tuple[Any, list[str]]:
    """``model`` rebuilt from its config in ``dtype`` with its weights; the dropouts turned off.

    Returns:
        The copy and the dropout-family layers neutralised, as ``"name (rate 0.2)"``.
    """
    import keras

    dropped: list[str] = []
    copy = keras.saving.deserialize_keras_object(
        _retype(keras.saving.serialize_keras_object(model), dtype, dropped)
    )
    copy.set_weights([w.astype(dtype) if w.dtype.kind == "f" else w for w in model.get_weights()])
    return copy, dropped


def make_inputs(model, size: int, batch: int, seed: int) -> tuple[list, list, str]:
    """Seeded inputs and cotangents (float32 values) and a description of the input.

    Pixels in [0, 255] where the model rescales its input itself (a ``Rescaling`` layer, as
    MobileNetV3 and EfficientNet do), else in [-1, 1] (their ``preprocess_input`` range).
    """
    import keras

    rng = np.random.default_rng(seed)
    pixels = any(type(layer).__name__ == "Rescaling" for layer in _layers(model))
    low, high = (0.0, 255.0) if pixels else (-1.0, 1.0)
    inputs = []
    for tensor in model.inputs:
        shape = [batch] + [size if d is None else int(d) for d in tensor.shape[1:]]
        inputs.append(rng.uniform(low, high, shape).astype(np.float32))
    specs = [keras.KerasTensor(x.shape, "float32") for x in inputs]
    outputs = keras.tree.flatten(model.compute_output_spec(specs if len(specs) > 1 else specs[0]))
    cotangents = [rng.standard_normal(o.shape).astype(np.float32) for o in outputs]
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
            if len(weight.shape) < 3 or id(weight) not in index:  # not the bias
                continue
            kind = type(layer).__name__
            if "Separable" in kind:
                kind += ":dw" if "depthwise" in weight.name else ":pw"
            rows.append({"layer": layer.name, "kind": kind, "index": index[id(weight)],
                         "shape": "x".join(str(d) for d in weight.shape)})  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------
# Gradients


def graph_ops(concrete) -> Counter:
    """How often TF's three gradient ops and ours occur in a concrete function's graph
    (its library functions included)."""
    graph = concrete.graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return Counter(n.op for n in nodes if n.op in _TF_OPS + _OURS)


def gradients(model, inputs, cotangents, repeats: int, ours: bool, label: str) -> dict:
    """One training-step gradient in a ``tf.function`` traced inside ``enable()`` if ``ours``
    (else with TF's gradients), run ``repeats`` times.

    Returns:
        ``{"grads": [arrays, first run], "bitwise": [per variable], "ops": Counter,
        "trace_s", "run_s"}``.
    """
    import tensorflow as tf

    from .. import dropin

    variables = model.trainable_variables
    dtype = model.inputs[0].dtype
    xs = [tf.constant(x, dtype) for x in inputs]
    cs = [tf.constant(c, dtype) for c in cotangents]

    @tf.function
    def step(xs, cs):
        with tf.GradientTape() as tape:
            outputs = tf.nest.flatten(model(xs if len(xs) > 1 else xs[0], training=True))
            loss = tf.add_n([tf.reduce_sum(o * c) for o, c in zip(outputs, cs, strict=True)])
        grads = tape.gradient(loss, variables)
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                for g, v in zip(grads, variables, strict=True)]  # fmt: skip

    started = time.monotonic()
    with dropin.enable() if ours else dropin.disable():
        concrete = step.get_concrete_function(xs, cs)
    traced = time.monotonic()
    runs = [[g.numpy() for g in concrete(xs, cs)] for _ in range(repeats)]
    result = {"trace_s": round(traced - started, 2), "run_s": round(time.monotonic() - traced, 2)}
    _progress(f"{label}: traced in {result['trace_s']:.1f} s, {repeats} run(s) in "
              f"{result['run_s']:.1f} s")  # fmt: skip
    bitwise = [all(np.array_equal(r[i], runs[0][i]) for r in runs) for i in range(len(variables))]
    return dict(result, grads=runs[0], bitwise=bitwise, ops=graph_ops(concrete))


def rel_err(value: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> float:
    """``||value - ref||_2 / ||scale||_2`` (``scale`` = ``ref`` by default) in float64; inf for
    non-finite values."""
    value, ref = np.asarray(value, np.float64), np.asarray(ref, np.float64)
    if not np.all(np.isfinite(value)):
        return math.inf
    num = float(np.linalg.norm(value - ref))
    den = float(np.linalg.norm(np.asarray(ref if scale is None else scale, np.float64)))
    return num / den if den else (0.0 if num == 0 else math.inf)


def check_model(name: str, size: int = 128, batch: int = 4, seed: int = 0,
                repeats: int = 2) -> dict[str, Any]:  # fmt: skip
    """Builds the model, computes the three gradients and compares them.

    Returns:
        The report :func:`format_report` prints (``--json`` adds ``environment``).

    Raises:
        UsageError: Unknown name, unreadable file, no convolution kernel, random augmentation.
    """
    started = time.monotonic()
    model = build_model(name, size, seed)
    random = sorted({type(x).__name__ for x in _layers(model) if type(x).__name__[:6] == "Random"})
    if random:  # augmentation would draw differently in each computation
        raise UsageError(f"--model {name!r} has random augmentation layers: {', '.join(random)}")
    models = {key: rebuild(model, dtype) for key, dtype in
              (("stock", "float32"), ("ours", "float32"), ("reference", "float64"))}  # fmt: skip
    kernels = conv_kernels(models["stock"][0])
    if not kernels:
        raise UsageError(f"--model {name!r} has no Conv1D/2D, Depthwise or Separable kernel")
    inputs, cotangents, input_note = make_inputs(model, size, batch, seed)
    _progress(f"built {model.name} and its three rebuilds ({len(kernels)} conv kernels) in "
              f"{time.monotonic() - started:.1f} s; input {input_note}")  # fmt: skip
    labels = {"stock": "stock TF float32", "ours": "tf_convgrad.enable() float32",
              "reference": "stock TF float64 (reference)"}  # fmt: skip
    runs = {key: gradients(models[key][0], inputs, cotangents, 1 if key == "reference" else repeats,
                           key == "ours", label) for key, label in labels.items()}  # fmt: skip
    stock, ours, ref = (runs[k] for k in ("stock", "ours", "reference"))
    rows = []
    for kernel in kernels:
        i = kernel.pop("index")
        stock_err = rel_err(stock["grads"][i], ref["grads"][i])
        ours_err = rel_err(ours["grads"][i], ref["grads"][i])
        ok = ours_err <= tolerance(stock_err) and ours["bitwise"][i]
        apart = rel_err(ours["grads"][i], stock["grads"][i], ref["grads"][i])
        rows.append(dict(kernel, stock_err=stock_err, ours_err=ours_err, ours_vs_stock=apart,
                         tolerance=tolerance(stock_err), bitwise=ours["bitwise"][i],
                         stock_bitwise=stock["bitwise"][i], ok=ok))  # fmt: skip
    graph_ok = not any(ours["ops"][op] for op in _TF_OPS) and any(ours["ops"][op] for op in _OURS)
    ratios = [r["ours_err"] / r["stock_err"] for r in rows
              if r["stock_err"] > 0 and 0 < r["ours_err"] < math.inf]  # fmt: skip
    worst = max(rows, key=lambda r: r["ours_err"] / r["tolerance"])
    failures = sum(not r["ok"] for r in rows)
    summary = {
        "kernels": len(rows), "failures": failures, "graph_ok": graph_ok,
        "pass": failures == 0 and graph_ok,
        "worst": {k: worst[k] for k in ("layer", "kind", "ours_err", "stock_err", "tolerance")},
        "geomean_ours_over_stock": float(np.exp(np.mean(np.log(ratios)))) if ratios else None,
        "max_ours_vs_stock": max(r["ours_vs_stock"] for r in rows),
        "not_bitwise": sum(not r["bitwise"] for r in rows),
        "stock_not_bitwise": sum(not r["stock_bitwise"] for r in rows),
        "seconds": round(time.monotonic() - started, 1),
    }  # fmt: skip
    return {
        "model": name, "keras_name": model.name, "size": size, "batch": batch, "seed": seed,
        "repeats": repeats, "input": input_note, "dropout_neutralised": models["stock"][1],
        "graph_ops": {"stock": dict(stock["ops"]), "ours": dict(ours["ops"])},
        "timings": {k: {"trace_s": v["trace_s"], "run_s": v["run_s"]} for k, v in runs.items()},
        "tolerance": {"floor": FLOOR, "factor": FACTOR,
                      "rule": f"{FLOOR:g} + {FACTOR:g} x stock's"},
        "rows": rows, "summary": summary,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Environment and output


def onednn_enabled() -> bool:
    """Whether TF, as imported in this process, rewrites ops to oneDNN (decided at import)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # pragma: no cover - TF moved its private helper
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")


def environment() -> dict[str, Any]:
    """oneDNN (and the variable that set it), CPU, TensorFlow and Keras versions."""
    import keras
    import tensorflow as tf

    setting, caller = os.environ.get("TF_ENABLE_ONEDNN_OPTS"), os.environ.get(_CALLER)
    if caller is not None:
        note = f"TF_ENABLE_ONEDNN_OPTS={caller!r} in the caller's environment; re-run without it"
    else:
        note = "TF_ENABLE_ONEDNN_OPTS " + ("unset" if setting is None else f"= {setting!r}")
    return {"onednn": onednn_enabled(), "onednn_note": note, "TF_ENABLE_ONEDNN_OPTS": setting,
            "caller_TF_ENABLE_ONEDNN_OPTS": caller, "cpu": _cli.cpu_model(),
            "tensorflow": tf.__version__, "keras": keras.__version__}  # fmt: skip


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1e}"


def _ops(counts: dict[str, int], names: tuple[str, ...]) -> str:
    return ", ".join(f"{n} x{counts[n]}" for n in names if counts.get(n)) or "none"


def format_report(report: dict[str, Any]) -> str:
    """The text report: settings, graph check, one line per conv kernel, the summary line."""
    s, env, ops = report["summary"], report["environment"], report["graph_ops"]
    source = (f"keras.applications.{APPLICATIONS[report['model']]}(weights=None)"
              if report["model"] in APPLICATIONS else "keras.models.load_model")  # fmt: skip
    lines = [
        f"model: {report['model']} = {source}, '{report['keras_name']}', seed {report['seed']}",
        f"step: gradients of sum(model(x, training=True) * c), x {report['input']}, c normal",
        "computed three ways from one config and one set of weights: stock TF float32, "
        "tf_convgrad.enable() float32, stock TF float64 (the reference)",
        "dropout neutralised (rate -> 0): " + (", ".join(report["dropout_neutralised"]) or "none"),
        f"oneDNN: {'on' if env['onednn'] else 'OFF'} ({env['onednn_note']}); CPU: {env['cpu']}; "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}",
        f"graph, stock: {_ops(ops['stock'], _TF_OPS)}",
        f"graph, enable(): {_ops(ops['ours'], _OURS)}; TF's: {_ops(ops['ours'], _TF_OPS)}"
        + ("" if s["graph_ok"] else "  <- FAIL"),
        "rel err = ||g - g64|| / ||g64|| of the kernel gradient; ours-stock = ||g_ours - g_stock|| "
        f"/ ||g64||; bitwise: ours identical over {report['repeats']} run(s)",
        f"ours fails when its rel err > {report['tolerance']['rule']}, or if not bitwise",
        "",
    ]
    table = [["layer", "kind", "kernel", "stock f32", "ours f32", "ours/stock", "ours-stock",
              "bitwise", "result"]]  # fmt: skip
    for r in report["rows"]:
        ratio = f"{r['ours_err'] / r['stock_err']:.2f}" if r["stock_err"] else "-"
        table.append([r["layer"], r["kind"], r["shape"], _fmt(r["stock_err"]), _fmt(r["ours_err"]),
                      ratio, _fmt(r["ours_vs_stock"]), "yes" if r["bitwise"] else "NO",
                      "ok" if r["ok"] else "FAIL"])  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table]  # fmt: skip
    lines += text[:1] + ["-" * max(map(len, text))] + text[1:] + [""]
    if s["stock_not_bitwise"]:
        lines.append(f"note: stock TF float32 was not bitwise reproducible on "
                     f"{s['stock_not_bitwise']} kernel(s) either")  # fmt: skip
    worst, geomean = s["worst"], s["geomean_ours_over_stock"]
    verdict = "PASS" if s["pass"] else "FAIL (" + ", ".join(
        ([f"{s['failures']} kernel(s)"] if s["failures"] else [])
        + ([] if s["graph_ok"] else ["graph check"])) + ")"  # fmt: skip
    lines.append(
        f"{s['kernels']} conv kernels; nearest its tolerance: {worst['layer']} ({worst['kind']}), "
        f"ours {_fmt(worst['ours_err'])} vs stock {_fmt(worst['stock_err'])} (limit "
        f"{_fmt(worst['tolerance'])}); geomean ours/stock "
        + ("-" if geomean is None else f"{geomean:.3f}")
        + f"; max ours-stock {_fmt(s['max_ours_vs_stock'])}; {verdict} ({s['seconds']} s)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--model`` and its options to the ``crosscheck`` parser (``--json`` and
    ``--repeats`` are crosscheck's and shared)."""
    group = parser.add_argument_group(
        "model cross-check (--model)",
        "One training step of a whole model: the conv kernel gradients of stock TF float32 "
        "(oneDNN on; if TF_ENABLE_ONEDNN_OPTS=0 the tool re-runs itself without it) and of "
        "tf_convgrad.enable() against stock TF float64, per layer, with a bitwise check of ours "
        f"over --repeats runs (default 2); ours fails above {FLOOR:g} + {FACTOR:g} x stock's "
        "error. --json prints one JSON object. The grid options "
        "(--tier, --quick, --configs, --op, --dtype, --format, --only, --list, --device, "
        "--no-tf, --mode, --timeout, --no-tf32, --progress) are refused with --model. Exit "
        "code 0: pass; 1: a kernel out of tolerance or not reproducible; 2: usage error.",
    )
    group.add_argument(
        "--model", metavar="NAME",
        help=f"{', '.join(APPLICATIONS)} (keras.applications, weights=None) or a .keras file",
    )  # fmt: skip
    group.add_argument("--size", type=int, help="input height = width (default 128)")
    group.add_argument("--batch", type=int, help="batch size (default 4)")
    group.add_argument("--seed", type=int, help="seed of weights, input and cotangent (0)")


# crosscheck options that mean nothing with --model: dest, default, spelling.
_GRID_OPTIONS = [("tier", None, "--tier"), ("quick", False, "--quick"),
                 ("configs", None, "--configs"), ("op", None, "--op"), ("dtype", None, "--dtype"),
                 ("formats", None, "--format"), ("only", None, "--only"), ("list", False, "--list"),
                 ("devices", None, "--device"), ("no_tf", False, "--no-tf"),
                 ("mode", "eager", "--mode"), ("timeout", 900, "--timeout"),
                 ("no_tf32", False, "--no-tf32"), ("progress", "auto", "--progress")]  # fmt: skip


def _usage_error(message: str) -> int:
    print(f"python -m tf_convgrad crosscheck: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """``crosscheck --model``: prints the report (or ``--json``); returns the exit code."""
    if args.model is None:
        given = [f"--{n}" for n in ("size", "batch", "seed") if getattr(args, n) is not None]
        return _usage_error(f"{', '.join(given)} only go(es) with --model")
    given = [
        flag for dest, default, flag in _GRID_OPTIONS if getattr(args, dest, default) != default
    ]
    if given:
        return _usage_error(f"{', '.join(given)} cannot be used with --model")
    size = 128 if args.size is None else args.size
    batch = 4 if args.batch is None else args.batch
    if min(size, batch, args.repeats) < 1:
        return _usage_error("--size, --batch and --repeats must be at least 1")
    try:
        check_name(args.model)
    except UsageError as error:
        return _usage_error(str(error))
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")
    if not onednn_enabled() and _CALLER not in os.environ and setting.lower() in ("0", "false"):
        # TF chose its kernels when it was imported: run again in a process with oneDNN on.
        _progress(f"TF_ENABLE_ONEDNN_OPTS={setting!r} turned oneDNN off in this process; running "
                  "again without it (TF's default: oneDNN on)")  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        argv = ["--model", args.model, "--size", str(size), "--batch", str(batch),
                "--seed", str(args.seed or 0), "--repeats", str(args.repeats),
                *["--json"] * args.json]  # fmt: skip
        command = [sys.executable, "-m", "tf_convgrad", "crosscheck", *argv]
        return subprocess.run(command, env=dict(env, **{_CALLER: setting}), check=False).returncode
    try:
        report = check_model(args.model, size, batch, args.seed or 0, args.repeats)
    except UsageError as error:
        return _usage_error(str(error))
    report["environment"] = environment()
    if args.json:
        print(json.dumps(crosscheck_report.jsonable(report), indent=1))
    else:
        print(format_report(report))
    return 0 if report["summary"]["pass"] else 1
