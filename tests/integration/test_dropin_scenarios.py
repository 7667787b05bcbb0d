"""``tf_convgrad.enable()`` in three user scenarios: deterministic training, SavedModel export,
MultiWorkerMirroredStrategy. Every training run is a fresh process (``dropin_worker.py``): thread
counts and oneDNN must be chosen before TensorFlow initialises, and a strategy's collectives at
program start. The workers run with TF's default oneDNN setting (on) unless a test says otherwise.

1. Determinism. Keras ``fit`` (SGD with momentum, MSE, 3 batches of 8 32x32 images) of a model of
   Conv2D, DepthwiseConv2D, SeparableConv2D, BatchNormalization, global pooling and a Dense head
   (convolutions without bias) gives bitwise-identical weights across runs and across 1 and 2
   intra-op threads under ``enable()``, oneDNN on or off, ``enable_op_determinism()`` or not;
   stock TF does not (its filter gradients depend on the thread count, op determinism or not).
   Two TF ops break the identity even under ``enable()``:

   * ``BiasAddGrad``: Keras adds the convolutions' biases with ``tf.nn.bias_add``, and TF's CPU
     kernel (``ReduceOuterDimensions``, redux_functor.h) sums the batch x image rows in
     ``min(threads, ...)`` separate blocks once the work is large enough for Eigen to split it
     (and channels <= 32 x threads). Here SeparableConv2D's 16-channel bias on 8x32x32: after one
     step that bias is the only weight that differs. The conv biases with 8 channels, or a 16x16
     image, stay identical: it depends on the shape.
   * ``MatMul`` with a long inner dimension (Flatten of 8x32x32x16 into Dense) with oneDNN off:
     Eigen's contraction splits K between the threads (oneDNN's MatMul was identical here).

   ``enable_op_determinism()`` changes none of these results (runs with the same thread count were
   identical in every configuration even without it).
2. SavedModel. ``model.export`` writes TF's forward ops only (no ConvGrad op, no gradient): plain
   TensorFlow serves it. After ``import tf_convgrad; tf_convgrad.enable()`` gradients through the
   reloaded function use our ops and match TF's. A training endpoint traced under ``enable()``
   holds our ops and needs ``import tf_convgrad`` to load.
3. MultiWorkerMirroredStrategy with two local worker processes: same weights as one process with
   the global batch (float32 tolerance); the workers' step runs our ops and a collective
   all-reduce.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_convgrad

import dropin_worker as worker

WORKER = str(Path(__file__).resolve().parents[1] / "support" / "dropin_worker.py")
RUN_TIMEOUT = 240  # seconds, one worker process (TF import and a few steps: ~5 s unloaded)
SIZE = 32  # image size of the determinism runs (at 16x16 stock TF is thread-independent too)
STABLE_MODEL = "full_nobias"  # bitwise identical under enable(); see VARIANTS in dropin_worker


def _env(onednn: bool | None = None, **extra) -> dict:
    """The workers' environment: oneDNN as TF's default (None), on (True) or off (False)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CONFIG")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
    env.update(extra)
    return env


