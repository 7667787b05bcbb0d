"""``python -m tf_convgrad crosscheck --model``: a whole model's training-step gradient, three ways.

The tool must run with oneDNN on (TF's default), which conftest turns off in this process, so
the runs are subprocesses with ``TF_ENABLE_ONEDNN_OPTS`` removed from their environment. The
default suite runs a tiny ``.keras`` model (every kind of kernel the tool reports) twice: as it
is, and with our kernels made wrong (the tool must exit 1); in this process, the graph check,
usage errors and the re-run when oneDNN is off (its command, not the run). ``-m slow`` runs
the four keras.applications models and the re-run for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tf_convgrad import __main__ as cli
from tf_convgrad import dropin
from tf_convgrad.tools import model_check

KINDS = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D:dw", "SeparableConv2D:pw",
         "Conv2DTranspose", "Conv1D"}  # fmt: skip
OURS = {"ConvGrad>Conv2DBackpropFilter", "ConvGrad>DepthwiseConv2dNativeBackpropFilter",
        "ConvGrad>DepthwiseConv2dNativeBackpropInput"}  # fmt: skip
TFS = {op.split(">")[1] for op in OURS}
SMALL = ("--size", "16", "--batch", "2")

# Our kernels made wrong, in the tool's own process: the Conv2D filter gradient 1% too large
# (every Conv2D, pointwise and transposed kernel) and the depthwise filter gradient without the
# first batch image.
MUTATED = """
import sys
import tensorflow as tf
from tf_convgrad import __main__ as cli, ops
cbf, dbf = ops.conv2d_backprop_filter, ops.depthwise_conv2d_native_backprop_filter
ops.conv2d_backprop_filter = lambda *args, **kwargs: cbf(*args, **kwargs) * 1.01
ops.depthwise_conv2d_native_backprop_filter = lambda x, *args, **kwargs: dbf(
    tf.concat([tf.zeros_like(x[:1]), x[1:]], 0), *args, **kwargs)
