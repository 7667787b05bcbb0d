"""Subprocess worker for tests/integration/test_dropin_scenarios.py (``tf_convgrad.enable()``
scenarios).

Run as ``python tests/support/dropin_worker.py COMMAND [options]``. The thread counts (and op
determinism) are set before anything else touches TensorFlow, which is why each run is its own
process; oneDNN is whatever ``TF_ENABLE_ONEDNN_OPTS`` in the environment says (unset: TF's default,
on). The last line on stdout is one JSON object, the report the parent checks besides the files
written.

Commands:

``train``
    Builds a model from ``--layers`` (tokens, see ``_layer``; or a name from ``VARIANTS``) with
    ``--seed``, fits ``--steps`` batches of ``--batch`` seeded ``--size`` x ``--size`` images
    (MSE against seeded targets, SGD with momentum, ``jit_compile=False``), writes the initial and
    final weights to ``--out`` (.npz, keys ``LABEL/initial_K``, ``LABEL/final_K``). ``--enable``:
    under ``tf_convgrad.enable()``. Several trainings in one process (same threads, oneDNN and
    determinism): ``--run LABEL=LAYERS:enable|stock:STEPS``, repeated. ``--determinism``:
    ``tf.config.experimental.enable_op_determinism()`` for the whole process.
``export``
    Trains like ``train`` under ``enable()``, then ``model.export(DIR/export)`` (Keras 3
    ExportArchive, tf_saved_model) and ``model.save(DIR/model.keras)``; ``--out`` holds the test
    input and the trained model's outputs on it.
``serve``
    Loads ``DIR`` in this fresh process. ``--plain``: TensorFlow and Keras only (tf_convgrad is
    never imported): inference through the export and the .keras file, and the op types of
    saved_model.pb. ``--enable``: ``import tf_convgrad; tf_convgrad.enable()``, then gradients
    through the reloaded serving function (inputs and variables), compared with the gradients of
    another load of it with TF's own gradient functions (``disable()``).
``mwms``
    One worker of ``tf.distribute.MultiWorkerMirroredStrategy`` (``TF_CONFIG`` from the
    environment), or with ``--single`` one process with the global batch: a custom training loop
    (each worker takes its half of the seeded global batch, loss summed over its examples and
    divided by the global batch, ``keras.optimizers.SGD`` all-reduces the gradients), from the
    initial weights in ``--init``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

# The three ops TF's gradient functions build when tf_convgrad is not enabled, and ours.
TF_GRAD_OPS = (
    "Conv2DBackpropFilter",
    "DepthwiseConv2dNativeBackpropFilter",
    "DepthwiseConv2dNativeBackpropInput",
)
OUR_OPS = tuple(f"ConvGrad>{name}" for name in TF_GRAD_OPS)

# Layer tokens: "b" suffix = with bias; every convolution pads "same".
VARIANTS = {
    # Convolutions only (Conv2D and DepthwiseConv2D, one strided, one with multiplier 2).
    "convdw": "conv relu dw relu conv1 relu dw2 conv1",
    # The same with biases, BatchNormalization, SeparableConv2D, global pooling and a Dense head.
    "full": "convb bn relu dwb bn relu sepb bn relu gap denseb",
    # "full" without the convolutions' biases (the usual choice before BatchNormalization); the
    # Dense head keeps its bias.
    "full_nobias": "conv bn relu dw bn relu sep bn relu gap denseb",
    # As "full" without BatchNormalization (for the distribution strategy).
    "nobn": "convb relu dwb relu sepb relu gap denseb",
}


def _layer(keras, token: str):
    same = {"padding": "same"}
    bias = token.endswith("b")
    name = token[:-1] if bias else token
    factories = {
        "conv": lambda: keras.layers.Conv2D(8, 3, use_bias=bias, **same),
        "conv1": lambda: keras.layers.Conv2D(8, 1, use_bias=bias, **same),
        "sconv": lambda: keras.layers.Conv2D(8, 3, strides=2, use_bias=bias, **same),
        "dw": lambda: keras.layers.DepthwiseConv2D(3, use_bias=bias, **same),
        "dw2": lambda: keras.layers.DepthwiseConv2D(
            3, strides=2, depth_multiplier=2, use_bias=bias, **same
        ),
        "sep": lambda: keras.layers.SeparableConv2D(16, 3, use_bias=bias, **same),
        "bn": lambda: keras.layers.BatchNormalization(),
        "relu": lambda: keras.layers.ReLU(),
        "gap": lambda: keras.layers.GlobalAveragePooling2D(),
        "flat": lambda: keras.layers.Flatten(),
        "dense": lambda: keras.layers.Dense(4, use_bias=bias),
    }
    if name not in factories:
        raise SystemExit(f"unknown layer token {token!r}")
    return factories[name]()


def layer_tokens(spec: str) -> list[str]:
    return VARIANTS.get(spec, spec).replace(",", " ").split()


def build_model(keras, spec: str, size: int, seed: int):
    """A functional model of the layers in ``spec`` for ``size`` x ``size`` x 3 images."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    y = inputs
    for token in layer_tokens(spec):
        y = _layer(keras, token)(y)
    return keras.Model(inputs, y)


