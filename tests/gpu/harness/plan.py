"""The hardware check's plan and time budget: what it runs and what that should cost on a GPU.

The check must fit a 15-minute device lease that includes the machine's start-up, so it gets
:data:`BUDGET_S` seconds from its own start. The plan lists its phases (build, quick grid,
large cases, benchmark) with their item counts and a cost model in seconds per item; the cost
model's constants are estimates for an H100, not yet measured (the check's report records the
measured seconds of each phase next to them). ``tests/gpu/test_gpu_harness_plan.py`` asserts that
the planned total stays within the budget, and the check's run on the emulation asserts that it ran
as many problems and launches as planned. At run time a :class:`Deadline` stops each phase
before an item that would no longer fit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from . import bench, grid, large
from .layers import bench_problems
from .package import GEOMETRY

#: Seconds of run the check may use, from its start (the device lease is 15 minutes in all).
BUDGET_S = 480.0
#: Python, PyTorch and CUDA start-up, in seconds.
STARTUP_S = 20.0
#: A cold nvcc build for one architecture with all CPUs, in seconds.
BUILD_S = 60.0
#: Measuring the copy bandwidth and the matmul rates, in seconds.
CEILINGS_S = 15.0
#: The benchmark's dtypes and formats in the check.
BENCH_DTYPES = ("float16", "bfloat16", "float32")
BENCH_FORMATS = GEOMETRY.FORMATS


@dataclass(frozen=True)
class Phase:
    """One part of the check: ``items`` of ``seconds_per_item`` each plus ``fixed_s``."""

    name: str
    items: int
    seconds_per_item: float
    fixed_s: float = 0.0
    launches: int = 0  # our kernel launches the phase makes (0 where timing decides)

    @property
    def seconds(self) -> float:
        return self.fixed_s + self.items * self.seconds_per_item


@dataclass(frozen=True)
class Plan:
    """The phases of the hardware check, in order, and the budget they must fit."""

    phases: tuple[Phase, ...]
    budget_s: float = BUDGET_S

    @property
    def seconds(self) -> float:
        """The estimated total, start-up included."""
        return STARTUP_S + sum(p.seconds for p in self.phases)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def table(self) -> str:
        """Markdown: each phase's items, launches and estimated seconds."""
        lines = [
            "| phase | items | our launches | estimated s |",
            "|---|---|---|---|",
            f"| start-up | - | - | {STARTUP_S:.0f} |",
        ]
        for p in self.phases:
            launches = p.launches or "-"
            lines.append(f"| {p.name} | {p.items} | {launches} | {p.seconds:.0f} |")
        lines.append(f"| total (budget {self.budget_s:.0f}) | | | {self.seconds:.0f} |")
        return "\n".join(lines)


def hardware_plan(grid_problems, bench_items, budget_s: float = BUDGET_S) -> Plan:
    """The plan for the given grid problems and (suite, problem) benchmark items."""
    return Plan(
        (
            Phase("build", 1, BUILD_S),
            Phase(
                "grid",
                len(grid_problems),
                grid.SECONDS_PER_PROBLEM,
                launches=len(grid_problems) * grid.REPEATS,
            ),
            Phase("large", len(large.LARGE), large.SECONDS_PER_CASE, launches=len(large.LARGE)),
            Phase("bench", len(bench_items), bench.SECONDS_PER_ROW, fixed_s=CEILINGS_S),
        ),
        budget_s,
    )


def check_items(pattern: str | None = None) -> tuple[list, list]:
    """What the check runs: the quick grid's problems and the (suite, problem) benchmark items in
    :data:`BENCH_DTYPES` x :data:`BENCH_FORMATS`, those whose id matches ``pattern`` (a regex)."""
    problems = grid.grid(quick=True)
    items = bench_problems(BENCH_DTYPES, BENCH_FORMATS)
    if pattern:
        problems = [p for p in problems if re.search(pattern, p.id)]
        items = [(suite, p) for suite, p in items if re.search(pattern, p.id)]
    return problems, items


class Deadline:
    """The end of the budget, on the monotonic clock (``seconds`` may be ``math.inf``)."""

    def __init__(self, seconds: float, start: float | None = None):
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.end = self.start + seconds

    def allows(self, seconds: float) -> bool:
        """Whether something that takes ``seconds`` still ends within the budget."""
        return time.monotonic() + seconds <= self.end

    def elapsed(self) -> float:
        return time.monotonic() - self.start
