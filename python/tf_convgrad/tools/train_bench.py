"""`python -m tf_convgrad bench --train`: whole Keras training steps, stock TF vs enable().

Method:
* Per model (keras.applications, weights=None, seeded) and dtype policy (float32,
  mixed_bfloat16), three copies with the same weights: one trained by stock TensorFlow, one
  under :func:`tf_convgrad.enable`, and the "free" copy of the measured ceiling (below). All are
  compiled with SGD (momentum 0.9), ``jit_compile=False``, and traced by two warm-up
  ``train_on_batch`` calls each in their own mode; the enabled and free graphs are checked for
  the gradient ops they must (and must not) hold.
* Then ``--steps`` rounds, each timing one ``train_on_batch`` of each copy (it returns the loss
  as a NumPy value, so the step has finished), the order reversing round by round. Reported:
  medians in ms and ``speedup`` = stock median / enabled median.
* One more step of the stock and enabled copies runs under TF's profiler; the per-op-type self
  time is read from the raw trace (the XPlane protobuf: op events on TF's inter-op threads,
  children subtracted).
  TF's own profiler tools drop op types containing ``>``, so our ops would not appear there.
  ``share`` = time of TF's three replaced backprop ops (any kernel variant, oneDNN's included)
  in stock's step / all op time; ``ceiling`` = 1 / (1 - share): the speed-up if our ops took no
  time at all, estimated from op times (which overlap: TF runs independent ops at once).
* ``measured ceiling``: a third copy with the same weights, traced under ``enable()`` with our
  three ops replaced by stand-ins that only write zeros of the result's shape (computed from the
  incoming gradient, so nothing upstream is pruned), is timed in the same interleaved rounds;
  stock median / its median is the speed-up no kernel for these ops could exceed in this step.
* TensorFlow runs with its defaults (oneDNN on unless TF_ENABLE_ONEDNN_OPTS=0 is set; the report
  says which) and all cores. The CPU model is in the report.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import statistics
import sys
import tempfile
import time

from .. import _cli

MODELS = {
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3Small",
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
}
POLICIES = ("float32", "mixed_bfloat16")
TF_REPLACED = (
    "Conv2DBackpropFilter",
    "DepthwiseConv2dNativeBackpropFilter",
    "DepthwiseConv2dNativeBackpropInput",
)
OURS_PREFIX = "ConvGrad>"
#: The copies of each model: stock TF, under enable(), under enable() with cost-free stand-ins.
COPIES = ("stock", "ours", "free")


def _is_replaced_tf_op(op_type: str) -> bool:
    return not op_type.startswith(OURS_PREFIX) and any(n in op_type for n in TF_REPLACED)


def _event_op_type(metadata) -> str | None:
    """The op type of a trace event, or None for events that are not ops.

    TF names op events "name:type" and parses the type into the display name, except for types
    containing ">" (ours), whose display name stays empty.
    """
    if metadata.display_name:
        return metadata.display_name
    name, _, op_type = metadata.name.rpartition(":")
    if name and not name.endswith(":") and op_type.startswith(OURS_PREFIX):
        return op_type
    return None


def _op_self_times(logdir: str) -> dict[str, float]:
    """Self time (ms) per op type on TF's inter-op threads, from the profiler's XPlane file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    times: collections.Counter = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            # Op events carry their type as display name; nested op events (function calls)
            # are subtracted from their parent, so each op counts its own time once.
            events = []
            for ev in line.events:
                op_type = _event_op_type(plane.event_metadata[ev.metadata_id])
                if op_type:
                    events.append((ev.offset_ps, ev.offset_ps + ev.duration_ps, op_type))
            events.sort(key=lambda e: (e[0], -e[1]))
            stack: list[list] = []
            for start, end, op_type in events:
                while stack and stack[-1][1] <= start:
                    stack.pop()
                if stack:
                    times[stack[-1][2]] -= (end - start) / 1e9
                times[op_type] += (end - start) / 1e9
                stack.append([start, end, op_type])
    return dict(times)


