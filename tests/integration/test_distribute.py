"""tf.distribute.MirroredStrategy over two logical CPU devices: one training step of the
MobileNet-style model built from tf_convgrad.layers gives the same weights as on one device.

The logical devices must be configured before TensorFlow initialises its devices, which pytest's
process has long done, so the comparison runs in a fresh process (this file run as a script).
BatchNormalization is synchronized across replicas, so both runs normalise with the statistics
of the whole batch and only the gradient all-reduce distinguishes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _worker(out_path: str) -> int:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tf_convgrad

    from models import compile_for_test, mobilenet_like, training_data

    x, y = training_data(batch=8)
    single = mobilenet_like(tf_convgrad.layers, synchronized_bn=True)
    initial = single.get_weights()
    compile_for_test(single)
    single.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = mobilenet_like(tf_convgrad.layers, synchronized_bn=True)
        mirrored.set_weights(initial)
        compile_for_test(mirrored)
    mirrored.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    arrays = {}
    for k, (a, b, c) in enumerate(
        zip(initial, single.get_weights(), mirrored.get_weights(), strict=True)
    ):
        arrays[f"initial_{k}"], arrays[f"single_{k}"], arrays[f"mirrored_{k}"] = a, b, c
    np.savez(out_path, **arrays)
    replicas = strategy.num_replicas_in_sync
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    print(json.dumps({"replicas": replicas, "devices": devices, "n": len(initial)}))
    return 0


def test_mirrored_strategy_step_equals_single_device(tmp_path):
    out_path = tmp_path / "weights.npz"
    support = str(Path(__file__).resolve().parents[1] / "support")  # models.py, for the worker
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=support)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(out_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["replicas"] == 2 and len(info["devices"]) == 2, info
    weights = np.load(out_path)
    moved = 0
    for k in range(info["n"]):
        initial, single, mirrored = (
            weights[f"{kind}_{k}"] for kind in ("initial", "single", "mirrored")
        )
        np.testing.assert_allclose(mirrored, single, rtol=1e-5, atol=1e-6, err_msg=f"weight {k}")
        moved += not np.allclose(single, initial, rtol=0, atol=1e-4)
    # The step changed the weights (every trainable one; the BN moving statistics too).
    assert moved >= info["n"] // 2, f"only {moved} of {info['n']} weights changed"


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.exit(_worker(sys.argv[2]))