sys.exit(cli.main(sys.argv[1:]))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _tool(*argv: str, env: dict[str, str] | None = None, script: str | None = None, timeout=300):
    start = [sys.executable, "-c", script] if script else [sys.executable, "-m", "tf_convgrad"]
    return subprocess.run([*start, "crosscheck", *argv], env=env or _env(), capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def _table(stdout: str) -> dict[tuple[str, str], list[str]]:
    """Table rows by (layer, kind): the cells after them."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0], cells[1]] = cells[2:]
    return rows


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A few of each kernel kind, BatchNorm, dropout; unknown spatial size (--size applies)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.SeparableConv2D(12, 3, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
    # Explicit names: automatic ones depend on the layers other tests created in this process.
    x = layers.SpatialDropout2D(0.3, name="spatial_dropout2d")(layers.Conv2D(16, 1)(x))
    x = layers.Conv1D(8, 3, padding="same")(layers.Reshape((-1, 16))(x))
    x = layers.Dropout(0.5, name="dropout")(layers.GlobalAveragePooling1D()(x))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    keras.Model(inputs, layers.Dense(5)(x), name="tiny").save(path)
    return str(path)


def test_tiny_model_json_and_table(tiny_model):
    done = _tool("--model", tiny_model, *SMALL, "--repeats", "3", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("stock TF float32", "tf_convgrad.enable() float32", "stock TF float64"):
        assert f"crosscheck --model: {step}" in done.stderr  # progress with seconds, on stderr
    report = json.loads(done.stdout)
    env = report["environment"]
    assert env["onednn"] is True and env["TF_ENABLE_ONEDNN_OPTS"] is None
    assert env["cpu"] and env["tensorflow"] == "2.21.0" and env["keras"].startswith("3.")
    # The enabled step's graph holds our three ops and none of TF's; the stock one the opposite.
    assert set(report["graph_ops"]["ours"]) == OURS
    assert set(report["graph_ops"]["stock"]) == TFS
    assert report["summary"]["pass"] and report["summary"]["failures"] == 0
    assert len(report["rows"]) == 7 and report["repeats"] == 3
    for row in report["rows"]:
        assert row["ok"] and row["bitwise"] and row["ours_err"] <= row["tolerance"]
        assert row["stock_err"] < 1e-5 and row["ours_err"] < 1e-5
    assert report["tolerance"]["factor"] == model_check.FACTOR
    assert report["dropout_neutralised"] == ["spatial_dropout2d (rate 0.3)", "dropout (rate 0.5)"]

    # The table is the same report as text.
    out = model_check.format_report(report)
    assert "oneDNN: on (TF_ENABLE_ONEDNN_OPTS unset)" in out
    assert (
        "dropout neutralised (rate -> 0): spatial_dropout2d (rate 0.3), dropout (rate 0.5)" in out
    )
    assert "x 2x16x16x3 uniform[-1, 1]" in out and "identical over 3 run(s)" in out
    assert "TF's: none" in out
    rows = _table(out)
    assert {kind for _, kind in rows} == KINDS and len(rows) == 7
    for cells in rows.values():  # kernel, stock f32, ours f32, ours/stock, ours-stock, bitwise
        assert cells[-2:] == ["yes", "ok"]
    assert out.splitlines()[-1].startswith("7 conv kernels;") and " PASS (" in out


def test_wrong_kernels_fail(tiny_model):
    done = _tool("--model", tiny_model, *SMALL, script=MUTATED)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = _table(done.stdout)
    assert len(rows) == 7 and all(cells[-1] == "FAIL" for cells in rows.values())
    assert all(float(cells[2]) > 1e-3 for cells in rows.values())
    assert "FAIL (7 kernel(s))" in done.stdout


def test_onednn_off_reruns_the_tool(monkeypatch, capsys):
    """conftest imported TF with TF_ENABLE_ONEDNN_OPTS=0: the tool runs itself again without it."""
    assert not model_check.onednn_enabled()
    calls = []

    def fake_run(command, env, check):
        calls.append((command, env))
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(model_check.subprocess, "run", fake_run)
    assert cli.main(["crosscheck", "--model", "resnet50", "--seed", "3", "--json"]) == 1
    [(command, env)] = calls
    assert command[:4] == [sys.executable, "-m", "tf_convgrad", "crosscheck"]
    assert " ".join(command[4:]) == (
        "--model resnet50 --size 128 --batch 4 --seed 3 --repeats 2 --json"
    )
    assert "TF_ENABLE_ONEDNN_OPTS" not in env and env["TF_CONVGRAD_CALLER_ONEDNN_OPTS"] == "0"
    assert "turned oneDNN off in this process" in capsys.readouterr().err
    # What the process run again says about it.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setenv("TF_CONVGRAD_CALLER_ONEDNN_OPTS", "0")
    env = model_check.environment()
    assert (
        env["caller_TF_ENABLE_ONEDNN_OPTS"] == "0" and "'0' in the caller's" in env["onednn_note"]
    )


def test_graph_check_fails_when_enable_does_nothing(tiny_model, monkeypatch):
    monkeypatch.setattr(dropin, "enable", dropin.disable)
    report = model_check.check_model(tiny_model, size=16, batch=2, repeats=1)
    assert set(report["graph_ops"]["ours"]) == TFS
    assert not report["summary"]["graph_ok"] and not report["summary"]["pass"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "mobilenet_v2", "--tier", "quick"], "--tier cannot be used with --model"),
        (["--model", "mobilenet_v2", "--no-tf", "--op", "CBF"], "--op, --no-tf cannot be used"),
        (["--size", "64"], "--size only go(es) with --model"),
        (["--model", "vgg16"], "expected one of mobilenet_v2"),
        (["--model", "missing.keras"], "no such file"),
        (["--model", "mobilenet_v2", "--batch", "0"], "must be at least 1"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(capsys, argv, message):
    assert cli.main(["crosscheck", *argv]) == 2
    assert message in capsys.readouterr().err


def test_help_mentions_model(capsys):
    with pytest.raises(SystemExit):
        cli.main(["crosscheck", "--help"])
    out = capsys.readouterr().out
    assert "--model NAME" in out and "refused with --model" in out


@pytest.mark.slow
def test_onednn_off_reruns_for_real(tiny_model):
    done = _tool("--model", tiny_model, *SMALL, env=_env(TF_ENABLE_ONEDNN_OPTS="0"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "turned oneDNN off in this process" in done.stderr
    assert "oneDNN: on (TF_ENABLE_ONEDNN_OPTS='0' in the caller's environment" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(model_check.APPLICATIONS))
def test_applications(name):
    done = _tool("--model", name, "--json", timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["environment"]["onednn"] and report["summary"]["pass"]
    assert len(report["rows"]) > 50 and all(row["bitwise"] for row in report["rows"])
    assert set(report["graph_ops"]["ours"]) <= OURS and not set(report["graph_ops"]["ours"]) & TFS
