"""``python -m tf_convgrad crosscheck``: options, metrics, failure detection, progress, output.

Most tests run the command in this process with ``--no-tf`` (ours only); one runs the TF native
and oneDNN workers on a few depthwise cases to check what the tool reports about TF: dilation
ignored, which kernel ran, determinism.
"""

from __future__ import annotations

import io
import json

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tf_convgrad import __main__ as cli
from tf_convgrad.tools import crosscheck, crosscheck_grid, crosscheck_run, metrics, problems

SMALL_JSON = {
    "configs": [
        {"op": "CBF", "config": "n2 h6w5 c4 k3x2 o6 g2 s2x1 d1x2 EXPLICIT[1,0,2,1] NCHW"},
        {"op": "DepthwiseConv2dNativeBackpropInput", "n": 2, "h": 7, "w": 6, "c": 3, "kh": 3,
         "kw": 3, "out": 2, "strides": [1, 2], "padding": "SAME", "data_format": "NHWC"},
    ]
}  # fmt: skip


def _run(capsys, *argv):
    code = crosscheck.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def small_json(tmp_path):
    path = tmp_path / "configs.json"
    path.write_text(json.dumps(SMALL_JSON))
    return str(path)


# --------------------------------------------------------------------------------------------
# Metrics


def test_ulp_distance_known_values():
    one_up = float(np.nextafter(np.float32(1), np.float32(2)))
    assert metrics.ulp_distance(np.array([one_up]), np.array([1.0]), "float32") == 1
    assert metrics.ulp_distance(np.array([-0.0, 2.0]), np.array([0.0, 2.0]), "float32") == 0
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    assert metrics.ulp_distance(np.array([tiny]), np.array([-tiny]), "float32") == 2
    # The reference is rounded to the dtype first: 1 + 2**-10 rounds to 1 in bfloat16.
    bf_up = float(np.nextafter(ml_dtypes.bfloat16(1), ml_dtypes.bfloat16(2)))
    assert metrics.ulp_distance(np.array([bf_up]), np.array([1 + 2**-10]), "bfloat16") == 1
    assert metrics.ulp_distance(np.array([1.0]), np.array([1 + 2**-12]), "float16") == 0
    assert metrics.ulp_distance(np.array([3.0]), np.array([-3.0]), "float16") == 2 * 0x4200
    big = np.array([1e300])
    assert metrics.ulp_distance(np.nextafter(big, 2 * big), big, "float64") == 1
    assert metrics.ulp_distance(np.array([np.nan]), np.array([1.0]), "float32") == np.inf
    assert metrics.ulp_distance(np.zeros(2), np.zeros(3), "float32") == np.inf
    assert metrics.ulp_distance(np.zeros((0, 3)), np.zeros((0, 3)), "float64") == 0


def test_entry_classifies_results():
    ref = np.array([1.0, -2.0, 0.5])
    ok = crosscheck_run.entry(
        {"ok": True, "value": ref + 1e-9, "repeats": 2, "deterministic": False}, ref, "float32"
    )
    assert ok["status"] == "ok" and ok["deterministic"] is False
    assert ok["abs_err"] == pytest.approx(1e-9) and ok["err"] == pytest.approx(5e-10)
    wrong = crosscheck_run.entry({"ok": True, "value": ref * 1.01}, ref, "float32")
    assert wrong["status"] == "wrong" and wrong["deterministic"] is None
    ignores = crosscheck_run.entry({"ok": True, "value": ref * 3}, ref, "float32", ref * 3)
    assert ignores["status"] == "ignores dilation"
    refuses = crosscheck_run.entry(
        {"ok": False, "error_class": "UnimplementedError", "message": "NHWC only"}, ref, "float32"
    )
    assert refuses["status"] == "refuses: Unimplemented" and refuses["message"] == "NHWC only"
    crashed = crosscheck_run.entry({"ok": False, "crashed": True, "returncode": -6}, ref, "float32")
    assert crashed["status"] == "crashed (SIGABRT)"


# --------------------------------------------------------------------------------------------
# Configurations


