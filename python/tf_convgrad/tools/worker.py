"""Crash-isolated worker processes: run tasks in child Pythons that are allowed to die.

Some inputs kill the process that runs them (a CHECK-abort in TF's oneDNN kernels, a SIGFPE in
Grappler), and some settings are fixed once per process before TensorFlow loads
(``TF_ENABLE_ONEDNN_OPTS``, thread counts). Every tool and test that runs such calls does it
through this module::

    from tf_convgrad.tools import worker

    results = worker.run(
        "tests/my_tasks.py:prepare",  # or "package.module:prepare"
        tasks,  # plain data: dicts, lists, NumPy arrays (they travel as pickles)
        env={"TF_ENABLE_ONEDNN_OPTS": "1"},
        workers=2,
        task_timeout=120,
        timeout=1800,
    )

How it works. The tasks are split round-robin into ``workers`` chains; each chain is a child
process, supervised by a thread of the caller, that runs its tasks one after another. The child
appends one flushed line per finished task to a result file, so when it dies the first task
without a result is the one that killed it: that task gets a ``crashed`` result with the signal,
and a fresh child carries on with the task after it. A child that makes no progress for
``task_timeout`` seconds (``start_timeout`` to start), or is still running at the overall
``timeout``, is killed the same way (the task gets a ``timed_out`` result; at the overall limit
the tasks after it are not run). The results, and what the children print (TF's start-up noise
dropped), can be followed as they come (``progress``, ``output``).

The child. It is ``python -P -c <bootstrap> <this file> ...``: the bootstrap loads this file by
path, so that nothing of the ``tf_convgrad`` package (whose ``__init__`` loads our op library)
is imported unless the task module imports it. The child then puts ``sys_path`` in front of its
module path (``-P`` leaves the working directory off it), imports the target's module (by path
when it ends in ``.py``, by import name otherwise) and calls the target once with the chain's
tasks: ``prepare(tasks) -> run_one``. ``prepare`` imports what the tasks need (TensorFlow, read
after the environment was set) and returns the function that runs one task and returns its
result (picklable; by convention a dict with an ``"ok"`` key). A dict result gets the keys
``"worker"`` (``"<chain>.<attempt>"``, the process that ran it) and ``"pid"``, so that every
result can be traced to its process. An exception in ``prepare``, or a child that dies before
``prepare`` returned, is a :class:`WorkerStartError` in the caller; an exception in ``run_one``
ends the child like a crash (the task's result is ``crashed`` with exit code 1 and the
traceback as its message).

The environment. A child gets this process's environment, then :data:`BASE_ENV` (oneDNN off,
TF's info logs off), then ``env``: the caller decides, never the child.

Results, one per task, in task order: what ``run_one`` returned, or one of

* ``{"ok": False, "crashed": True, "returncode": int, "signal": str, "worker": str, "pid": int,
  "message": <log tail>}``: the task killed its process (``returncode < 0`` is the signal);
* ``{"ok": False, "timed_out": True, "returncode": int, "signal": str, "worker": str, "pid":
  int, "message": str}``: killed at a time limit while it ran (or before its child was ready);
* ``{"ok": False, "timed_out": True, "not_run": True, "returncode": None, "message": str}``:
  never started: the overall time limit ran out (or another chain failed to start).

Nothing here imports TensorFlow or NumPy.
"""

from __future__ import annotations

import base64
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["BASE_ENV", "WorkerStartError", "log_tail", "run", "run_jobs", "signal_name"]

#: Set in every child's environment before the caller's ``env``: oneDNN off unless asked for,
#: TF's info and warning logs off.
BASE_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}

#: How often the supervising threads look at their child, in seconds.
POLL_SECONDS = 0.25

# Loads this file as a module without importing the tf_convgrad package, then runs the child.
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_tf_convgrad_worker', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "sys.exit(module._child_main(sys.argv[2:]))\n"
)

# A CHECK failure, a fatal log line, or a sanitizer report (scripts/sanitize.sh looks for these).
_FATAL = re.compile(r"Check failed|^F\d{4} |Fatal|runtime error:|ERROR: AddressSanitizer|SUMMARY: ")
# TF's start-up chatter: info and warning lines, the CUDA probe, the oneDNN banner.
_STARTUP_NOISE = re.compile(
    r"^(I\d{4} |W\d{4} |WARNING)|cuInit|cuda|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|"
    r"rebuild TensorFlow|To enable the following"
)


class WorkerStartError(RuntimeError):
    """A child failed before it could run any task (its ``prepare`` raised, or it died)."""


def signal_name(returncode: int | None) -> str:
    """``"SIGABRT"`` for -6 and so on; ``"exit code <n>"`` otherwise."""
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            pass
    return f"exit code {returncode}"


def log_tail(text: str, limit: int = 2000) -> str:
    """The interesting end of a child's output: its fatal lines, else its last lines.

    TF's start-up chatter is dropped, so a child killed by a signal without printing anything
    (SIGFPE) leaves an empty tail.

    Args:
        text: Everything the child wrote to stdout and stderr.
        limit: At most this many characters, from the end.
    """
    lines = text.splitlines()
    fatal = [line for line in lines if _FATAL.search(line)]
    kept = fatal or [line for line in lines if line.strip() and not _STARTUP_NOISE.search(line)]
    return "\n".join(kept)[-limit:]


