"""The GPU hardware check's plan and budget, checked without a GPU and without building anything.

``scripts/gpu_check.sh`` must fit a 15-minute device lease that includes the machine's start-up:
the plan's estimated seconds must fit the harness's budget, the budget must leave room under the
script's hard limit, and a run stopped by its deadline must still write what it has. A fake runner
(the reference's own result, rounded to the dtype) stands in for the kernels.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# The real package first: the harness then uses it rather than registering its TF-free stub.
import tf_convgrad  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "tests" / "gpu"))

from harness import grid, large, plan  # noqa: E402
from harness.capi import to_float64, to_storage  # noqa: E402
from harness.hardware_check import HardwareCheck  # noqa: E402
from harness.layers import bench_layers  # noqa: E402

#: The device tool's limit for one command, in seconds.
COMMAND_LIMIT_S = 600


class _FakeBackend:
    name = "fake"


class _FakeRunner:
    """Returns the float64 reference rounded to the dtype; counts launches (``per_run`` each)."""

    def __init__(self, per_run: int = 1):
        self.backend = _FakeBackend()
        self.launches = 0
        self.per_run = per_run

    def describe(self, p) -> str:
        return "fake"

    def run(self, p, first, dy, repeats, schedules):
        self.launches += repeats * self.per_run
        ref = p.reference(to_float64(first, p.dtype), to_float64(dy, p.dtype))
        return [to_storage(ref, p.dtype)] * repeats


class _Deadline:
    """Allows ``items`` checks, then none."""

    def __init__(self, items: int):
        self.left = items

    def allows(self, seconds: float) -> bool:
        self.left -= 1
        return self.left >= 0

    seconds = 1.0

    def elapsed(self) -> float:
        return 0.0


def _hard_limit_s() -> int:
    script = (ROOT / "scripts" / "gpu_check.sh").read_text()
    return int(re.search(r"^HARD_LIMIT_S=(\d+)$", script, re.M).group(1))


def test_plan_fits_the_budget():
    p = plan.hardware_plan(*plan.check_items())
    assert p.seconds <= p.budget_s == plan.BUDGET_S
    assert p.phase("grid").items == len(grid.grid(quick=True))
    assert p.phase("grid").launches == p.phase("grid").items * grid.REPEATS
    assert p.phase("large").items == 3
    layers = len(bench_layers())
    assert p.phase("bench").items == layers * len(plan.BENCH_DTYPES) * len(plan.BENCH_FORMATS)


def test_budget_leaves_room_under_the_hard_limit():
    # The deadline lets one item overrun; the largest (a >2^31 case) must still end in time.
    hard = _hard_limit_s()
    assert plan.BUDGET_S + large.SECONDS_PER_CASE <= hard <= COMMAND_LIMIT_S - 30


def test_deadline_stops_the_grid_and_the_report_says_so(tmp_path):
    problems = grid.grid(quick=True)[:12]
    the_plan = plan.hardware_plan(problems, [])
    check = HardwareCheck(_FakeRunner(), None, the_plan, _Deadline(5), tmp_path, "test")
    assert check.run(problems, [], build_s=0.0) == 0
    assert len(check.rows["grid"]) == 5 and all(r["ok"] for r in check.rows["grid"])
    text = check.path.read_text()
    assert "stopped by the time budget after 5 of 12" in text
    assert "| large | 3 | 0 |" in text and "needs a GPU" in text
    assert "## Correctness grid" in text and check.path.with_suffix(".json").is_file()


def test_complete_grid_must_match_the_planned_launches(tmp_path):
    problems = grid.grid(quick=True)[:4]
    the_plan = plan.hardware_plan(problems, [])
    check = HardwareCheck(_FakeRunner(per_run=2), None, the_plan, _Deadline(99), tmp_path, "t")
    assert check.run(problems, [], build_s=0.0) == 1
    assert "PLAN MISMATCH: planned 12 launches, ran 24" in check.path.read_text()


def test_dry_run_prints_the_plan():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gpu" / "run_harness.py"), "--hardware-check",
         "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| bench |" in done.stdout and done.stdout.rstrip().endswith("dry-run: ok")


class _BrokenRunner(_FakeRunner):
    def run(self, p, first, dy, repeats, schedules):
        raise ValueError("broken")


def test_a_phase_that_raises_is_a_failure_and_is_reported(tmp_path):
    problems = grid.grid(quick=True)[:2]
    the_plan = plan.hardware_plan(problems, [])
    check = HardwareCheck(_BrokenRunner(), None, the_plan, _Deadline(99), tmp_path, "t")
    assert check.run(problems, [], build_s=0.0) == 1
    assert "FAILED: ValueError: broken" in check.path.read_text()