def test_tiers_and_filters():
    quick, default, full = (len(crosscheck_grid.build_grid(t)) for t in crosscheck_grid.TIERS)
    assert 0 < quick < default < full
    only_dbf = crosscheck_grid.build_grid("quick", ops=["DepthwiseConv2dNativeBackpropFilter"])
    assert only_dbf and {c.op for c in only_dbf} == {"dbf"}
    assert crosscheck_grid.build_grid("quick", ops=["DBF"]) == only_dbf
    with pytest.raises(ValueError, match="tier"):
        crosscheck_grid.build_grid("huge")


def test_configuration_strings_round_trip():
    for problem in problems.tier("grid_full"):
        assert problems.Problem.parse(problem.op, str(problem)) == problem
    with pytest.raises(ValueError, match="unknown tier"):
        problems.tier("huge")
    with pytest.raises(ValueError, match="unknown op"):
        problems.tier("grid", ops=["CBF"])


def test_list_json_round_trips_through_configs_file(capsys, tmp_path):
    code, out, _ = _run(capsys, "--list", "--json", "--quick", "--op", "DBI", "--format", "NCHW")
    assert code == 0
    listed = json.loads(out)["configs"]
    assert listed and all(c["config"].endswith("NCHW") for c in listed)
    path = tmp_path / "listed.json"
    path.write_text(out)
    loaded = crosscheck_grid.load_configs(str(path))
    assert [crosscheck_grid.to_json(c) for c in loaded] == listed


