"""``python -m tf_convgrad bench --memory``: the peak-RSS measurement and its report.

One test runs a real memory worker (a subprocess, as the tool does) on a depthwise input gradient
with a 4 MiB output and checks that the measured peak covers that output and not much more; the
others check the report's arithmetic and messages on canned worker results, in this process.
"""

from __future__ import annotations

import argparse
import json

import pytest
from tf_convgrad.tools import bench, bench_cases, bench_memory

MIB = 1 << 20
# 2x64x64x128 float32 = 4 MiB of dx; 3x3 filter, stride 1: our scratch is tens of KiB.
DBI_4MIB = dict(op="DBI", name="test 64x64x128 k3", n=2, h=64, w=64, c=128, k=3, s=1, mo=1,
                pad="SAME", dtype="float32")  # fmt: skip
DBF_TINY = dict(op="DBF", name="test 9x9x8 k3", n=1, h=9, w=9, c=8, k=3, s=2, mo=2,
                pad="VALID", dtype="float32")  # fmt: skip


def test_worker_peak_covers_the_output():
    assert bench_memory._peak_reset_problem() is None, (
        "needs Linux with a writable /proc/self/clear_refs"
    )
    progress = []
    runs = bench_memory._run_memory_workers(
        [DBI_4MIB, DBF_TINY],
        fresh=False,
        progress=lambda *a: progress.append(a),
        workers=(("ours", "ours", "0"),),
    )
    big, tiny = runs["ours"]
    out = bench_cases.output_bytes(DBI_4MIB)
    assert out == 4 * MIB
    assert len(big["peak_bytes_runs"]) == 3 and big["peak_bytes"] == max(big["peak_bytes_runs"])
    # The output must be resident at the peak; the import-time peak (hundreds of MiB) must not
    # leak in, which it would if the reset did not work.
    assert 0.5 * out <= min(big["peak_bytes_runs"]) and big["peak_bytes"] <= out + 16 * MIB
    assert 0 <= tiny["peak_bytes"] <= 16 * MIB
    assert progress[-1] == ("ours", 2, 2)


def _args(**kw):
    base = dict(quick=False, op=None, dtype=None, json=True, plot=None, budget=0.6, memory=True,
                fresh=False)  # fmt: skip
    return argparse.Namespace(**(base | kw))


CANNED = {
    "ours": [{"peak_bytes": 6 * MIB, "peak_bytes_runs": [6 * MIB] * 3},
             {"peak_bytes": 0, "peak_bytes_runs": [0] * 3}],
    "onednn": [{"error": "UnimplementedError: no such kernel"},
               {"peak_bytes": 4096, "peak_bytes_runs": [4096] * 3}],
    "native": [{"peak_bytes": 5 * MIB, "peak_bytes_runs": [5 * MIB] * 3},
               {"peak_bytes": 8192, "peak_bytes_runs": [8192] * 3}],
}  # fmt: skip


@pytest.fixture
def canned(monkeypatch):
    monkeypatch.setattr(bench, "suite", lambda *a: [DBI_4MIB, DBF_TINY])
    monkeypatch.setattr(bench_memory, "_peak_reset_problem", lambda: None)
    monkeypatch.setattr(bench_memory, "_run_memory_workers", lambda cases, fresh, progress: CANNED)


def test_report_json(canned, capsys):
    assert bench.run(_args()) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "memory" and report["env"]["MALLOC_MMAP_THRESHOLD_"] == "65536"
    big, tiny = report["rows"]
    assert big["output_bytes"] == 4 * MIB and tiny["output_bytes"] == 3 * 3 * 8 * 2 * 4
    # oneDNN refused: TF's best is native's 5 MiB; ours needs 1 MiB more.
    assert big["tf_onednn_peak_bytes"] is None and "Unimplemented" in big["tf_onednn_error"]
    assert big["tf_best_peak_bytes"] == 5 * MIB and big["excess_bytes"] == MIB
    assert big["ratio"] == pytest.approx(1.2)
    # Both below the resolution: the ratio is 1, not 0 / 4096.
    assert tiny["tf_best_peak_bytes"] == 4096 and tiny["ratio"] == 1.0
    assert report["summary"]["DBI"] == {
        "cases": 1, "cases_above_tf": 1, "max_ratio": pytest.approx(1.2), "max_excess_bytes": MIB
    }  # fmt: skip
    assert report["summary"]["DBF"]["cases_above_tf"] == 0


def test_report_table(canned, capsys):
    assert bench.run(_args(json=False)) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("DBI"))
    assert row.split()[-6:] == ["4.00", "6.00", "error", "5.00", "1.20", "1.00"]
    assert "DBI test 64x64x128 k3 float32, TF oneDNN: UnimplementedError: no such kernel" in out
    assert "DBI: ours above TF's best (by > 0.25 MiB) on 1 of 1 cases" in out


def test_refuses_plot_and_unusable_clear_refs(canned, capsys, monkeypatch):
    assert bench.run(_args(plot="x.png")) == 2
    assert "--plot" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.setattr(bench, "suite", lambda *a: [DBF_TINY])

    def denied():
        raise PermissionError(13, "Permission denied", "/proc/self/clear_refs")

    monkeypatch.setattr(bench_memory, "_reset_peak", denied)
    assert bench.run(_args()) == 2
    err = capsys.readouterr().err
    assert "clear_refs" in err and "Permission denied" in err


def test_report_with_16bit_cases(canned, monkeypatch, capsys):
    """16-bit cases: the memory report has no timing fields (no per-element ratio)."""
    half = dict(DBI_4MIB, dtype="bfloat16")
    monkeypatch.setattr(bench, "suite", lambda *a: [half, DBF_TINY])
    assert bench.run(_args()) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"][0]["dtype"] == "bfloat16"
    assert "per_element" not in report["rows"][0] and "per_element" not in report["summary"]["DBI"]
