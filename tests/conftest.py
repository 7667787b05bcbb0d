"""pytest configuration for the tf_convgrad suite.

* Turns oneDNN off *before* TensorFlow is imported, so that every in-process ``tf.raw_ops`` call
  runs TF's native CPU kernels (oneDNN is only ever reached through ``tf_convgrad.tools.oracle``, in
  its own subprocess, see ``onednn_results``).
* Seeds NumPy and TF for every test (the value tests draw their data from per-case seeds anyway).
"""

from __future__ import annotations

import os
import sys

if "tensorflow" in sys.modules:  # pragma: no cover - depends on how pytest was started
    raise RuntimeError(
        "tensorflow was imported before tests/conftest.py could set TF_ENABLE_ONEDNN_OPTS=0; "
        "in-process tf.raw_ops would not be TF's native kernels"
    )
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The modules the tiers share (problem ids, helpers, corpora, worker tasks) live in tests/support.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import configs  # noqa: E402
import helpers  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(1234)
    tf.random.set_seed(1234)


def _onednn_key(case: configs.Case, dtype: str, data_format: str) -> tuple:
    return case.id, dtype, data_format


def onednn_cases(cases) -> list[tuple[configs.Case, str, str]]:
    """(case, dtype, format) triples that the oneDNN oracle is asked about."""
    return [
        (case, dtype, data_format)
        for case in cases
        if helpers.onednn_supports(case)
        for dtype, data_format in configs.combos(case, configs.ONEDNN_DTYPES)
    ]


class OneDnnResults:
    """Lazily runs every oneDNN comparison of a tier in ONE subprocess (oneDNN is per process)."""

    def __init__(self):
        self._tiers: dict[str, dict] = {}

    def get(self, tier: str, case: configs.Case, dtype: str, data_format: str) -> dict:
        if tier not in self._tiers:
            self._tiers[tier] = self._run(tier)
        return self._tiers[tier][_onednn_key(case, dtype, data_format)]

    @staticmethod
    def _run(tier: str) -> dict:
        try:
            from tf_convgrad.tools import oracle  # noqa: PLC0415
        except ImportError as error:  # pragma: no cover - the oracle is part of the package
            pytest.fail(f"tf_convgrad.tools.oracle is missing: {error}")
        triples = onednn_cases({"default": configs.DEFAULT, "slow": configs.SLOW}[tier])
        oracle_cases = []
        for case, dtype, data_format in triples:
            args = {}
            for name, value in helpers.case_data(case, dtype).items():
                args[name] = value if name == "filter" else helpers.to_format(value, data_format)
            args[helpers.SIZES_NAME[case.op]] = helpers.sizes_value(case, data_format)
            oracle_cases.append(
                {
                    "op": configs.OP_NAMES[case.op],
                    "args": args,
                    "attrs": helpers.op_attrs(case, data_format),
                    "dtype": dtype,
                    "mode": "eager",
                }
            )
        results = oracle.run_raw_ops(oracle_cases, onednn=True, timeout=1200)
        return {
            _onednn_key(*triple): result for triple, result in zip(triples, results, strict=True)
        }


@pytest.fixture(scope="session")
def onednn_results() -> OneDnnResults:
    return OneDnnResults()


# Markers by module (registered in pyproject.toml): `-m "not subprocess"` leaves out the modules
# built around processes of their own (some in-process modules start a worker for one test),
# and `-m gpu` selects the checks of the GPU build and harness. `slow` is set on the cases.
SUBPROCESS_MODULES = {
    "test_cli",  # fresh interpreters, as a user runs python -m tf_convgrad
    "test_distribute",
    "test_dropin_scenarios",
    "test_determinism",
    "test_fuzz",
    "test_hostile",
    "test_isa",
    "test_poison",
    "test_qemu",
    "test_readme",
    "test_savedmodel",
    "test_validation",
    "test_worker_pool",
}
GPU_MODULES = {"test_gpu_build", "test_gpu_harness_plan"}


def pytest_collection_modifyitems(items):
    for item in items:
        name = item.module.__name__.rpartition(".")[2]
        if name in SUBPROCESS_MODULES:
            item.add_marker(pytest.mark.subprocess)
        if name in GPU_MODULES:
            item.add_marker(pytest.mark.gpu)