def test_configs_file_both_spellings(small_json):
    cbf, dbi = crosscheck_grid.load_configs(small_json)
    assert (cbf.groups, cbf.strides, cbf.dilations, cbf.pads) == (2, (2, 1), (1, 2), (1, 0, 2, 1))
    assert dbi.op == "dbi" and dbi.strides == (1, 2)
    assert str(dbi) == "n2 h7w6 c3 k3x3 m2 s1x2 d1x1 SAME NHWC"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[", "cannot read"),
        ("[]", "non-empty list"),
        ('[{"op": "XYZ", "config": "n1"}]', "configuration 0: unknown op"),
        ('[{"op": "CBF", "n": 1}]', "lacks"),
        ('[{"op": "CBF", "config": "n1 h2w2 c1 k5x5 o1 VALID"}]', "negative"),
        ('[{"op": "DBF", "n": 1, "h": 3, "w": 3, "c": 1, "kh": 1, "kw": 1, "out": 1, "x": 2}]',
         "unknown fields"),
    ],
)  # fmt: skip
def test_bad_configs_file_exit_2(capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, _, err = _run(capsys, "--configs", str(path), "--no-tf")
    assert code == 2 and message in err


# --------------------------------------------------------------------------------------------
# Running ours


def test_json_report_for_ours(capsys, small_json):
    formats = ("--format", "NHWC", "--format", "NCHW")
    code, out, err = _run(
        capsys, "--configs", small_json, "--no-tf", "--json", "--repeats", "3", *formats,
        "--progress", "lines",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["repeats"] == 3
    assert report["summary"]["cases"] == 2 * 2 * 4  # configurations x formats x dtypes
    assert report["summary"]["failures"] == 0
    for row in report["results"]:
        ours = row["ours"]
        assert row["pass"] and ours["status"] == "ok"
        assert ours["kernel"] == "ConvGrad>" + row["op"]
        assert ours["deterministic"] is True
        for key in ("err", "abs_err", "ulp"):
            assert isinstance(ours[key], float) and ours[key] >= 0
        assert ours["err"] <= row["tolerance"]
        assert "tf_native" not in row
    stats = report["summary"]["implementations"]["ours"]
    assert set(stats["by_dtype"]) == set(metrics.DTYPES)
    assert stats["nondeterministic"] == 0 and stats["statuses"] == {"ok": 16}
    assert "crosscheck:" in err  # progress lines on a non-terminal stderr


def test_table_and_legacy_options(capsys):
    code, out, _ = _run(capsys, "--quick", "--op", "CBF", "--dtype", "f64", "--dtype", "bf16",
                        "--only", "SAME NCHW", "--mode", "function", "--no-tf")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    rows = [line for line in lines if line.startswith("CBF ")]
    assert rows and all(" SAME NCHW " in r for r in rows)
    assert all("PASS" in r and " det" in r for r in rows)
    assert any(line.startswith("ours ") and " f64 " in line for line in lines)  # summary
    assert lines[-1].startswith(f"{len(rows)} cases, all pass")


def test_our_wrong_or_failing_results_fail_the_run(capsys, monkeypatch, small_json):
    real = crosscheck_run._run_ours
    calls = []

    def broken(case):
        result = real(case)
        calls.append(case)
        if len(calls) == 1:  # first case: slightly wrong values
            result = dict(result, value=result["value"] * (1 + 1e-3))
        elif len(calls) == 2:  # second: a refusal
            result = {"ok": False, "error_class": "InvalidArgumentError", "message": "boom"}
        else:  # others: nondeterministic, but right
            result = dict(result, deterministic=False)
        return result

    monkeypatch.setattr(crosscheck_run, "_run_ours", broken)
    code, out, _ = _run(capsys, "--configs", small_json, "--no-tf", "--dtype", "f32",
                        "--dtype", "f64")  # fmt: skip
    assert code == 1
    assert out.splitlines()[-1].startswith("4 cases, 2 failures")
    assert "FAIL CBF" in out and "boom" in out
    assert "NONDET" in out


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = crosscheck_run.Progress({"ours": 4, "TF native": 4}, stream=stream)
    assert progress.style == "bar"
    progress.update("ours", 2, force=True)
    progress.update("TF native", 4, force=True)
    progress.finish()
    text = stream.getvalue()
    assert text.count("\r") >= 2 and text.endswith("\n")
    assert "[" + "#" * 18 + "-" * 6 + "]" in text  # 6 of 8 done
    assert "ours 2/4" in text and "TF native 4/4" in text and "s left" in text
    lines = io.StringIO()
    plain = crosscheck_run.Progress({"ours": 2}, stream=lines)
    plain.update("ours", 1, force=True)
    plain.update("ours", 2)  # within the interval: not drawn until finish()
    plain.finish()
    assert plain.style == "lines" and "\r" not in lines.getvalue()
    assert lines.getvalue().splitlines()[0].startswith("crosscheck: 50%")
    assert lines.getvalue().splitlines()[-1].startswith("crosscheck: 100%")


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["crosscheck", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--tier",
        "--configs",
        "--op",
        "--dtype",
        "--format",
        "--device",
        "--json",
        "--quick",
        "--only",
        "--mode",
        "--no-tf",
        "--repeats",
        "--list",
        "--progress",
    ):
        assert option in out, option  # fmt: skip


def test_gpu_requested_without_gpu(capsys):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present")
    code, _, err = _run(capsys, "--device", "gpu", "--quick")
    assert code == 2 and "no GPU" in err


# --------------------------------------------------------------------------------------------
# With TF's workers


def test_reports_tf_kernels_dilation_and_determinism(capsys):
    code, out, err = _run(capsys, "--quick", "--op", "DBF", "--dtype", "f32", "--device", "cpu",
                          "--only", "d2x2 SAME NHWC", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["devices"] == ["cpu"]
    [row] = report["results"]
    native, onednn = row["tf_native"], row["tf_onednn"]
    # TF silently ignores depthwise dilations on both paths (docs/SEMANTICS.md G8).
    assert native["status"] == onednn["status"] == "ignores dilation"
    assert native["kernel"] == "DepthwiseConv2dNativeBackpropFilter (native)"
    assert onednn["kernel"] == "_MklNativeDepthwiseConv2dNativeBackpropFilter"
    assert native["kernel_source"] == onednn["kernel_source"] == "observed"
    assert native["deterministic"] is True and onednn["deterministic"] is True
    assert native["ulp"] > 1000 and native["ours_diff"] > 0.1
    assert row["ours"]["status"] == "ok"
    kernels = report["summary"]["implementations"]["tf_onednn"]["kernels"]
    assert kernels == {"_MklNativeDepthwiseConv2dNativeBackpropFilter": 1}


def test_dtype_spellings_agree_across_tools():
    """crosscheck and bench take the same dtype spellings (f32 and float32 alike)."""
    import argparse

    from tf_convgrad import _cli
    from tf_convgrad.tools import bench, crosscheck

    for add in (crosscheck.add_arguments, bench.add_arguments):
        parser = argparse.ArgumentParser()
        add(parser)
        args = parser.parse_args(["--dtype", "f32", "--dtype", "bfloat16", "--dtype", "HALF"])
        assert args.dtype == ["float32", "bfloat16", "float16"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown dtype 'int8'"):
        _cli.dtype("int8")
