"""``python -m tf_convgrad bench`` (timing): the report's arithmetic on canned worker medians.

The workers themselves (TensorFlow in two subprocesses, minutes) run in the benchmark, not here;
these tests check what the report makes of their medians: ratio, roofline and ceiling.
"""

from __future__ import annotations

import argparse
import json

import pytest
from tf_convgrad.tools import bench, bench_cases

# 2x64x64x128 float32, 3x3, stride 1: 2 * 2*64*64*128*9 flops; dy + dx + filter elements.
DBI = dict(op="DBI", name="test 64x64x128 k3", n=2, h=64, w=64, c=128, k=3, s=1, mo=1,
           pad="SAME", dtype="float32")  # fmt: skip
FLOPS = 2 * 2 * 64 * 64 * 128 * 9
BYTES = 4 * (2 * (2 * 64 * 64 * 128) + 9 * 128)
PEAK, BW = 100.0, 10.0  # GFLOP/s, GB/s: memory-bound, roofline = BYTES / 10 GB/s
ROOF_MS = 1e3 * BYTES / (BW * 1e9)

# "graph" medians (per call of a 4-call function) as ours_ms / tf_ms; the secondary modes as
# ours_single_ms (a 1-call function) and ours_eager_ms.
CANNED = {
    "onednn": [{"ours_ms": 1.2, "tf_ms": 2.0, "fgn": 0.1, "ours_single_ms": 1.3,
                "tf_single_ms": 2.6, "ours_eager_ms": 1.1, "tf_eager_ms": 2.2}],
    "native": [{"ours_ms": 1.0, "tf_ms": 3.0, "fgn": 0.2, "ours_single_ms": 1.4,
                "tf_single_ms": 3.9, "ours_eager_ms": 1.0, "tf_eager_ms": 3.0}],
}  # fmt: skip


@pytest.fixture
def canned(monkeypatch):
    monkeypatch.setattr(bench, "suite", lambda *a: [DBI])
    monkeypatch.setattr(bench, "_measure_machine", lambda: (PEAK, BW))
    monkeypatch.setattr(bench, "_run_workers", lambda cases, budget, progress: CANNED)


def _args(**kw):
    base = dict(quick=False, op=None, dtype=None, json=True, plot=None, budget=0.6, memory=False,
                train=False)  # fmt: skip
    return argparse.Namespace(**(base | kw))


def test_cost_counts_two_flops_per_mac_and_minimum_bytes():
    assert bench_cases.cost(DBI) == (FLOPS, BYTES)


def test_report_json(canned, capsys):
    assert bench.run(_args()) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["rows"]
    # Ours: the better of the two workers' medians; TF's best: oneDNN's 2.0 ms.
    assert row["ours_ms"] == 1.0 and row["ratio"] == pytest.approx(2.0)
    assert row["roof_ms"] == pytest.approx(ROOF_MS)
    assert row["pct_roofline"] == pytest.approx(100 * ROOF_MS / 1.0)
    assert row["ceiling"] == pytest.approx(2.0 / ROOF_MS)
    assert row["fgn"] == 0.2
    # Secondary modes: the better worker for ours and for TF, separately per mode.
    assert row["ratio_single"] == pytest.approx(2.6 / 1.3)
    assert row["ratio_eager"] == pytest.approx(2.2 / 1.0)
    summary = report["summary"]["DBI"]
    assert summary["geomean_ratio_f32"] == pytest.approx(2.0)
    assert summary["target_ratio"] == 2.0
    assert summary["ceiling_below_target_f32"] == int(2.0 / ROOF_MS < 2.0)
    assert summary["geomean_ratio_f32_single"] == pytest.approx(2.0)
    assert summary["geomean_ratio_f32_eager"] == pytest.approx(2.2)


def test_float64_peak_is_half(canned):
    row = bench.timing_row(dict(DBI, dtype="float64"), *(w[0] for w in CANNED.values()), 1e-3, BW)
    # At 1 MFLOP/s the case is compute-bound; float64 runs at half the float32 peak.
    assert row["roof_ms"] == pytest.approx(1e3 * FLOPS / (0.5e-3 * 1e9))


def test_report_table(canned, capsys):
    assert bench.run(_args(json=False)) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("DBI"))
    ratio, single, eager, gflops, pct_peak, pct_roof, ceil, fgn = row.split()[-8:]
    assert single == "2.00" and eager == "2.20"
    assert ratio == "2.00" and ceil == f"{2.0 / ROOF_MS:.2f}" and fgn == "0.2"
    assert pct_roof == f"{100 * ROOF_MS:.1f}" and gflops == f"{FLOPS / 1e6:.1f}"
    below = int(2.0 / ROOF_MS < 2.0)
    assert (
        f"DBI: float32 geomean ratio 2.00 over 1 layers, lowest 2.00; {below} with a ceiling "
        "below the target 2.0" in out
    )
    assert "DBI: float32 geomean ratio, single 2.00 (lowest 2.00), eager 2.20 (lowest 2.20)" in out


def test_per_element_16bit(monkeypatch, capsys):
    """A 16-bit case's per-element ratio: ours 16-bit / ours float32 (each the better worker)."""
    half = dict(DBI, dtype="bfloat16")
    monkeypatch.setattr(bench, "suite", lambda *a: [DBI, half])
    monkeypatch.setattr(bench, "_measure_machine", lambda: (PEAK, BW))
    workers = {
        "onednn": CANNED["onednn"] + [{"ours_ms": 0.9, "tf_ms": 2.0, "ours_f32_ms": 1.1, "fgn": 0}],
        "native": CANNED["native"] + [{"ours_ms": 0.8, "tf_ms": 3.0, "ours_f32_ms": 1.0, "fgn": 0}],
    }
    monkeypatch.setattr(bench, "_run_workers", lambda cases, budget, progress: workers)
    assert bench.run(_args()) == 0
    report = json.loads(capsys.readouterr().out)
    f32_row, half_row = report["rows"]
    assert "per_element" not in f32_row
    assert half_row["per_element"] == pytest.approx(0.8 / 1.0)
    per = report["summary"]["DBI"]["per_element"]["bfloat16"]
    assert per == pytest.approx({"min": 0.8, "max": 0.8, "cases": 1})
    assert bench.run(_args(json=False)) == 0
    assert (
        "DBI: bfloat16 per element (ours bfloat16 / ours float32, timed interleaved) 0.80-0.80 "
        "over 1 layers" in capsys.readouterr().out
    )
