"""The hostile-input corpus (``hostile_cases.py``) against our ops: never a signal, always the
right error class, the right zeros, or the right values.

Every case runs eagerly, in a ``tf.function`` with all inputs as arguments, and in a
``tf.function`` with a constant sizes tensor (the shape function sees it), each in a crash-isolated
worker process (``subprocess_worker``; see ``hostile_cases`` for why workers, not one process per
case). TF's own
behaviour on the same corpus (native kernels and oneDNN) is recorded by
``scripts/hostile_table.py`` in ``docs/HOSTILE.md``; this module only judges ours, so it never
runs TF's kernels on inputs that kill them.
"""

from __future__ import annotations

import numpy as np
import pytest

import configs
import helpers
import hostile_cases
import hostile_reference
import subprocess_worker
from hostile_cases import MODES

CASES = hostile_cases.corpus()


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    return subprocess_worker.run(hostile_cases.runs_for(CASES, "ours"), workers=2)


def _describe(result: dict | None) -> str:
    if result is None:
        return "no result"
    where = f"[worker {result.get('worker')} pid {result.get('pid')}]"
    if result.get("crashed") or result.get("timed_out"):
        return f"{hostile_cases.outcome(result)} {where}: {result.get('message', '')[-1500:]}"
    if not result["ok"]:
        return f"{result['error_class']} {where}: {result['message'][:800]}"
    return (
        f"ok {where}: shape {result['shape']}, all_zero {result['all_zero']}, "
        f"finite {result['finite']}"
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile(results, case, mode):
    result = results.get(f"{case.id}|ours|{mode}")
    expected = case.expect[mode]
    got = hostile_cases.outcome(result, case.zeros_shape if expected == "zeros" else None)
    assert got == expected, f"expected {expected}, got {_describe(result)}"
    assert result["pid"] and result["worker"], "every result names the process that ran it"
    if expected == hostile_cases.IAE and case.ours_message:
        # Our kernel's messages start with the op's registered name.
        assert f"{helpers.OUR_OP_TYPES[case.op]}: " in result["message"] or (
            "out of range for an int32" in result["message"]  # attr parsing (GetAttr)
        ), f"message lacks the op name: {result['message'][:600]}"
    if expected == "ok":
        ref = hostile_reference.value(case)
        assert "value" in result, "valid hostile cases are kept small enough to compare"
        got_value = np.asarray(result["value"], np.float64).reshape(result["shape"])
        tol = configs.TOL[case.spec["tensors"]["out_backprop"]["dtype"]]
        helpers.assert_matches(got_value, ref, tol)


def test_corpus_covers_the_issue():
    """Every category the issue names has cases, for every op, in every mode."""
    categories = {
        "sizes tensor",
        "ranks",
        "strides",
        "dilations",
        "explicit_paddings",
        "mismatched sizes",
        "empty tensors",
        "absurd sizes",
        "attributes",
    }
    for op in ("cbf", "dbf", "dbi"):
        have = {case.category for case in CASES if case.op == op}
        assert categories <= have, f"{op}: missing {categories - have}"
    empty_dtypes = {
        case.spec["tensors"]["out_backprop"]["dtype"]
        for case in CASES
        if case.category == "empty tensors"
    }
    assert empty_dtypes == set(hostile_cases.DTYPES)
    assert len(CASES) >= 250


def test_runner_survives_and_attributes_a_crash():
    """A run that kills its worker is reported with its signal; the next run gets a new process.

    The crash is a real one: TF's own Conv2DBackpropFilter in a tf.function with a zero stride
    dies with SIGFPE in Grappler (docs/SEMANTICS.md, "Graph mode", G16).
    """
    (zero_stride,) = (c for c in CASES if c.id == "cbf-stride_zero")
    (valid,) = (c for c in CASES if c.id == "cbf-stride_int32_max_same")
    runs = hostile_cases.runs_for([zero_stride], "tf", modes=("function",))
    runs += hostile_cases.runs_for([valid], "ours", modes=("eager",))
    out = subprocess_worker.run(runs, workers=1)
    crashed, after = out[runs[0]["key"]], out[runs[1]["key"]]
    assert hostile_cases.outcome(crashed) == "crash:SIGFPE", _describe(crashed)
    assert crashed["worker"] == "0.1"
    assert hostile_cases.outcome(after) == "ok", _describe(after)
    assert after["worker"] == "0.2" and after["pid"] != crashed["pid"]
