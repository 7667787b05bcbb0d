"""Hostile inputs: our ops raise the same tf.errors class as TF's native kernels, and never crash.

Every probe runs eagerly and inside a ``tf.function`` (all inputs, sizes included, are function
arguments, so validation happens in the kernel), for our op and for ``tf.raw_ops`` with oneDNN off,
in subprocesses (``subprocess_worker.py``): a probe that kills its process is reported as a crash
and the others still run. All probes of a module run in two processes (ours, TF) side by side.

Expectations per probe:

* ``parity``: the input is genuinely invalid; TF native raises (InvalidArgumentError, or
  ResourceExhaustedError for an impossible allocation, or ValueError/TypeError from graph
  construction). Ours must raise the same class; an InvalidArgumentError from our kernel must
  start with our op name and keep TF's wording (``pattern``).
* ``ours_invalid``: invalid for us, but TF accepts it (TF ignores depthwise ``dilations``
  entirely, docs/SEMANTICS.md G8) or refuses it only for lack of a feature. Ours must raise
  InvalidArgumentError.
* ``ours_zeros``: valid, TF mishandles it (G5: CHECK-abort); ours must return zeros of the right
  shape. TF is not run.

TF's own ops are never run in a ``tf.function`` with a zero stride: that kills the process with
SIGFPE in Grappler (docs/SEMANTICS.md, "Graph mode", G16). Ours are (a namespaced op is not in
Grappler's cost table) and must not crash.

Inputs that TF's native CPU kernels refuse only for lack of a feature (NCHW, dilations, grouped
CBF, unequal depthwise strides) are not errors for us: ``test_tf_gap_is_computed`` checks that we
compute them (against the float64 reference), in process.
"""

from __future__ import annotations

import re

import pytest
import tensorflow as tf

import configs
import helpers
import subprocess_worker
from validation_probes import PROBES, Probe

MODES = ("eager", "function")


def _key(probe: Probe, impl: str, mode: str) -> str:
    return f"{probe.id}|{impl}|{mode}"


def _runs_tf(probe: Probe, mode: str) -> bool:
    if probe.expect == "ours_zeros":
        return False  # TF CHECK-aborts (G5)
    return mode == "eager" or probe.tf_in_function


@pytest.fixture(scope="module")
def probe_results() -> dict[str, dict]:
    ours_runs, tf_runs = [], []
    for probe in PROBES:
        for mode in MODES:
            run = {"op": probe.op, "mode": mode, **probe.spec}
            ours_runs.append({**run, "key": _key(probe, "ours", mode), "impl": "ours"})
            if _runs_tf(probe, mode):
                tf_runs.append({**run, "key": _key(probe, "tf", mode), "impl": "tf"})
    ours, theirs = subprocess_worker.run_jobs([(ours_runs, {}), (tf_runs, {})], timeout=600)
    return {**ours, **theirs}


def _describe(result: dict | None) -> str:
    if result is None:
        return "no result"
    if result.get("crashed"):
        return f"CRASHED (returncode {result['returncode']}): {result['message'][-800:]}"
    if result.get("timed_out"):
        return f"TIMED OUT: {result['message'][-800:]}"
    if result["ok"]:
        return f"ok, shape {result['shape']}"
    return f"{result['error_class']}: {result['message'][:600]}"


def _outcome(result: dict) -> str:
    return "ok" if result["ok"] else result.get("error_class", "?")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.id)
def test_hostile_input(probe_results, probe, mode):
    ours = probe_results.get(_key(probe, "ours", mode))
    assert ours is not None, "the probe produced no result"
    assert not ours.get("crashed") and not ours.get("timed_out"), f"ours: {_describe(ours)}"

    if probe.expect == "ours_zeros":
        assert ours["ok"], f"ours: {_describe(ours)}"
        assert tuple(ours["shape"]) == probe.zeros_shape and ours["all_zero"], _describe(ours)
        return

    if probe.expect == "parity":
        theirs = probe_results.get(_key(probe, "tf", mode))
        if theirs is not None and not theirs.get("crashed") and not theirs.get("timed_out"):
            assert _outcome(ours) == _outcome(theirs), (
                f"error class differs from TF native.\n  ours: {_describe(ours)}\n"
                f"  TF:   {_describe(theirs)}"
            )
        else:
            # TF gave no usable answer (not run, or it crashed): the input is invalid regardless.
            assert not ours["ok"], f"ours accepted an invalid input; TF: {_describe(theirs)}"
    else:  # ours_invalid
        assert _outcome(ours) == "InvalidArgumentError", f"ours: {_describe(ours)}"

    if ours.get("error_class") == "InvalidArgumentError" and probe.pattern is not None:
        prefix = f"{helpers.OUR_OP_TYPES[probe.op]}: "
        assert prefix in ours["message"], f"message lacks {prefix!r}: {ours['message'][:600]}"
        assert re.search(probe.pattern, ours["message"]), (
            f"message lacks TF's wording /{probe.pattern}/: {ours['message'][:600]}"
        )


# --------------------------------------------------------------------------------------------------
# TF feature gaps: TF native refuses, we compute (in process; neither side can crash here)
# --------------------------------------------------------------------------------------------------


def _gap_cases():
    by_id = {case.id: case for case in configs.SMALL}
    picks = [
        ("cbf-dilated2-SAME", "NHWC", "G2 dilations"),
        ("cbf-grouped_g3-VALID", "NHWC", "G3 grouped"),
        ("cbf-unequal_strides_dilated-EXPLICIT", "NHWC", "G2 dilations"),
        ("cbf-odd_3x5_filter_odd_hw-SAME", "NCHW", "G1 NCHW"),
        ("dbf-unequal_strides-SAME", "NHWC", "G9 unequal strides"),
        ("dbi-unequal_strides-EXPLICIT", "NHWC", "G9 unequal strides"),
        ("dbf-odd_3x5_filter_odd_hw-VALID", "NCHW", "G10 NCHW"),
        ("dbi-m8-SAME", "NCHW", "G10 NCHW"),
    ]
    return [
        pytest.param(by_id[cid], fmt, id=f"{cid}-{fmt}-{gap.split()[0]}") for cid, fmt, gap in picks
    ]


@pytest.mark.parametrize(("case", "data_format"), _gap_cases())
def test_tf_gap_is_computed(case, data_format):
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)):
        helpers.TF_RAW[case.op](
            **helpers.op_inputs(case, "float32", data_format), **helpers.op_attrs(case, data_format)
        )
    got = helpers.run_ours(case, "float32", data_format)
    helpers.assert_matches(got, helpers.reference_result(case, "float32"), configs.TOL["float32"])
