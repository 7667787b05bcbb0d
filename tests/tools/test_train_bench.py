"""bench --train (tf_convgrad.tools.train_bench): trace parsing and report, on canned data; one
small real run in the slow tier."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from tf_convgrad.tools import train_bench


def test_event_op_types_including_ours():
    def meta(name, display=""):
        return SimpleNamespace(name=name, display_name=display)

    assert train_bench._event_op_type(meta("a/b/Conv2D:Conv2D", "Conv2D")) == "Conv2D"
    # TF leaves the display name empty for types containing ">": read it from the name.
    ours = "g/c/ConvGrad>Conv2DBackpropFilter:ConvGrad>Conv2DBackpropFilter"
    assert train_bench._event_op_type(meta(ours)) == "ConvGrad>Conv2DBackpropFilter"
    assert train_bench._event_op_type(meta("ExecutorState::Process")) is None
    assert train_bench._event_op_type(meta("ThreadpoolListener::StartRegion")) is None


def test_replaced_op_matching():
    for name in ("Conv2DBackpropFilter", "_MklNativeConv2DBackpropFilterWithBias",
                 "_MklNativeDepthwiseConv2dNativeBackpropInput"):  # fmt: skip
        assert train_bench._is_replaced_tf_op(name)
    for name in ("Conv2DBackpropInput", "ConvGrad>Conv2DBackpropFilter", "Conv2D"):
        assert not train_bench._is_replaced_tf_op(name)


def test_changed_ops_leave_out_the_replaced_and_ours():
    stock = {"Mul": 10.0, "_MklNativeConv2DBackpropFilterWithBias": 30.0, "Sum": 5.0, "Tile": 2.0}
    ours = {"Mul": 11.0, "ConvGrad>Conv2DBackpropFilter": 25.0, "Sum": 5.0, "BiasAddGrad": 3.0}
    assert train_bench._changed_ops(stock, ours, most=3) == [
        ["BiasAddGrad", 0.0, 3.0], ["Tile", 2.0, 0.0], ["Mul", 10.0, 11.0],
    ]  # fmt: skip


def test_table_from_canned_report():
    row = {
        "model": "mobilenet_v2", "policy": "float32", "stock_ms": 200.0, "ours_ms": 160.0,
        "speedup": 1.25, "stock_replaced_ms": 50.0, "share": 0.25, "ceiling": 4 / 3,
        "free_ms": 150.0, "measured_ceiling": 200 / 150, "ours_convgrad_ms": 20.0,
        "changed_ops": [["BiasAddGrad", 0.0, 3.0]],
        "stock_top_ops": [("Mul", 30.0)], "ours_top_ops": [],
        "steps": 10,
    }  # fmt: skip
    report = {"cpu": "Test CPU", "cpus": 2, "tensorflow": "2.21.0", "onednn": True,
              "size": 128, "batch": 16, "rows": [row]}  # fmt: skip
    table = train_bench.format_train_table(report)
    assert "Test CPU" in table and "oneDNN on" in table
    assert "mobilenet_v2 float32: BiasAddGrad 0.0 -> 3.0" in table
    assert (
        "| mobilenet_v2 | float32 | 200.0 | 160.0 | **1.25x** | 50.0 (25%) | 1.33x | 150.0 | 1.33x "
        "| 20.0 |"
    ) in table


@pytest.mark.slow
def test_train_bench_runs():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    cmd = [sys.executable, "-m", "tf_convgrad", "bench", "--train", "--model",
           "mobilenet_v3_small", "--policy", "float32", "--size", "32", "--batch", "2",
           "--steps", "2"]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| mobilenet_v3_small | float32 |" in run.stdout
    assert "measured ceiling" in run.stdout and "changed most" in run.stdout
    assert "ConvGrad>" in run.stdout