def run(
    target: str,
    tasks: Sequence[Any],
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    task_timeout: float | None = None,
    start_timeout: float = 300,
    timeout: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    output: Callable[[str], None] | None = None,
    sys_path: Sequence[str | os.PathLike] = (),
) -> list[Any]:
    """Runs ``tasks`` in ``workers`` crash-isolated child processes; one result per task.

    Args:
        target: ``"<module>:<function>"``: the ``prepare`` function, in a file given by path
            (ending in ``.py``) or a module given by import name.
        tasks: Picklable task descriptions, handed to ``prepare`` and then one at a time to the
            function it returns.
        env: Environment overrides for the children, over this process's environment and
            :data:`BASE_ENV`.
        workers: Children running at the same time; tasks are dealt to them round-robin.
        task_timeout: Seconds a child may go without finishing a task before it is killed and
            the task marked timed out; None for no limit.
        start_timeout: Seconds a child may take to start and run ``prepare``.
        timeout: Seconds for everything, restarts included; None for no limit.
        progress: Called as ``progress(done, total)`` (in tasks, failures included) while the
            children run, from the supervising threads.
        output: Called with each line the children print (TF's start-up noise dropped), from
            the supervising threads; None: the output is kept only for crash messages.
        sys_path: Put in front of the children's ``sys.path``.

    Returns:
        The results in task order (see the module docstring).

    Raises:
        WorkerStartError: If a child fails before running any task.
    """
    workers = max(1, min(workers, len(tasks)))
    indexed = list(enumerate(tasks))
    jobs = [(indexed[k::workers], env or {}) for k in range(workers)]
    by_index: dict[int, Any] = {}
    for chain in _run_chains(
        target, jobs, task_timeout, start_timeout, timeout, progress, output, sys_path
    ):
        by_index.update(chain)
    return [by_index[k] for k in range(len(tasks))]


def run_jobs(
    target: str,
    jobs: Sequence[tuple[Sequence[Any], Mapping[str, str]]],
    *,
    task_timeout: float | None = None,
    start_timeout: float = 300,
    timeout: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    output: Callable[[str], None] | None = None,
    sys_path: Sequence[str | os.PathLike] = (),
) -> list[list[Any]]:
    """Runs each job ``(tasks, env)`` in its own chain of child processes, all at the same time.

    For the same tasks under several settings (thread counts, oneDNN on and off) side by side.
    The arguments are those of :func:`run`, with ``env`` per job.

    Returns:
        One list of results per job, in task order.
    """
    indexed = [(list(enumerate(tasks)), env) for tasks, env in jobs]
    chains = _run_chains(
        target, indexed, task_timeout, start_timeout, timeout, progress, output, sys_path
    )
    pairs = zip(chains, jobs, strict=True)
    return [[chain[k] for k in range(len(tasks))] for chain, (tasks, _) in pairs]


# --------------------------------------------------------------------------------------------
# Parent side


class _Limits:
    """The time limits of one run, shared by its chains, which can also be cancelled."""

    def __init__(self, task_timeout, start_timeout, timeout):
        self.task_timeout = task_timeout
        self.start_timeout = start_timeout
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.cancelled = False

    def cancel(self) -> None:
        """Makes every chain stop: its child is killed, its remaining tasks are not run."""
        self.cancelled = True

    def expired(self) -> bool:
        if self.cancelled:
            return True
        return self.deadline is not None and time.monotonic() > self.deadline

    def why(self) -> str:
        """Why the run stopped early, once :meth:`expired`."""
        if self.cancelled:
            return "the run was cancelled"
        return f"the overall time limit ({self.timeout:g} s) ran out"


class _Counter:
    """Finished tasks over all chains, reported to ``progress`` under a lock."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None):
        self.total = total
        self.done = 0
        self._progress = progress
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            if self._progress is not None:
                self._progress(self.done, self.total)


class _Tail:
    """Reads what a child appends to a file, whole lines at a time."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._partial = b""

    def lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return lines