def _mode(which: str):
    """The gradient functions a copy runs with (a context manager)."""
    import contextlib

    import tf_convgrad

    from .. import dropin

    if which == "stock":
        return tf_convgrad.disable()
    if which == "ours":
        return tf_convgrad.enable()
    stack = contextlib.ExitStack()
    stack.enter_context(tf_convgrad.enable())
    stack.enter_context(dropin._StandIns())
    return stack


def _graph_types(model, x, y) -> set[str]:
    import tensorflow as tf

    graph_def = tf.function(model.train_step).get_concrete_function((x, y)).graph.as_graph_def()
    types = {n.op for n in graph_def.node}
    for function in graph_def.library.function:
        types |= {n.op for n in function.node_def}
    return types


def _profile_step(model, x, y) -> dict[str, float]:
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix="tf_convgrad_profile_")
    tf.profiler.experimental.start(logdir)
    try:
        model.train_on_batch(x, y)
    finally:
        tf.profiler.experimental.stop()
    return _op_self_times(logdir)


def _changed_ops(stock_ops: dict, our_ops: dict, most: int = 6) -> list:
    """[op type, stock ms, enabled ms] of the other op types whose time changed most under
    enable() (TF's replaced ops and ours left out): a kernel no longer fused, or ops that run
    slower next to ours."""
    others = [
        [k, stock_ops.get(k, 0.0), our_ops.get(k, 0.0)]
        for k in set(stock_ops) | set(our_ops)
        if not _is_replaced_tf_op(k) and not k.startswith(OURS_PREFIX)
    ]
    return sorted(others, key=lambda row: (-abs(row[2] - row[1]), row[0]))[:most]


def _one_model(name: str, policy: str, size: int, batch: int, steps: int, log) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.backend.clear_session()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        cls = getattr(keras.applications, MODELS[name])
        models = {k: cls(weights=None, input_shape=(size, size, 3)) for k in COPIES}
        for k in COPIES[1:]:
            models[k].set_weights(models["stock"].get_weights())
    finally:
        keras.config.set_dtype_policy(previous)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 1000, size=(batch,))
    for model in models.values():
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=False,
        )

    def step(which):
        # The free copy's step is traced (on its first call) with the stand-ins in place.
        t0 = time.perf_counter()
        with _mode(which):
            models[which].train_on_batch(x, y)
        return time.perf_counter() - t0

    for which in COPIES:
        for _ in range(2):
            step(which)
    for which in ("ours", "free"):
        with _mode(which):
            types = _graph_types(models[which], tf.constant(x), tf.constant(y))
        ours_in = any(t.startswith(OURS_PREFIX) for t in types)
        # Ours in place of TF's (ResNet50 has no depthwise layer, so not always all three); in
        # the free copy, neither.
        if ours_in != (which == "ours") or any(_is_replaced_tf_op(t) for t in types):
            raise RuntimeError(f"{name}: the {which} training step runs other gradient ops")
    times = {which: [] for which in COPIES}
    for i in range(steps):
        for which in COPIES if i % 2 == 0 else COPIES[::-1]:
            times[which].append(step(which))
        log(f"  round {i + 1}/{steps}")
    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    with _mode("stock"):
        stock_ops = _profile_step(models["stock"], x, y)
    with _mode("ours"):
        our_ops = _profile_step(models["ours"], x, y)
    total = sum(stock_ops.values())
    replaced = sum(v for k, v in stock_ops.items() if _is_replaced_tf_op(k))
    ours_total = sum(our_ops.values())
    ours_time = sum(v for k, v in our_ops.items() if k.startswith(OURS_PREFIX))
    return {
        "model": name,
        "policy": policy,
        "stock_ms": medians["stock"],
        "ours_ms": medians["ours"],
        "speedup": medians["stock"] / medians["ours"],
        "stock_op_ms": total,
        "stock_replaced_ms": replaced,
        "share": replaced / total if total else 0.0,
        "ceiling": 1 / (1 - replaced / total) if total and replaced < total else float("inf"),
        "free_ms": medians["free"],
        "measured_ceiling": medians["stock"] / medians["free"],
        "ours_op_ms": ours_total,
        "ours_convgrad_ms": ours_time,
        "stock_top_ops": sorted(stock_ops.items(), key=lambda kv: -kv[1])[:8],
        "changed_ops": _changed_ops(stock_ops, our_ops),
        "ours_top_ops": sorted(our_ops.items(), key=lambda kv: -kv[1])[:8],
        "steps": steps,
    }