def training_data(model, n: int, size: int, seed: int):
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((n, size, size, 3)).astype(np.float32)
    y = rng.standard_normal((n, *model.output_shape[1:])).astype(np.float32)
    return x, y


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def graph_op_types(graph_def) -> set[str]:
    """Op types of a GraphDef's nodes and of every function in its library."""
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def conv_grad_ops(types) -> dict[str, list[str]]:
    return {
        "ours": sorted(t for t in types if t in OUR_OPS),
        "tf": sorted(t for t in types if t in TF_GRAD_OPS),
    }


def train_step_op_types(tf, model, batch: int) -> set[str]:
    """Op types of Keras's own ``train_step`` traced as a tf.function (what ``fit`` runs)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    specs = (
        tf.TensorSpec((batch, *model.input_shape[1:]), tf.float32),
        tf.TensorSpec((batch, *model.output_shape[1:]), tf.float32),
    )
    concrete = tf.function(model.train_step).get_concrete_function(specs)
    return graph_op_types(concrete.graph.as_graph_def())


# --------------------------------------------------------------------------------------------------


def _configure(args):
    """Threading first (it must precede TensorFlow's initialisation), then determinism."""
    import tensorflow as tf  # noqa: PLC0415

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.inter_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
    if getattr(args, "determinism", False):
        tf.config.experimental.enable_op_determinism()
    return tf


def _determinism_enabled() -> bool:
    from tensorflow.python.framework import config  # noqa: PLC0415 - no public getter

    return bool(config.is_op_determinism_enabled())


def _environment(tf) -> dict:
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "determinism": _determinism_enabled(),
        "tf_convgrad_imported": "tf_convgrad" in sys.modules,
    }


def _fit(tf, keras, args, layers: str, steps: int, enabled: bool):
    model = build_model(keras, layers, args.size, args.seed)
    initial = model.get_weights()
    x, y = training_data(model, steps * args.batch, args.size, args.seed)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse", jit_compile=False)
    history = model.fit(x, y, batch_size=args.batch, epochs=1, shuffle=False, verbose=0)
    report = {"loss": [float(v) for v in history.history["loss"]], "enabled": enabled}
    if args.graph_ops:
        report["graph"] = conv_grad_ops(train_step_op_types(tf, model, args.batch))
    return model, initial, x, report


def _train_runs(args) -> list[tuple[str, str, bool, int]]:
    """(label, layers, enable, steps) of every ``--run LABEL=LAYERS:enable|stock:STEPS``, or the
    one run that ``--layers``/``--enable``/``--steps`` describe."""
    if not args.run:
        return [("main", args.layers, args.enable, args.steps)]
    runs = []
    for spec in args.run:
        label, _, rest = spec.partition("=")
        layers, mode, steps = rest.split(":")
        if mode not in ("enable", "stock"):
            raise SystemExit(f"--run {spec!r}: mode must be enable or stock")
        runs.append((label, layers, mode == "enable", int(steps)))
    return runs


def cmd_train(args) -> dict:
    tf = _configure(args)
    import keras  # noqa: PLC0415

    runs = _train_runs(args)
    if any(enable for _, _, enable, _ in runs):
        import tf_convgrad  # noqa: PLC0415
    arrays, reports = {}, {}
    for label, layers, enable, steps in runs:
        keras.backend.clear_session()  # the same layer names in every run
        if enable:
            with tf_convgrad.enable():
                model, initial, _, report = _fit(tf, keras, args, layers, steps, True)
        else:
            model, initial, _, report = _fit(tf, keras, args, layers, steps, False)
        final = model.get_weights()
        arrays.update({f"{label}/initial_{k}": w for k, w in enumerate(initial)})
        arrays.update({f"{label}/final_{k}": w for k, w in enumerate(final)})
        report.update(
            layers=layer_tokens(layers),
            steps=steps,
            n=len(final),
            names=[w.path for w in model.weights],
            initial_sha=digest(initial),
            final_sha=digest(final),
        )
        reports[label] = report
    np.savez(args.out, **arrays)
    return {"runs": reports, **_environment(tf)}


