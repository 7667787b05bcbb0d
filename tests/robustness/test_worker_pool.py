"""The crash-isolated worker pool (``tf_convgrad.tools.worker``) on tasks that misbehave.

The tasks (``worker_pool_tasks.py``) import nothing but the standard library, so these tests
take seconds: a task that kills its process mid-batch is reported with its signal and the tasks
after it still run, in a fresh process; a hanging task is timed out; the environment the parent
chooses reaches the child.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tf_convgrad.tools import worker

HERE = Path(__file__).resolve().parents[1] / "support"  # worker_pool_tasks.py
BY_NAME = "worker_pool_tasks:prepare"  # imported by name from sys_path
BY_PATH = f"{HERE / 'worker_pool_tasks.py'}:prepare"  # loaded by path


def echo(value, **extra) -> dict:
    return {"kind": "echo", "value": value, **extra}


def run(tasks, **kwargs) -> list:
    kwargs.setdefault("timeout", 120)
    return worker.run(BY_NAME, tasks, sys_path=[HERE], **kwargs)


def test_crashes_mid_batch_are_attributed_and_the_rest_still_run():
    tasks = [
        echo(0),
        {"kind": "signal", "signal": "SIGABRT"},
        echo(2),
        {"kind": "signal", "signal": "SIGSEGV"},
        echo(4),
    ]
    results = run(tasks)
    assert [r.get("value") for r in results] == [0, None, 2, None, 4]
    abort, segv = results[1], results[3]
    assert abort["crashed"] and not abort["ok"] and abort["signal"] == "SIGABRT"
    assert abort["returncode"] == -6 and worker.signal_name(abort["returncode"]) == "SIGABRT"
    assert segv["crashed"] and segv["signal"] == "SIGSEGV"
    # Every result names its process; a crash ends the process, the next task gets a new one.
    assert [r["worker"] for r in results] == ["0.1", "0.1", "0.2", "0.2", "0.3"]
    assert results[0]["pid"] == abort["pid"] != results[2]["pid"] == segv["pid"]
    assert results[4]["pid"] not in (results[0]["pid"], results[2]["pid"])


def test_several_workers_keep_task_order():
    tasks = [echo(k) if k % 3 else {"kind": "signal", "signal": "SIGFPE"} for k in range(9)]
    done = []
    results = run(tasks, workers=2, progress=lambda n, total: done.append((n, total)))
    for k, result in enumerate(results):
        if k % 3:
            assert result["ok"] and result["value"] == k
        else:
            assert result["crashed"] and result["signal"] == "SIGFPE"
    assert {r["worker"].split(".")[0] for r in results} == {"0", "1"}
    assert done[-1] == (9, 9)


def test_a_python_exception_in_a_task_is_reported_as_a_crash():
    results = run([echo(0), {"kind": "raise"}, echo(2)])
    assert results[1]["crashed"] and results[1]["signal"] == "exit code 1"
    assert "ValueError: the task raised" in results[1]["message"]
    assert results[2]["ok"]


def test_a_hanging_task_is_timed_out_and_the_next_one_runs():
    results = run([echo(0), {"kind": "hang"}, echo(2)], task_timeout=2)
    hung = results[1]
    assert hung["timed_out"] and not hung["ok"] and not hung.get("crashed")
    assert "per-task limit" in hung["message"] and hung["worker"] == "0.1"
    assert results[0]["ok"] and results[2]["ok"] and results[2]["worker"] == "0.2"


def test_the_overall_limit_stops_the_run():
    results = run([{"kind": "hang"}, echo(1), echo(2)], timeout=3)
    assert results[0]["timed_out"] and "overall time limit" in results[0]["message"]
    for result in results[1:]:
        assert result["timed_out"] and result["not_run"] and result["returncode"] is None


def test_the_parents_environment_reaches_the_child():
    tasks = [echo(0, env="TF_CONVGRAD_POOL_TEST"), echo(1, env="TF_ENABLE_ONEDNN_OPTS")]
    plain = run(tasks)
    assert plain[0]["env"] is None
    assert plain[1]["env"] == worker.BASE_ENV["TF_ENABLE_ONEDNN_OPTS"] == "0"
    chosen = run(tasks, env={"TF_CONVGRAD_POOL_TEST": "x", "TF_ENABLE_ONEDNN_OPTS": "1"})
    assert [r["env"] for r in chosen] == ["x", "1"]


def test_jobs_run_side_by_side_with_their_own_environment():
    tasks = [echo(k, env="TF_CONVGRAD_POOL_TEST") for k in range(3)]
    jobs = [(tasks, {"TF_CONVGRAD_POOL_TEST": "a"}), (tasks[:2], {"TF_CONVGRAD_POOL_TEST": "b"})]
    first, second = worker.run_jobs(BY_NAME, jobs, sys_path=[HERE], timeout=120)
    assert [(r["value"], r["env"]) for r in first] == [(0, "a"), (1, "a"), (2, "a")]
    assert [(r["value"], r["env"]) for r in second] == [(0, "b"), (1, "b")]


def test_a_target_loaded_by_path_imports_nothing_of_the_package():
    (result,) = worker.run(BY_PATH, [echo(0)], timeout=120)
    assert result["ok"] and result["imported"] == []


def test_child_output_reaches_the_output_callback():
    lines = []
    run([{"kind": "print", "value": "hello from the child"}], output=lines.append)
    assert "hello from the child" in lines


def test_a_child_that_cannot_start_raises():
    with pytest.raises(worker.WorkerStartError, match="prepare refused the chain"):
        run([echo(0), {"kind": "fail_prepare"}])


def test_a_start_failure_stops_the_other_chains():
    jobs = [([{"kind": "hang"}], {}), ([{"kind": "fail_prepare"}], {})]
    start = time.monotonic()
    with pytest.raises(worker.WorkerStartError):
        worker.run_jobs(BY_NAME, jobs, sys_path=[HERE], timeout=120)
    assert time.monotonic() - start < 60, "the hanging chain was not stopped"


def test_log_tail_keeps_fatal_lines_and_drops_startup_noise():
    log = "\n".join(
        [
            "I0000 00:00:1.0 cpu_feature_guard.cc:210] This TensorFlow binary is optimized",
            "W0000 00:00:1.0 some warning",
            "oneDNN custom operations are on.",
            "something the task printed",
        ]
    )
    assert worker.log_tail(log) == "something the task printed"
    fatal = log + "\nF0000 00:00:1.0 conv_ops.cc:1] Check failed: x > 0\nmore"
    assert worker.log_tail(fatal) == "F0000 00:00:1.0 conv_ops.cc:1] Check failed: x > 0"
    assert worker.log_tail("I0000 only noise") == ""
    assert worker.signal_name(3) == "exit code 3" and worker.signal_name(-9) == "SIGKILL"