def _run_chains(target, jobs, task_timeout, start_timeout, timeout, progress, output, sys_path):
    """Runs one supervised chain per ``(indexed tasks, env)``; returns ``{index: result}`` each."""
    limits = _Limits(task_timeout, start_timeout, timeout)
    counter = _Counter(sum(len(tasks) for tasks, _ in jobs), progress)
    outputs: list[dict[int, Any]] = [{} for _ in jobs]
    errors: list[BaseException] = []
    paths = [str(Path(p).resolve()) for p in sys_path]
    with tempfile.TemporaryDirectory(prefix="tf_convgrad_worker_") as tmp:

        def supervise(k: int) -> None:
            tasks, env = jobs[k]
            child_env = {**os.environ, **BASE_ENV, **env}
            try:
                outputs[k] = _run_chain(
                    target, tasks, child_env, Path(tmp), k, limits, counter, output, paths
                )
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                errors.append(error)
                limits.cancel()  # the other chains stop too

        threads = [threading.Thread(target=supervise, args=(k,)) for k in range(len(jobs))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:  # KeyboardInterrupt: stop the children before their files go
            limits.cancel()
            for thread in threads:
                thread.join()
            raise
    if errors:
        raise errors[0]
    return outputs


def _run_chain(target, tasks, env, workdir, chain, limits, counter, output, sys_path):
    """Runs ``[(index, task)]`` in one child after another until every task has a result."""
    results: dict[int, Any] = {}
    remaining = list(tasks)
    attempt = 0
    while remaining:
        if limits.expired():
            for index, _ in remaining:
                results[index] = {
                    "ok": False,
                    "timed_out": True,
                    "not_run": True,
                    "returncode": None,
                    "message": f"not run: {limits.why()}",
                }
            counter.add(len(remaining))
            break
        attempt += 1
        tag = f"{chain}.{attempt}"
        job, out, log, ready = (
            workdir / f"{tag}.{name}" for name in ("job", "out", "log", "ready")
        )
        with open(job, "wb") as f:
            pickle.dump({"target": target, "sys_path": sys_path, "tag": tag, "tasks": remaining}, f)
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOTSTRAP, __file__, str(job), str(out), str(ready)],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            returncode, killed = _supervise(proc, _Tail(out), _Tail(log), ready, limits,
                                            results, counter, output)  # fmt: skip
        missing = [(index, task) for index, task in remaining if index not in results]
        if not missing:
            break
        tail = log_tail(log.read_text(errors="replace"))
        if not ready.exists() and killed is None:
            raise WorkerStartError(
                f"worker for {target} ({signal_name(returncode)}) failed before running any "
                f"task:\n{tail}"
            )
        culprit = missing[0][0]
        if killed is None:
            message = tail or f"no output: killed by {signal_name(returncode)}"
        else:
            message = f"{killed}\n{tail}".rstrip()
        results[culprit] = {
            "ok": False,
            "crashed" if killed is None else "timed_out": True,
            "returncode": returncode,
            "signal": signal_name(returncode),
            "worker": tag,
            "pid": proc.pid,
            "message": message,
        }
        counter.add(1)
        remaining = missing[1:]
    return results


def _supervise(proc, out, log, ready, limits, results, counter, output):
    """Collects a child's results as they come; kills it at a time limit.

    Returns:
        ``(returncode, why it was killed or None)``.
    """
    started = last = time.monotonic()
    was_ready = False
    while True:
        try:
            returncode = proc.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            returncode = None
        if output is not None:  # before the results: a task's lines come before its result
            for line in log.lines():
                text = line.decode(errors="replace")
                if text.strip() and not _STARTUP_NOISE.search(text):
                    output(text)
        got = [pickle.loads(base64.b64decode(line)) for line in out.lines()]
        results.update(got)
        counter.add(len(got))  # also when 0: progress callbacks see time pass
        if got:
            last = time.monotonic()
        if returncode is not None:
            return returncode, None
        now = time.monotonic()
        if not was_ready and ready.exists():
            was_ready, last = True, now
        killed = None
        if limits.expired():
            killed = f"killed: {limits.why()}"
        elif not was_ready and now - started > limits.start_timeout:
            killed = f"killed: not ready within {limits.start_timeout:g} s"
        elif was_ready and limits.task_timeout is not None and now - last > limits.task_timeout:
            killed = f"killed: no result for {limits.task_timeout:g} s (the per-task limit)"
        if killed is not None:
            proc.kill()
            returncode = proc.wait()
            got = [pickle.loads(base64.b64decode(line)) for line in out.lines()]
            results.update(got)
            counter.add(len(got))
            return returncode, killed


# --------------------------------------------------------------------------------------------
# Child side: everything below runs in the child process.


def _load_target(target: str) -> Callable[[list[Any]], Callable[[Any], Any]]:
    """The ``prepare`` function named by ``"<module or path.py>:<function>"``."""
    import importlib
    import importlib.util

    module_name, _, function = target.rpartition(":")
    if module_name.endswith(".py"):
        name = "_tf_convgrad_task_" + Path(module_name).stem
        spec = importlib.util.spec_from_file_location(name, module_name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickle look modules up by name
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, function)


def _child_main(argv: Sequence[str]) -> int:
    job_path, out_path, ready_path = argv
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    sys.path[:0] = job["sys_path"]
    run_one = _load_target(job["target"])([task for _, task in job["tasks"]])
    Path(ready_path).touch()
    tag, pid = job["tag"], os.getpid()
    with open(out_path, "ab") as out:
        for index, task in job["tasks"]:
            result = run_one(task)
            if isinstance(result, dict):
                result = {**result, "worker": tag, "pid": pid}
            line = base64.b64encode(pickle.dumps((index, result), pickle.HIGHEST_PROTOCOL))
            out.write(line + b"\n")
            out.flush()
    return 0