def cmd_export(args) -> dict:
    tf = _configure(args)
    import keras  # noqa: PLC0415
    import tf_convgrad  # noqa: PLC0415

    with tf_convgrad.enable():
        model, _, x, report = _fit(tf, keras, args, args.layers, args.steps, True)
    export_dir = os.path.join(args.dir, "export")
    model.export(export_dir, format="tf_saved_model", verbose=False)
    model.save(os.path.join(args.dir, "model.keras"))
    probe = x[:4]
    predicted = model.predict(probe, verbose=0)  # before the training-mode call below
    target = np.random.default_rng(args.seed + 2).standard_normal(
        (len(probe), *model.output_shape[1:])
    )
    target = target.astype(np.float32)

    def loss_gradients(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        return tape.gradient(loss, model.trainable_variables)

    # An archive with a training endpoint traced under enable(): its graph holds our ops.
    archive = keras.export.ExportArchive()
    archive.track(model)
    specs = [
        tf.TensorSpec((None, *model.input_shape[1:]), tf.float32),
        tf.TensorSpec((None, *model.output_shape[1:]), tf.float32),
    ]
    with tf_convgrad.enable():
        archive.add_endpoint("gradients", tf.function(loss_gradients), input_signature=specs)
        archive.write_out(os.path.join(args.dir, "train_export"), verbose=False)
    with tf_convgrad.disable():  # TF's own gradients, eager, as the reference (this training-
        # mode call moves the BatchNormalization statistics: everything is saved by now)
        stock = [g.numpy() for g in loss_gradients(tf.constant(probe), tf.constant(target))]
    arrays = {f"stock_grad_{k}": g for k, g in enumerate(stock)}
    np.savez(args.out, x=probe, y=predicted, target=target, **arrays)
    report["files"] = sorted(
        os.path.relpath(os.path.join(root, f), export_dir)
        for root, _, files in os.walk(export_dir)
        for f in files
    )
    report.update(_environment(tf))
    return report


def _saved_model_op_types(export_dir: str) -> dict:
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    (meta,) = proto.meta_graphs
    graph = meta.graph_def
    return {
        "graph_ops": sorted({node.op for node in graph.node}),
        "library_ops": sorted(
            {node.op for function in graph.library.function for node in function.node_def}
        ),
        "n_functions": len(graph.library.function),
        "gradient_defs": len(graph.library.gradient),
        "signatures": sorted(meta.signature_def),
        "registered_custom_ops": sorted(
            op.name for op in meta.meta_info_def.stripped_op_list.op if ">" in op.name
        ),
    }


def cmd_serve(args) -> dict:
    tf = _configure(args)
    export_dir = os.path.join(args.dir, "export")
    data = np.load(args.data)
    x = tf.constant(data["x"])
    report = {}
    if args.plain:
        import keras  # noqa: PLC0415

        loaded = tf.saved_model.load(export_dir)
        serve = loaded.signatures["serving_default"]
        (output_name,) = serve.structured_outputs
        outputs = {
            "serve": loaded.serve(x).numpy(),
            "signature": serve(x)[output_name].numpy(),
            "keras_file": keras.saving.load_model(os.path.join(args.dir, "model.keras")).predict(
                data["x"], verbose=0
            ),
        }
        report.update(_saved_model_op_types(export_dir))
        report["signature_inputs"] = {
            name: [spec.dtype.name, spec.shape.as_list()]
            for name, spec in serve.structured_input_signature[1].items()
        }
        report["n_variables"] = len(loaded.variables)
        report["n_trainable_variables"] = len(loaded.trainable_variables)
        train_dir = os.path.join(args.dir, "train_export")
        report["train_export"] = _saved_model_op_types(train_dir)
        try:
            tf.saved_model.load(train_dir)
            report["train_export_load"] = "loaded"
        except Exception as error:  # noqa: BLE001 - the message is the result
            report["train_export_load"] = f"{type(error).__name__}: {error}"[:2000]
    else:
        import tf_convgrad  # noqa: PLC0415

        outputs = {}
        for label, switch in (("ours", tf_convgrad.enable), ("stock", tf_convgrad.disable)):
            with switch():
                # A fresh load each time: a loaded function keeps the gradient it first built.
                loaded = tf.saved_model.load(export_dir)
                variables = list(loaded.trainable_variables)

                def gradients(x, loaded=loaded, variables=variables):
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        loss = tf.reduce_sum(tf.sin(loaded.serve(x)))
                    return tape.gradient(loss, [x, *variables])

                eager = gradients(x)
                traced = tf.function(gradients)
                graph = traced.get_concrete_function(x).graph.as_graph_def()
                report[f"{label}_graph"] = conv_grad_ops(graph_op_types(graph))
                report[f"{label}_enabled"] = tf_convgrad.is_enabled()
                for k, (g_eager, g_traced) in enumerate(zip(eager, traced(x), strict=True)):
                    outputs[f"{label}_eager_{k}"] = g_eager.numpy()
                    outputs[f"{label}_traced_{k}"] = g_traced.numpy()
                report["n_gradients"] = len(eager)
                report["variable_names"] = [v.name for v in variables]
        # The training endpoint traced under enable() at export time runs our ops as saved.
        train = tf.saved_model.load(os.path.join(args.dir, "train_export"))
        for k, g in enumerate(train.gradients(x, tf.constant(data["target"]))):
            outputs[f"train_export_grad_{k}"] = g.numpy()
    np.savez(args.out, **outputs)
    report.update(_environment(tf))
    return report


def cmd_mwms(args) -> dict:
    tf = _configure(args)
    if not args.enable_late:
        # Fine before the strategy: importing loads the op library, enable() swaps Python
        # gradient functions; neither runs a TF op.
        import tf_convgrad  # noqa: PLC0415

        tf_convgrad.enable()
    if args.single:
        strategy, index, workers = tf.distribute.get_strategy(), 0, 1
    else:
        # Created before any TF op runs ("Collective ops must be configured at program startup").
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        workers = strategy.num_replicas_in_sync
    import keras  # noqa: PLC0415
    import tf_convgrad  # noqa: PLC0415

    if args.enable_late:
        tf_convgrad.enable()
    init = np.load(args.init)
    data = np.load(args.data)
    xs, ys = data["x"], data["y"]  # (steps, global batch, ...)
    global_batch = xs.shape[1]
    local = global_batch // workers
    with strategy.scope():
        model = build_model(keras, args.layers, args.size, args.seed)
        model.set_weights([init[f"w_{k}"] for k in range(len(model.weights))])
        optimizer = keras.optimizers.SGD(args.lr)
        optimizer.build(model.trainable_variables)
    scale = float(global_batch * np.prod(ys.shape[2:]))

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x, training=True) - y)) / scale
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    @tf.function
    def step(x, y):
        losses = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    specs = [tf.TensorSpec((local, *xs.shape[2:])), tf.TensorSpec((local, *ys.shape[2:]))]
    types = graph_op_types(step.get_concrete_function(*specs).graph.as_graph_def())
    start = time.monotonic()
    losses = []
    for s in range(xs.shape[0]):
        part = slice(index * local, (index + 1) * local)
        losses.append(float(step(tf.constant(xs[s, part]), tf.constant(ys[s, part]))))
    seconds = time.monotonic() - start
    np.savez(args.out, **{f"w_{k}": w for k, w in enumerate(model.get_weights())})
    report = {
        "index": index,
        "replicas": strategy.num_replicas_in_sync,
        "strategy": type(strategy).__name__,
        "local_batch": local,
        "losses": losses,
        "train_seconds": seconds,
        "graph": conv_grad_ops(types),
        "collective_ops": sorted(t for t in types if t.startswith("Collective")),
        "enabled": tf_convgrad.is_enabled(),
        "enabled_before_strategy": not args.enable_late,
    }
    report.update(_environment(tf))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train", "export", "serve", "mwms"])
    parser.add_argument("--out", required=True, help=".npz written by the command")
    parser.add_argument("--layers", default="convdw", help="variant name or layer tokens")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: TF's)")
    parser.add_argument("--inter-threads", type=int, default=0, help="inter-op (0: TF's)")
    parser.add_argument("--enable", action="store_true", help="tf_convgrad.enable()")
    parser.add_argument(
        "--run",
        action="append",
        metavar="LABEL=LAYERS:enable|stock:STEPS",
        help="train: one of several trainings in this process (instead of --layers/--enable)",
    )
    parser.add_argument("--determinism", action="store_true", help="enable_op_determinism()")
    parser.add_argument("--graph-ops", action="store_true", help="report train_step op types")
    parser.add_argument("--dir", help="export/serve: directory of the export")
    parser.add_argument("--data", help="serve/mwms: .npz with inputs")
    parser.add_argument("--plain", action="store_true", help="serve: without tf_convgrad")
    parser.add_argument("--init", help="mwms: .npz with the initial weights w_0..")
    parser.add_argument("--single", action="store_true", help="mwms: one process, no strategy")
    parser.add_argument(
        "--enable-late", action="store_true", help="mwms: enable() after creating the strategy"
    )
    args = parser.parse_args(argv)
    command = {"train": cmd_train, "export": cmd_export, "serve": cmd_serve, "mwms": cmd_mwms}
    report = command[args.command](args)
    sys.stdout.flush()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