def _report(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _run_worker(args: list[str], env: dict, timeout: float = RUN_TIMEOUT) -> dict:
    """Runs ``dropin_worker.py ARGS`` to completion (killed after ``timeout``); its report."""
    command = [sys.executable, WORKER, *args]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:  # subprocess.run has killed it
        tail = error.stderr or b""  # bytes even with text=True (POSIX)
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        pytest.fail(f"dropin_worker {' '.join(args)}: killed after {timeout} s\n{tail[-3000:]}")
    assert proc.returncode == 0, (
        f"dropin_worker {' '.join(args)} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    )
    return _report(proc.stdout)


# --------------------------------------------------------------------------------------------------
# 1. Deterministic training on CPU
# --------------------------------------------------------------------------------------------------


# The trainings of one process (same thread count, oneDNN setting and op determinism).
STABLE = f"stable={STABLE_MODEL}:enable:3"  # enable(), 3 steps: bitwise identical
STOCK = f"stock={STABLE_MODEL}:stock:3"  # the same model with TF's gradients
BIAS = "bias=full:enable:1"  # with the convolutions' biases, enable(), one step
# Flatten of 32x32x16 features into Dense(4): a MatMul with K = 16384, enable(), one step.
FLAT = "flat=conv,relu,dw,relu,sep,flat,dense:enable:1"
ALL = (STABLE, STOCK, BIAS)  # oneDNN on (TF's default)
OFF = (STABLE, FLAT)  # oneDNN off


class _TrainProcesses:
    """``dropin_worker.py train`` processes, each started once per module, two at a time.

    Key: (onednn, determinism, threads, repeat, runs); onednn None is TF's default (on).
    """

    def __init__(self, directory: Path):
        self._dir = directory
        self._done: dict[tuple, tuple[dict, Path]] = {}

    def _one(self, key: tuple) -> tuple[dict, Path]:
        onednn, determinism, threads, repeat, runs = key
        out = self._dir / f"onednn{onednn}_det{determinism}_t{threads}_r{repeat}_{len(runs)}.npz"
        args = ["train", "--out", str(out), "--size", str(SIZE), "--threads", str(threads)]
        args += ["--determinism"] * determinism
        for run in runs:
            args += ["--run", run]
        return _run_worker(args, _env(onednn)), out

    def get(self, *keys: tuple) -> list[tuple[dict, Path]]:
        missing = [key for key in dict.fromkeys(keys) if key not in self._done]
        with ThreadPoolExecutor(2) as pool:
            for key, result in zip(missing, pool.map(self._one, missing), strict=True):
                self._done[key] = result
        return [self._done[key] for key in keys]


@pytest.fixture(scope="module")
def train_processes(tmp_path_factory) -> _TrainProcesses:
    return _TrainProcesses(tmp_path_factory.mktemp("dropin_train"))


def _weights(path: Path, label: str, n: int, kind: str = "final") -> list[np.ndarray]:
    data = np.load(path)
    return [data[f"{label}/{kind}_{k}"] for k in range(n)]


def _differing(processes, label: str) -> list[str]:
    """Names of the weights in which the ``label`` runs of two processes differ."""
    (one, one_path), (two, two_path) = processes
    assert one["runs"][label]["initial_sha"] == two["runs"][label]["initial_sha"]
    n, names = one["runs"][label]["n"], one["runs"][label]["names"]
    pairs = zip(_weights(one_path, label, n), _weights(two_path, label, n), strict=True)
    return [name for name, (a, b) in zip(names, pairs, strict=True) if not np.array_equal(a, b)]


def _check_environment(reports, threads, onednn, determinism):
    assert [r["intra_op_threads"] for r in reports] == list(threads), reports
    assert all(r["onednn_env"] == onednn and r["determinism"] == determinism for r in reports)


@pytest.mark.parametrize("variant", ["convdw", STABLE_MODEL, "full"])
def test_traced_train_step_runs_our_ops_only_under_enable(variant):
    """Keras's own train_step, traced in a tf.function: our three ops under enable(), none of
    TF's three; TF's three (and none of ours) once the context manager has restored the state."""
    previous = tf_convgrad.is_enabled()
    model = worker.build_model(keras, variant, 16, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=False)
    with tf_convgrad.enable():
        ours = worker.conv_grad_ops(worker.train_step_op_types(tf, model, 8))
    assert tf_convgrad.is_enabled() == previous
    stock = worker.conv_grad_ops(worker.train_step_op_types(tf, model, 8))
    if previous:
        pytest.skip("tf_convgrad was enabled before this test; no stock graph to compare with")
    assert ours == {"ours": sorted(worker.OUR_OPS), "tf": []}, ours
    assert stock == {"ours": [], "tf": sorted(worker.TF_GRAD_OPS)}, stock


@pytest.mark.parametrize(
    ("onednn", "determinism", "threads"),
    [(None, True, (1, 2, 2)), (False, False, (1, 2))],
    ids=["onednn_default_on-op_determinism", "onednn_off"],
)
def test_fit_is_bitwise_identical_across_runs_and_thread_counts(
    train_processes, onednn, determinism, threads
):
    """Under enable(): 1 thread, 2 threads and (oneDNN on) a second 2-thread process give the
    same bits; with oneDNN on, with op determinism (it is the same without, and with oneDNN off,
    with or without it, see the module docstring)."""
    keys = [
        (onednn, determinism, t, k, (ALL if onednn is None else OFF) if k < 2 else (STABLE,))
        for k, t in enumerate(threads)
    ]
    processes = train_processes.get(*keys)
    reports = [report for report, _ in processes]
    _check_environment(reports, threads, None if onednn is None else "0", determinism)
    runs = [report["runs"]["stable"] for report in reports]
    assert all(run["enabled"] for run in runs), runs
    assert len({run["initial_sha"] for run in runs}) == 1, "the seeded initial weights differ"
    n, names = runs[0]["n"], runs[0]["names"]
    weights = [_weights(path, "stable", n) for _, path in processes]
    for k, (other, (report, _)) in enumerate(zip(weights[1:], processes[1:], strict=True)):
        label = f"{report['intra_op_threads']} threads (process {k + 2})"
        for name, a, b in zip(names, weights[0], other, strict=True):
            assert np.array_equal(a, b), (
                f"{name}: 1 thread and {label} differ by up to {np.abs(a - b).max():.3g}"
            )
    initial = _weights(processes[0][1], "stable", n, "initial")
    moved = sum(not np.array_equal(a, b) for a, b in zip(initial, weights[0], strict=True))
    assert moved == n, f"only {moved} of {n} weights changed in training"


def test_stock_tensorflow_fit_depends_on_thread_count(train_processes):
    """What makes the test above meaningful: without enable() the same training differs between
    1 and 2 intra-op threads, enable_op_determinism() notwithstanding (TF's filter gradients)."""
    processes = train_processes.get(*[(None, True, t, t - 1, ALL) for t in (1, 2)])
    _check_environment([r for r, _ in processes], (1, 2), None, True)
    assert not any(r["runs"]["stock"]["enabled"] for r, _ in processes)
    assert _differing(processes, "stock"), (
        "stock TF gave bitwise-identical weights with 1 and 2 threads on this machine: the "
        "thread-count check of test_fit_is_bitwise_identical_... no longer tells ours from TF's"
    )


def test_conv_bias_gradient_depends_on_thread_count_even_under_enable(train_processes):
    """The one op found to break the identity under enable(): TF's BiasAddGrad (Keras adds conv
    biases with tf.nn.bias_add). After one step of the model with biases only the bias whose
    gradient reduces the largest image (SeparableConv2D, 16 channels, 8x32x32) differs."""
    processes = train_processes.get(*[(None, True, t, t - 1, ALL) for t in (1, 2)])
    assert all(r["runs"]["bias"]["enabled"] for r, _ in processes)
    assert _differing(processes, "bias") == ["separable_conv2d/bias"]


def test_large_dense_matmul_depends_on_thread_count_with_onednn_off(train_processes):
    """Another op that breaks it, with oneDNN off: TF's Eigen MatMul splits a long inner dimension
    (Flatten of 8x32x32x16 into Dense(4): K = 16384) between the threads; the forward pass
    differs, so after one step every kernel does (with oneDNN on the same run was identical)."""
    processes = train_processes.get(*[(False, False, t, t - 1, OFF) for t in (1, 2)])
    assert all(r["runs"]["flat"]["enabled"] for r, _ in processes)
    assert "dense/kernel" in _differing(processes, "flat")


# --------------------------------------------------------------------------------------------------
# 2. SavedModel
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Trained under enable(), then model.export, model.save(.keras) and a training archive."""
    directory = tmp_path_factory.mktemp("dropin_export")
    reference = directory / "reference.npz"
    args = ["export", "--dir", str(directory), "--out", str(reference), "--layers", "full"]
    report = _run_worker([*args, "--size", "16", "--steps", "2"], _env())
    return directory, reference, report


@pytest.fixture(scope="module")
def served(exported):
    """The two fresh loading processes, started together: plain TF, and tf_convgrad enabled."""
    directory, reference, _ = exported
    jobs = {
        "plain": ["--plain"],
        "enabled": [],
    }

    def serve(item):
        label, extra = item
        out = directory / f"served_{label}.npz"
        args = ["serve", "--dir", str(directory), "--data", str(reference), "--out", str(out)]
        return label, (_run_worker([*args, *extra], _env()), np.load(out))

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(serve, jobs.items()))


def test_export_holds_tf_forward_ops_only_and_serves_with_plain_tensorflow(exported, served):
    directory, reference, export_report = exported
    report, outputs = served["plain"]
    assert export_report["enabled"], export_report
    assert not report["tf_convgrad_imported"], "the plain loader imported tf_convgrad"
    assert sorted(export_report["files"]) == [
        "fingerprint.pb",
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]
    ops = set(report["graph_ops"]) | set(report["library_ops"])
    assert {"Conv2D", "DepthwiseConv2dNative"} <= ops, sorted(ops)
    assert not [op for op in ops if op.startswith("ConvGrad>")], sorted(ops)
    assert not ops & set(worker.TF_GRAD_OPS), "the inference export holds gradient ops"
    assert report["registered_custom_ops"] == [] and report["gradient_defs"] == 0, report
    assert {"serve", "serving_default"} <= set(report["signatures"]), report["signatures"]
    assert report["signature_inputs"] == {"keras_tensor": ["float32", [None, 16, 16, 3]]}
    assert report["n_trainable_variables"] == 15 and report["n_variables"] == 21, report
    expected = np.load(reference)["y"]
    for name in ("serve", "signature", "keras_file"):  # same process kind, same kernels
        np.testing.assert_allclose(outputs[name], expected, rtol=1e-6, atol=1e-6, err_msg=name)


def test_training_endpoint_traced_under_enable_holds_our_ops(served):
    report, _ = served["plain"]
    train = report["train_export"]
    assert train["registered_custom_ops"] == sorted(worker.OUR_OPS), train
    assert set(worker.OUR_OPS) <= set(train["library_ops"]), train["library_ops"]
    assert not set(worker.TF_GRAD_OPS) & set(train["library_ops"]), train["library_ops"]
    assert report["train_export_load"].startswith("RuntimeError: Op type not registered"), report[
        "train_export_load"
    ]
    assert "ConvGrad>" in report["train_export_load"]


def test_gradients_through_reloaded_export_use_our_ops_and_match_tf(exported, served):
    _, reference, _ = exported
    report, outputs = served["enabled"]
    assert report["ours_enabled"] and not report["stock_enabled"], report
    assert report["ours_graph"] == {"ours": sorted(worker.OUR_OPS), "tf": []}, report
    assert report["stock_graph"] == {"ours": [], "tf": sorted(worker.TF_GRAD_OPS)}, report
    assert report["n_gradients"] == 1 + 15  # the input and the trainable variables
    for k in range(report["n_gradients"]):
        ours, stock = outputs[f"ours_eager_{k}"], outputs[f"stock_eager_{k}"]
        what = "input" if k == 0 else report["variable_names"][k - 1]
        assert np.any(stock), f"{what}: zero gradient"
        np.testing.assert_array_equal(outputs[f"ours_traced_{k}"], ours, err_msg=what)
        np.testing.assert_allclose(ours, stock, rtol=1e-4, atol=1e-6, err_msg=what)
    data = np.load(reference)
    for k in range(15):  # the saved training endpoint, against TF's gradients at export time
        np.testing.assert_allclose(
            outputs[f"train_export_grad_{k}"], data[f"stock_grad_{k}"], rtol=1e-4, atol=1e-6
        )


# --------------------------------------------------------------------------------------------------
# 3. MultiWorkerMirroredStrategy, two local workers
# --------------------------------------------------------------------------------------------------

MWMS_TIMEOUT = 120  # seconds for the three processes together (~10-15 s here)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_together(commands: dict, directory: Path, timeout: float) -> dict[str, dict]:
    """Starts every ``name: (args, env)`` at once; kills them all when one fails or time runs
    out, and fails with their stderr tails."""
    procs, logs = {}, {}
    deadline = time.monotonic() + timeout
    try:
        for name, (args, env) in commands.items():
            logs[name] = (directory / f"{name}.out", directory / f"{name}.err")
            with open(logs[name][0], "wb") as out, open(logs[name][1], "wb") as err:
                procs[name] = subprocess.Popen(
                    [sys.executable, WORKER, *args], env=env, stdout=out, stderr=err
                )
        while time.monotonic() < deadline:
            codes = {name: proc.poll() for name, proc in procs.items()}
            if all(code is not None for code in codes.values()) or any(codes.values()):
                break
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def tails() -> str:
        return "\n".join(
            f"--- {name} (exit {procs[name].returncode}) stderr:\n"
            + logs[name][1].read_text(errors="replace")[-2500:]
            for name in procs
        )

    codes = {name: proc.returncode for name, proc in procs.items()}
    if any(code != 0 for code in codes.values()):
        timed_out = time.monotonic() >= deadline
        pytest.fail(
            (f"timed out after {timeout:.0f} s; " if timed_out else "")
            + f"exit codes {codes}\n{tails()}"
        )
    return {name: _report(logs[name][0].read_text()) for name in procs}


def test_multi_worker_mirrored_strategy_matches_one_process(tmp_path):
    steps, global_batch, size, layers = 3, 8, 16, "nobn"
    model = worker.build_model(keras, layers, size, seed=3)
    initial = model.get_weights()
    np.savez(tmp_path / "init.npz", **{f"w_{k}": w for k, w in enumerate(initial)})
    rng = np.random.default_rng(5)
    x = rng.standard_normal((steps, global_batch, size, size, 3)).astype(np.float32)
    y = rng.standard_normal((steps, global_batch, *model.output_shape[1:])).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    common = ["--layers", layers, "--size", str(size), "--lr", "0.5", "--threads", "1"]
    common += ["--init", str(tmp_path / "init.npz"), "--data", str(tmp_path / "data.npz")]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    commands = {"single": (["mwms", "--single", "--out", str(tmp_path / "single.npz")], _env())}
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = ["mwms", "--out", str(tmp_path / f"worker{index}.npz")]
        args += ["--enable-late"] * index  # worker 0 enables before creating the strategy
        commands[f"worker{index}"] = (args, _env(TF_CONFIG=tf_config))
    commands = {name: ([*args, *common], env) for name, (args, env) in commands.items()}
    reports = _run_together(commands, tmp_path, MWMS_TIMEOUT)

    for name in ("worker0", "worker1"):
        report = reports[name]
        assert report["strategy"] == "CollectiveAllReduceStrategy", report
        assert report["replicas"] == 2 and report["local_batch"] == global_batch // 2, report
        assert report["enabled"], report
        # Both orders work: enable() before (worker0) or after (worker1) creating the strategy.
        assert report["enabled_before_strategy"] == (name == "worker0"), report
        assert report["graph"] == {"ours": sorted(worker.OUR_OPS), "tf": []}, report
        assert report["collective_ops"], f"{name}: no collective all-reduce in the step"
    assert reports["single"]["replicas"] == 1 and reports["single"]["local_batch"] == global_batch
    np.testing.assert_allclose(reports["worker0"]["losses"], reports["single"]["losses"], rtol=1e-5)

    def load(name):
        data = np.load(tmp_path / f"{name}.npz")
        return [data[f"w_{k}"] for k in range(len(initial))]

    single, first, second = load("single"), load("worker0"), load("worker1")
    for k, w in enumerate(model.weights):
        np.testing.assert_array_equal(first[k], second[k], err_msg=f"workers differ: {w.path}")
        update, distributed = single[k] - initial[k], first[k] - initial[k]
        assert np.any(update), f"{w.path} did not move"
        scale = np.abs(update).max()
        np.testing.assert_allclose(
            distributed, update, rtol=1e-3, atol=1e-4 * scale, err_msg=f"update of {w.path}"
        )
        np.testing.assert_allclose(first[k], single[k], rtol=1e-5, atol=1e-6, err_msg=w.path)