def run_train(args) -> int:
    """Entry point of ``bench --train``."""
    import tensorflow as tf

    models = args.model or list(MODELS)
    policies = args.policy or list(POLICIES)
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"

    def log(message):
        print(message, file=sys.stderr, flush=True)

    log(
        f"bench --train on {_cli.cpu_model()} ({os.cpu_count()} CPUs), TF {tf.__version__}, oneDNN "
        f"{'on' if onednn else 'off'}: {len(models)} models x {len(policies)} policies, "
        f"{args.size}x{args.size}, batch {args.batch}, {args.steps} interleaved rounds"
    )
    rows = []
    for policy in policies:
        for name in models:
            t0 = time.perf_counter()
            log(f"{name} {policy}")
            rows.append(_one_model(name, policy, args.size, args.batch, args.steps, log))
            log(f"  done in {time.perf_counter() - t0:.0f} s: speedup {rows[-1]['speedup']:.2f}x")
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": _cli.cpu_model(),
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "onednn": onednn,
        "size": args.size,
        "batch": args.batch,
        "rows": rows,
    }
    print(json.dumps(report, indent=1) if args.json else format_train_table(report))
    return 0


def format_train_table(report: dict) -> str:
    """The report as Markdown: the table, then the op breakdowns (docs/PERF.md carries it as is,
    through ``tools/perf_tables.py train``)."""
    rows = report["rows"]
    lines = [
        f"Training steps (train_on_batch), stock TF vs tf_convgrad.enable(): {report['cpu']}, "
        f"{report['cpus']} CPUs, TF {report['tensorflow']} (oneDNN "
        f"{'on' if report['onednn'] else 'off'}), {report['size']}x{report['size']}, batch "
        f"{report['batch']}; medians of {rows[0]['steps'] if rows else 0} interleaved steps; "
        f"{report.get('date', 'undated')}.",
        "",
        "| model | policy | stock ms | enabled ms | speed-up | TF's 3 ops in stock (ms, share) "
        "| ceiling from share | free ms | measured ceiling | ours in enabled (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['policy']} | {r['stock_ms']:.1f} | {r['ours_ms']:.1f} | "
            f"**{r['speedup']:.2f}x** | {r['stock_replaced_ms']:.1f} ({100 * r['share']:.0f}%) | "
            f"{r['ceiling']:.2f}x | {r['free_ms']:.1f} | {r['measured_ceiling']:.2f}x | "
            f"{r['ours_convgrad_ms']:.1f} |"
        )
    lines += ["", "Largest op types of one step (self ms), stock | enabled:", ""]
    for r in rows:
        stock = ", ".join(f"{k} {v:.1f}" for k, v in r["stock_top_ops"][:6])
        ours = ", ".join(f"{k} {v:.1f}" for k, v in r["ours_top_ops"][:6])
        lines.append(f"* {r['model']} {r['policy']}: {stock} | {ours}")
    lines += [
        "",
        "Other op types that changed most under enable() (self ms, stock -> enabled):",
        "",
    ]
    for r in rows:
        changed = ", ".join(f"{k} {a:.1f} -> {b:.1f}" for k, a, b in r.get("changed_ops", []))
        lines.append(f"* {r['model']} {r['policy']}: {changed}")
    return "\n".join(lines)


def add_train_arguments(parser) -> None:
    group = parser.add_argument_group("--train (whole Keras training steps)")
    group.add_argument(
        "--train",
        action="store_true",
        help="time whole training steps of keras.applications models, stock vs enable()",
    )
    group.add_argument("--model", action="append", choices=sorted(MODELS), help="repeatable")
    group.add_argument("--policy", action="append", choices=POLICIES, help="repeatable")
    group.add_argument("--size", type=int, default=128, help="input height and width")
    group.add_argument("--batch", type=int, default=16)
    group.add_argument("--steps", type=int, default=10, help="interleaved timed rounds")
