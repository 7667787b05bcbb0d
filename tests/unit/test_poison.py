"""Poisoned outputs: every output element must be written by the op.

With ``TF_CONVGRAD_POISON_OUTPUTS=1`` the CPU kernel fills each freshly allocated output with a
signalling-NaN pattern before the compute core runs (``tf_ops/cc/kernels/conv_backprop_ops.cc``),
so an element the core skips stays NaN. The switch is read once per process, at the first
kernel run, so the poisoned calls happen in a worker process started with it set (this file, run
as a script); the float64 reference comparison happens here.

Configurations: every hand-written and random case of the value tests (``configs.SMALL`` and
``configs.RANDOM``: all three ops, every dtype and format as in ``test_values.py``; SAME, VALID
and EXPLICIT; empty batch, channels, multiplier 0, empty output spatial, filter larger than input,
stride larger than input, grouped, dilated, c4096 im2col chunking) plus huge strides, dilations
and paddings (``2**31 - 1``).

``TF_CONVGRAD_POISON_OUTPUTS=selftest`` fills and then skips the computation; the self-test
checks that the exact pattern comes back, so a poison switch that silently stopped working would
fail here rather than make the other tests vacuous.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import configs
import helpers

BIG = 2**31 - 1
POISON_BITS = {
    "float32": (np.uint32, 0x7FA5A5A5),
    "float64": (np.uint64, 0x7FF4A5A5A5A5A5A5),
    "float16": (np.uint16, 0x7D55),
    "bfloat16": (np.uint16, 0x7FA5),
}

_HUGE = [
    configs.Geometry("huge_stride", (2, 5, 5, 3), (3, 3, 3, 2), strides=(BIG, BIG)),
    configs.Geometry(
        "huge_dilation", (2, 5, 6, 3), (3, 3, 3, 2), dilations=(BIG, 1), paddings=("SAME",)
    ),
    configs.Geometry(
        "huge_pads_and_stride",
        (1, 5, 5, 3),
        (3, 3, 3, 2),
        strides=(BIG, 1),
        paddings=("EXPLICIT",),
        explicit=((BIG, BIG), (1, 1)),
    ),
]
HUGE = [case for op in configs.OPS for case in configs.expand(op, _HUGE)]


def _combos():
    triples = []
    for case in configs.SMALL + configs.RANDOM:
        triples += [(case, dtype, fmt) for dtype, fmt in configs.combos(case)]
    for case in HUGE:
        triples += [(case, dtype, "NHWC") for dtype in configs.DTYPES]
    return triples


COMBOS = _combos()
SELFTEST = [
    (case, dtype, fmt)
    for case in configs.SMALL
    if case.id in ("cbf-grouped_g3-SAME", "dbf-m8-VALID", "dbi-m8-EXPLICIT")
    for dtype in configs.DTYPES
    for fmt in configs.FORMATS
]


def _key(case, dtype, fmt) -> str:
    return f"{case.id}|{dtype}|{fmt}"


def _run_worker(mode: str, out: Path) -> subprocess.CompletedProcess:
    env = helpers.script_env(
        TF_CONVGRAD_POISON_OUTPUTS=mode, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="2"
    )
    return subprocess.Popen(
        [sys.executable, __file__, mode, str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def worker_outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("poison")
    procs = {mode: _run_worker(mode, tmp / f"{mode}.npz") for mode in ("1", "selftest")}
    outputs = {}
    for mode, proc in procs.items():
        log, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"poison worker ({mode}) exited with {proc.returncode}:\n{log[-4000:]}")
        with np.load(tmp / f"{mode}.npz") as data:
            outputs[mode] = dict(data)
    return outputs


def test_selftest_poison_reaches_python(worker_outputs):
    """With the core skipped, every element is exactly the poison pattern (and a NaN)."""
    raw = worker_outputs["selftest"]
    for case, dtype, fmt in SELFTEST:
        bits = raw[_key(case, dtype, fmt)]
        uint, pattern = POISON_BITS[dtype]
        assert bits.dtype == uint and bits.size > 0
        assert np.all(bits == pattern), f"{_key(case, dtype, fmt)}: {np.unique(bits)[:4]}"


@pytest.mark.parametrize(
    ("case", "dtype", "data_format"),
    [pytest.param(*t, id=_key(*t).replace("|", "-")) for t in COMBOS],
)
def test_every_element_written(worker_outputs, case, dtype, data_format):
    got = worker_outputs["1"][_key(case, dtype, data_format)]
    assert not np.isnan(got).any(), f"{np.isnan(got).sum()} of {got.size} elements never written"
    got = helpers.result_to_nhwc(case, got, data_format)
    helpers.assert_matches(got, helpers.reference_result(case, dtype), configs.TOL[dtype])


def _worker(mode: str, out: str) -> int:
    import tensorflow as tf  # noqa: PLC0415

    results = {}
    triples = COMBOS if mode == "1" else SELFTEST
    for case, dtype, fmt in triples:
        value = helpers.OURS[case.op](
            **helpers.op_inputs(case, dtype, fmt), **helpers.op_attrs(case, fmt)
        ).numpy()
        if mode == "1":
            results[_key(case, dtype, fmt)] = value.astype(np.float64)
        else:
            results[_key(case, dtype, fmt)] = value.view(POISON_BITS[dtype][0])
    np.savez(out, **results)
    print(f"poison worker ({mode}): {len(results)} outputs, TF {tf.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], sys.argv[2]))
