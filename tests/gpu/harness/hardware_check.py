"""``--hardware-check``: the quick grid, the >2^31 cases and the benchmark within a time budget.

One command for a device lease (``scripts/gpu_check.sh``). The phases run in the order of the
plan (:mod:`.plan`); a :class:`~.plan.Deadline` stops each one before an item that would no
longer fit, and the later phases then run only what still fits. The report
``gpu_check_<date>_<device>.md`` (and its ``.json``) is rewritten after every phase and every
benchmark row, so a run cut short still leaves everything it measured.

On the emulation (no PyTorch) the grid runs on the CPU, with no deadline unless one is given
(the budget is GPU time), the large cases and the benchmark are reported as needing a GPU, and
the run checks the plan: a complete grid must have made exactly the planned number of launches.
"""

from __future__ import annotations

import datetime
import math
import time

from . import bench, grid, large, plan, report


class HardwareCheck:
    """One run of the check: its phases' results and the report they are saved to."""

    def __init__(self, runner, torch, the_plan: plan.Plan, deadline, out_dir, command: str):
        self.runner, self.torch, self.plan, self.deadline = runner, torch, the_plan, deadline
        self.command, self.revision = command, report.revision()
        self.device = torch.cuda.get_device_name(0) if torch is not None else "CPU emulation"
        label = report.gpu_name(torch) if torch is not None else "emulation"
        self.path = report.output_path(out_dir, "check", label)
        self.status: dict[str, dict] = {}  # phase name -> done, seconds, launches, note
        self.rows: dict[str, list[dict]] = {"grid": [], "large": [], "bench": []}
        self.ceilings: dict | None = None
        self.errors = 0  # phases that raised

    def run(self, problems, bench_items, build_s: float) -> int:
        """Runs the phases; returns the number of failures (wrong results, phases that raised,
        plan mismatches)."""
        self.status["build"] = {"done": 1, "seconds": build_s}
        self._phase(
            "grid", grid.check_grid, self.runner, problems, self.torch, deadline=self.deadline
        )
        passed = sum(r["ok"] for r in self.rows["grid"])
        print(f"grid: {passed}/{len(self.rows['grid'])} passed")
        if self.torch is None:
            for name in ("large", "bench"):
                self.status[name] = {"done": 0, "note": "needs a GPU"}
        else:
            self._phase("large", large.check_large, self.runner, self.torch, deadline=self.deadline)
            self._phase("bench", self._bench, bench_items)
        failures = self.errors + self._plan_mismatches()
        failures += sum(not r["ok"] for r in self.rows["grid"])
        failures += sum(not r.get("ok") for r in self.rows["large"])
        failures += sum(r.get("deterministic") is False for r in self.rows["bench"])
        self.save()
        print(f"hardware check: {self.deadline.elapsed():.0f} s; report written to {self.path}")
        return failures

    def _phase(self, name: str, body, *args, **kwargs) -> None:
        """Runs ``body(*args, **kwargs)``, which returns the rows of phase ``name``; records
        them (a body that raises keeps the rows it passed to :meth:`_saving`) and saves."""
        planned = self.plan.phase(name).items
        start, launches = time.monotonic(), self.runner.launches
        note = ""
        try:
            self.rows[name] = body(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - recorded as a failure; the next phases run
            note = f"FAILED: {type(e).__name__}: {e}"
            self.errors += 1
        rows = self.rows[name]
        if not note and len(rows) < planned:
            note = f"stopped by the time budget after {len(rows)} of {planned}"
        status = {"done": len(rows), "seconds": time.monotonic() - start}
        status["launches"] = self.runner.launches - launches
        if note:
            status["note"] = note
            print(f"{name}: {note}", flush=True)
        self.status[name] = status
        self.save()

    def _bench(self, bench_items) -> list[dict]:
        if not self.deadline.allows(plan.CEILINGS_S + bench.SECONDS_PER_ROW):
            return []
        self.ceilings, l2 = bench.ceilings_and_l2(self.torch)
        print(report.BENCH_HEADER, flush=True)
        return bench.run_benchmarks(
            self.runner, self.torch, bench_items, self.ceilings, l2, self.deadline, self._saving
        )

    def _saving(self, rows: list[dict]) -> None:
        """Keeps and saves the benchmark's rows so far."""
        self.rows["bench"] = rows
        self.save()

    def _plan_mismatches(self) -> int:
        """A complete grid must have launched exactly as often as planned."""
        planned, ran = self.plan.phase("grid"), self.status["grid"]
        if ran["done"] < planned.items or ran["launches"] == planned.launches:
            return 0
        ran["note"] = f"PLAN MISMATCH: planned {planned.launches} launches, ran {ran['launches']}"
        print(f"grid: {ran['note']}", flush=True)
        return 1

    def save(self) -> None:
        """Writes the report and its raw numbers as they stand."""
        date = datetime.date.today().isoformat()
        enforced = "not enforced" if math.isinf(self.deadline.seconds) else "enforced"
        lines = [
            f"# GPU hardware check: {self.device}, {date}",
            "",
            f"`{self.command}` at commit {self.revision}. Budget {self.plan.budget_s:.0f} s of run "
            f"from the start ({enforced}); {self.deadline.elapsed():.0f} s used so far.",
            "",
            "## Plan and budget",
            "",
            "| phase | planned | run | our launches (planned / run) | estimated s | measured s "
            "| note |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in self.plan.phases:
            s = self.status.get(p.name, {"done": 0, "note": "not reached"})
            launches = f"{p.launches or '-'} / {s.get('launches', '-')}"
            measured = f"{s['seconds']:.0f}" if "seconds" in s else "-"
            lines.append(
                f"| {p.name} | {p.items} | {s['done']} | {launches} | {p.seconds:.0f} | "
                f"{measured} | {s.get('note', '')} |"
            )
        lines.append("")
        if self.rows["grid"]:
            lines += report.grid_section(self.rows["grid"])
        if self.rows["large"]:
            lines += report.large_section(self.rows["large"])
        if self.rows["bench"]:
            lines += report.benchmark_preamble(self.torch, self.ceilings)
            lines += report.benchmark_sections(self.rows["bench"])
        self.path.write_text("\n".join(lines) + "\n")
        raw = {
            "device": self.device,
            "status": self.status,
            "ceilings": self.ceilings,
            **self.rows,
        }
        report.write_json(self.path.with_suffix(".json"), raw)
