"""Property-based fuzzer for the three ops (hypothesis), shared by tests/robustness/test_fuzz.py (a
short, derandomized run in the default suite) and scripts/fuzz_long.py (>= 100,000 cases).

One example is a whole call: op, dtype, data format, mode (eager, or a ``tf.function`` with every
input as an argument), shapes, the sizes vector and every attribute. Examples start from a
consistent problem and, about half of the time, get one or two corruptions: a stride or dilation
of 0, negative, ``2**31 - 1`` or ``2**31``, a list of the wrong length, a non-1 batch/depth
entry, EXPLICIT paddings of the wrong length, negative or on batch/depth, paddings with
SAME/VALID, a negative or missing size, an operand of the wrong rank, a batch, depth,
multiplier, group or spatial size off by one or more, an input depth of 0 or that does not fit.

The property: :func:`model` is an independent statement of which calls are valid (the checks of
``docs/SEMANTICS.md``, "TensorFlow's validation checks and messages we mirror" and "Output size
and padding", in plain Python integers, no overflow).

* valid -> our result equals the float64 reference (``tf_convgrad.tools.reference``) on the
  T-rounded operands within ``metrics.TOLERANCES[dtype]`` (exact zeros where nothing
  contributes);
* invalid -> ``tf.errors.InvalidArgumentError`` is raised, nothing else (``ValueError`` while
  tracing a ``tf.function`` whose sizes vector does not have 4 elements: the shape function
  sees its length);
* never a crash: chunks of examples run in crash-isolated worker processes
  (``tf_convgrad.tools.worker``); each example is written to a file before it runs, so a crash
  is reported with its signal and the example that caused it.

Sizes stay small (no allocation can fail), so ``ResourceExhaustedError`` is never expected here;
the hostile corpus (``hostile_cases.py``) covers absurd sizes.

Generation comes in two flavours with one distribution (:func:`generate`): :func:`examples`
draws every choice through hypothesis (failures shrink; the default suite's run), and
:func:`fast_examples` lets hypothesis seed one ``random.Random`` per example (~5x cheaper to
generate, no shrinking; the long run's default, since hypothesis' per-draw cost otherwise
dominates).

:func:`run_chunks` runs chunks of examples (a hypothesis seed and a count each) in worker
processes, for ``tests/robustness/test_fuzz.py`` and ``scripts/fuzz_long.py``. Run as a script,
this module replays one chunk in this process: ``python tests/support/fuzz_harness.py --seed S
--examples N [--fast] [--function-fraction F] [--current FILE] [--summary FILE]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # a replay: TF reads these when the imports below load it
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tf_convgrad import _optable  # noqa: E402
from tf_convgrad.tools import metrics, reference, worker  # noqa: E402

HERE = Path(__file__).resolve().parent
BIG = 2**31 - 1
CORRUPTIONS = (
    "stride_value",
    "stride_len",
    "stride_batch_depth",
    "dilation_value",
    "dilation_len",
    "dilation_batch_depth",
    "explicit_len",
    "explicit_negative",
    "explicit_batch_depth",
    "explicit_with_same_valid",
    "sizes_negative",
    "sizes_len",
    "rank",
    "batch",
    "depth",
    "input_depth",
    "spatial",
)


@dataclass
class Example:
    op: str
    dtype: str
    data_format: str
    mode: str  # "eager" | "function"
    first_shape: list  # input (cbf, dbf) or filter (dbi), as passed
    dy_shape: list  # as passed
    sizes: list  # as passed
    attrs: dict
    corruptions: tuple
    data_seed: int

    def describe(self) -> str:
        return json.dumps(self.__dict__, default=list)


# --------------------------------------------------------------------------------------------------
# The model: which calls are valid, and their geometry
# --------------------------------------------------------------------------------------------------


def _out_size(in_size, k, stride, dilation, padding, before, after):
    """(out, pad_before) or None when negative. A filter with 0 taps has effective size 0.

    The model's own statement of the rule, on purpose not ``tf_convgrad._geometry``'s
    ``windowed_output_size`` (which also differs for 0 taps: ``1 - dilation``, where the C++
    validation uses 0 as here).
    """
    eff = (k - 1) * dilation + 1 if k > 0 else 0
    if padding == "VALID":
        num, pad = in_size - eff + stride, 0
    elif padding == "SAME":
        out = -(-in_size // stride)  # ceil, in_size >= 0
        pad = max(0, (out - 1) * stride + eff - in_size) // 2
        return out, pad
    else:
        num, pad = in_size + before + after - eff + stride, before
    out = abs(num) // stride * (1 if num >= 0 else -1)  # C++ truncation
    return (out, pad) if out >= 0 else None


def model(ex: Example):
    """None if the call is invalid, else the NHWC geometry for the reference."""
    a = ex.attrs
    n, h, w, c = (0, 1, 2, 3) if ex.data_format == "NHWC" else (0, 2, 3, 1)
    int32 = range(-(2**31), 2**31)
    strides, dilations = a["strides"], a["dilations"]
    if len(strides) != 4 or any(s not in int32 for s in strides):
        return None
    if strides[n] != 1 or strides[c] != 1 or strides[h] <= 0 or strides[w] <= 0:
        return None
    pads = a["explicit_paddings"]
    if a["padding"] == "EXPLICIT":
        if len(pads) != 8 or any(p < 0 for p in pads):
            return None
        if pads[2 * n] or pads[2 * n + 1] or pads[2 * c] or pads[2 * c + 1]:
            return None
    elif pads:
        return None
    if len(dilations) != 4 or any(d not in int32 for d in dilations):
        return None
    if dilations[n] != 1 or dilations[c] != 1 or dilations[h] < 1 or dilations[w] < 1:
        return None
    if any(s < 0 for s in ex.sizes):
        return None
    if ex.op == "dbi":
        input_shape, filter_shape = ex.sizes, ex.first_shape
    else:
        input_shape, filter_shape = ex.first_shape, ex.sizes
    dy = ex.dy_shape
    if len(input_shape) != 4 or len(filter_shape) != 4 or len(dy) != 4:
        return None
    if input_shape[n] != dy[n]:
        return None
    in_c, out_c = input_shape[c], dy[c]
    if ex.op == "cbf":
        f_in = filter_shape[2]
        if f_in <= 0 or in_c % f_in or filter_shape[3] != out_c:
            return None
        groups = in_c // f_in
        if groups == 0 or out_c % groups:  # input depth 0: no groups at all
            return None
    elif in_c != filter_shape[2] or in_c * filter_shape[3] != out_c:
        return None
    outs, pads_before = [], []
    for s, dim in enumerate((h, w)):
        got = _out_size(
            input_shape[dim],
            filter_shape[s],
            strides[dim],
            dilations[dim],
            a["padding"],
            pads[2 * dim] if a["padding"] == "EXPLICIT" else 0,
            pads[2 * dim + 1] if a["padding"] == "EXPLICIT" else 0,
        )
        if got is None or got[0] != dy[dim]:
            return None
        outs.append(got[0])
        pads_before.append(got[1])
    return {
        "input_nhwc": [input_shape[i] for i in (n, h, w, c)],
        "filter": list(filter_shape),
        "strides": (strides[h], strides[w]),
        "dilations": (dilations[h], dilations[w]),
        "pads_before": tuple(pads_before),
    }


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------


def _small(src, lo: int, hi: int, zero_percent: int = 8) -> int:
    """An integer in [lo, hi], or now and then 0 (empty tensors)."""
    # Zero for the top draws: hypothesis favours small draws, which would make most tensors empty.
    return 0 if src.int(0, 99) >= 100 - zero_percent else src.int(lo, hi)


HOSTILE_INTS = (0, -1, -3, BIG, 2**31, -(2**31), 2**40)


class _Hypothesis:
    """Draws through hypothesis: every choice is recorded, so failures shrink."""

    def __init__(self, draw):
        self._draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi))

    def choice(self, values):
        return self._draw(st.sampled_from(values))

    def bool(self) -> bool:
        return self._draw(st.booleans())


class _Random:
    """Draws from a random.Random that hypothesis seeded: ~5x cheaper, no shrinking."""

    def __init__(self, rnd):
        self._rnd = rnd

    def int(self, lo: int, hi: int) -> int:
        return self._rnd.randint(lo, hi)

    def choice(self, values):
        return self._rnd.choice(tuple(values))

    def bool(self) -> bool:
        return self._rnd.random() < 0.5


@st.composite
def examples(draw, function_fraction: float = 0.05) -> Example:
    """The strategy: every choice a hypothesis draw."""
    return generate(_Hypothesis(draw), function_fraction)


def fast_examples(function_fraction: float = 0.05):
    """The same distribution driven by one hypothesis-seeded random.Random per example."""
    return st.randoms(use_true_random=True).map(lambda r: generate(_Random(r), function_fraction))


def generate(src, function_fraction: float) -> Example:
    op = src.choice(_optable.KEYS)
    dtype = src.choice(metrics.DTYPES)
    fmt = src.choice(("NHWC", "NCHW"))
    padding = src.choice(("SAME", "VALID", "EXPLICIT"))
    mode = "function" if src.int(0, 999) < function_fraction * 1000 else "eager"
    batch = _small(src, 1, 3)
    height, width = _small(src, 1, 9), _small(src, 1, 9)
    fh, fw = _small(src, 1, 4, 4), _small(src, 1, 4, 4)
    strides = [src.int(1, 4), src.int(1, 4)]
    dilations = [src.choice((1, 1, 1, 2, 3)), src.choice((1, 1, 1, 2, 3))]
    explicit = [src.int(0, 4) for _ in range(4)]
    if op == "cbf":
        groups = src.choice((1, 1, 1, 2, 3))
        f_in = _small(src, 1, 4, 3)
        channels = groups * f_in
        out_c = groups * _small(src, 1, 3, 5)
        filter_nhwc = [fh, fw, f_in, out_c]
    else:
        channels = _small(src, 1, 6, 5)
        mult = _small(src, 1, 3, 6)
        out_c = channels * mult
        filter_nhwc = [fh, fw, channels, mult]
    pads = ((explicit[0], explicit[1]), (explicit[2], explicit[3]))
    outs = []
    for s, size in enumerate((height, width)):
        got = _out_size(size, filter_nhwc[s], strides[s], dilations[s], padding, *pads[s])
        outs.append(got[0] if got is not None else src.int(0, 3))

    def to_fmt(shape):  # NHWC list -> data_format order
        return list(shape) if fmt == "NHWC" else [shape[0], shape[3], shape[1], shape[2]]

    def spatial4(hw):
        return [1, hw[0], hw[1], 1] if fmt == "NHWC" else [1, 1, hw[0], hw[1]]

    input_shape = to_fmt([batch, height, width, channels])
    dy_shape = to_fmt([batch, outs[0], outs[1], out_c])
    attrs = {
        "strides": spatial4(strides),
        "padding": padding,
        "explicit_paddings": (
            ([0, 0] + explicit + [0, 0]) if fmt == "NHWC" else ([0, 0, 0, 0] + explicit)
        )
        if padding == "EXPLICIT"
        else [],
        "data_format": fmt,
        "dilations": spatial4(dilations),
    }
    if op == "dbi":
        first, sizes = list(filter_nhwc), input_shape
    else:
        first, sizes = input_shape, list(filter_nhwc)
    n_idx, c_idx = 0, (3 if fmt == "NHWC" else 1)
    hw_idx = (1, 2) if fmt == "NHWC" else (2, 3)

    corruptions = []
    if src.bool():
        for kind in [src.choice(CORRUPTIONS) for _ in range(src.int(1, 2))]:
            corruptions.append(kind)
            # Each corruption applies to what an earlier one left (a list may be shorter now).
            if kind in ("stride_value", "dilation_value", "stride_batch_depth",
                        "dilation_batch_depth"):  # fmt: skip
                key = "strides" if kind.startswith("stride") else "dilations"
                if len(attrs[key]) != 4:
                    corruptions.pop()  # not applicable after an earlier corruption
                    continue
                if kind.endswith("_value"):
                    attrs[key][src.choice(hw_idx)] = src.choice(HOSTILE_INTS)
                else:
                    attrs[key][src.choice((n_idx, c_idx))] = src.choice((0, 2, -1, BIG))
            elif kind in ("stride_len", "dilation_len"):
                key = "strides" if kind == "stride_len" else "dilations"
                length = src.choice((0, 1, 3, 5))
                attrs[key] = (attrs[key] + [1, 1])[:length]
            elif kind == "explicit_len":
                attrs["explicit_paddings"] = [1] * src.choice((0, 2, 4, 6, 7, 9))
                attrs["padding"] = "EXPLICIT"
            elif kind in ("explicit_negative", "explicit_batch_depth"):
                attrs["padding"] = "EXPLICIT"
                base = list(attrs["explicit_paddings"]) or [0] * 8
                if len(base) != 8:
                    corruptions.pop()  # not applicable after an earlier corruption
                    continue
                if kind == "explicit_negative":
                    base[src.choice([2 * i for i in hw_idx])] = src.choice((-1, -(2**31), -(2**62)))
                else:
                    base[src.choice((2 * n_idx, 2 * n_idx + 1, 2 * c_idx, 2 * c_idx + 1))] = 1
                attrs["explicit_paddings"] = base
            elif kind == "explicit_with_same_valid":
                attrs["padding"] = src.choice(("SAME", "VALID"))
                attrs["explicit_paddings"] = [0, 0, 1, 1, 1, 1, 0, 0]
            elif kind == "sizes_negative" and sizes:
                sizes = list(sizes)
                sizes[src.int(0, len(sizes) - 1)] = src.choice((-1, -2, -(2**31)))
            elif kind == "sizes_len":
                sizes = (list(sizes) + [1, 1])[: src.choice((0, 1, 3, 5))]
            elif kind == "rank":
                which = src.choice(("first", "dy"))
                length = src.choice((0, 1, 3, 5))
                if which == "first":
                    first = (list(first) + [1])[:length]
                else:
                    dy_shape = (list(dy_shape) + [1])[:length]
            elif kind == "input_depth":  # the forward input's channels (0 now and then)
                if op == "dbi" and len(sizes) == 4:
                    sizes = list(sizes)
                    sizes[c_idx] = src.choice((0, sizes[c_idx] + 1, sizes[c_idx] * 2))
                elif op != "dbi" and len(first) == 4:
                    first = list(first)
                    first[c_idx] = src.choice((0, first[c_idx] + 1, first[c_idx] * 2))
            elif kind in ("batch", "depth", "spatial") and len(dy_shape) == 4:
                dy_shape = list(dy_shape)
                if kind == "spatial":
                    index = src.choice(hw_idx)
                else:
                    index = n_idx if kind == "batch" else c_idx
                dy_shape[index] = max(0, dy_shape[index] + src.choice((-2, -1, 1, 3)))
    return Example(
        op,
        dtype,
        fmt,
        mode,
        list(first),
        list(dy_shape),
        list(sizes),
        attrs,
        tuple(corruptions),
        src.int(0, 2**31 - 1),
    )


# --------------------------------------------------------------------------------------------------
# Checking one example
# --------------------------------------------------------------------------------------------------


def _to_nhwc(x: np.ndarray, fmt: str) -> np.ndarray:
    return x if fmt == "NHWC" else x.transpose(0, 2, 3, 1)


def _reference(ex: Example, geometry: dict, first: np.ndarray, dy: np.ndarray) -> np.ndarray:
    big = max(*geometry["strides"], *geometry["dilations"]) > 64
    kernel = reference.KERNELS["loops" if big else "einsum"][ex.op]
    if ex.op == "dbi":
        operand, shape = first, geometry["input_nhwc"]
    else:
        operand, shape = _to_nhwc(first, ex.data_format), geometry["filter"]
    args = (geometry["strides"], geometry["dilations"], geometry["pads_before"])
    return kernel(operand, _to_nhwc(dy, ex.data_format), tuple(shape), *args)


class Checker:
    """Runs examples against our ops (TensorFlow and tf_convgrad imported on first use)."""

    def __init__(self):
        import tensorflow as tf  # noqa: PLC0415
        import tf_convgrad  # noqa: PLC0415

        self.tf = tf
        tf.get_logger().setLevel("ERROR")  # one tf.function per example: retracing warnings
        self.fns = {key: getattr(tf_convgrad, op.function) for key, op in _optable.OPS.items()}
        self.stats = collections.Counter()

    def check(self, ex: Example) -> None:
        tf = self.tf
        geometry = model(ex)
        rng = np.random.default_rng(ex.data_seed)
        first = metrics.round_to(rng.uniform(-1, 1, ex.first_shape), ex.dtype)
        dy = metrics.round_to(rng.uniform(-1, 1, ex.dy_shape), ex.dtype)
        args = {
            "filter" if ex.op == "dbi" else "input": tf.cast(tf.constant(first), ex.dtype),
            "out_backprop": tf.cast(tf.constant(dy), ex.dtype),
            _optable.OPS[ex.op].sizes: tf.constant(np.asarray(ex.sizes, np.int32).reshape(-1)),
        }
        fn = self.fns[ex.op]
        if ex.mode == "function":
            names = list(args)
            graph_fn = tf.function(
                lambda *v: fn(**dict(zip(names, v, strict=True)), **ex.attrs), autograph=False
            )

            def call():
                return graph_fn(*[args[k] for k in names])
        else:

            def call():
                return fn(**args, **ex.attrs)

        valid = geometry is not None
        self.stats[(ex.op, "valid" if valid else "invalid", ex.mode)] += 1
        self.stats[("dtype", ex.dtype)] += 1
        for kind in ex.corruptions:
            self.stats[("corruption", kind)] += 1
        if not valid:
            # In a tf.function the shape function sees the sizes tensor's shape and refuses a
            # length other than 4 while tracing (ValueError); everything else is the kernel's.
            if ex.mode == "function" and len(ex.sizes) != 4:
                expected = ValueError
            else:
                expected = tf.errors.InvalidArgumentError
            try:
                out = call()
            except expected:
                return
            except Exception as error:  # noqa: BLE001 - any other class is a failure
                raise AssertionError(
                    f"expected {expected.__name__}, got {type(error).__name__}: "
                    f"{str(error)[:500]}\n{ex.describe()}"
                ) from None
            raise AssertionError(
                f"invalid call accepted (returned shape {out.shape}): {ex.describe()}"
            )
        try:
            out = call()
        except tf.errors.OpError as error:
            raise AssertionError(
                f"valid call raised {type(error).__name__}: {error.message[:500]}\n{ex.describe()}"
            ) from None
        got = np.asarray(out.numpy()).astype(np.float64)
        if ex.op == "dbi":
            got = _to_nhwc(got, ex.data_format)
        ref = _reference(ex, geometry, first, dy)
        if got.shape != ref.shape:
            raise AssertionError(f"shape {got.shape}, expected {ref.shape}: {ex.describe()}")
        if got.size == 0:
            self.stats["empty result"] += 1
            return
        if not np.all(np.isfinite(got)):
            raise AssertionError(f"non-finite values: {ex.describe()}")
        scale = float(np.max(np.abs(ref)))
        if scale == 0.0:
            if np.any(got):
                raise AssertionError(f"expected exact zeros, max|got| {np.abs(got).max()}: "
                                     f"{ex.describe()}")  # fmt: skip
            self.stats["zero result"] += 1
            return
        err = metrics.relative_error(got, ref)
        tol = metrics.TOLERANCES[ex.dtype]
        if err > tol:
            raise AssertionError(f"error {err:.3g} > {tol}: {ex.describe()}")
        self.stats["values checked"] += 1


def fuzz_settings(examples_count: int, derandomize: bool) -> settings:
    return settings(
        max_examples=examples_count,
        derandomize=derandomize,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink),
        print_blob=True,
    )


# --------------------------------------------------------------------------------------------------
# Chunks of examples, in worker processes
# --------------------------------------------------------------------------------------------------


def chunk(seed_value: int, examples_count: int, fast: bool, function_fraction: float) -> dict:
    """A chunk: ``examples_count`` examples from hypothesis seed ``seed_value``.

    ``fast`` lets hypothesis seed one ``random.Random`` per example instead of drawing every
    choice (:func:`fast_examples`): ~5x cheaper generation, no shrinking (the failing example is
    still reported whole).
    """
    return {
        "seed": seed_value,
        "examples": examples_count,
        "fast": fast,
        "function_fraction": function_fraction,
    }


def run_chunks(
    chunks: Sequence[dict],
    workers: int = 2,
    timeout: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    output: Callable[[str], None] | None = None,
) -> list[dict]:
    """Runs chunks in crash-isolated worker processes (oneDNN off), ``workers`` at a time.

    Args:
        chunks: From :func:`chunk`.
        workers: Worker processes at a time; a worker runs its chunks one after another.
        timeout: Seconds for all chunks; None for no limit.
        progress: ``progress(done, total)`` in chunks.
        output: Receives the workers' progress lines (one per 1,000 examples, one per chunk).

    Returns:
        One summary per chunk, in order: ``{"ok", "seed", "examples", "seconds", "failure",
        "stats"}``; ``failure`` is None, hypothesis' report, or for a worker that died or timed
        out, what happened and the example it was running.
    """
    with tempfile.TemporaryDirectory(prefix="tf_convgrad_fuzz_") as tmp:
        tasks = [
            {**c, "current": str(Path(tmp) / f"current_{k}.json")} for k, c in enumerate(chunks)
        ]
        results = worker.run(
            "fuzz_harness:prepare",
            tasks,
            workers=workers,
            timeout=timeout,
            progress=progress,
            output=output,
            sys_path=[HERE],
        )
        summaries = []
        for task, result in zip(tasks, results, strict=True):
            if result.get("crashed") or result.get("timed_out"):
                current = Path(task["current"])
                running = current.read_text() if current.exists() else "(nothing yet)"
                what = f"worker died ({result['signal']})" if result.get("crashed") else "timed out"
                result = {
                    "ok": False,
                    "seed": task["seed"],
                    "examples": None,
                    "failure": f"{what} while running: {running}\n{result['message']}",
                    "stats": {},
                }
            summaries.append(result)
    return summaries


def prepare(chunks: list[dict]) -> Callable[[dict], dict]:
    """The worker's task function (``tf_convgrad.tools.worker``): one checker for its chunks."""
    checker = Checker()
    return lambda task: run_chunk(checker, task)


def _describe_failure(error: BaseException) -> str:
    """The message of each distinct failure hypothesis found (after shrinking)."""
    group = getattr(error, "exceptions", None)
    if group:
        return "\n\n".join(_describe_failure(e) for e in group)
    return f"{type(error).__name__}: {error}"


def run_chunk(checker: Checker, task: dict) -> dict:
    """Runs one chunk in this process; returns its summary (see :func:`run_chunks`).

    The running example is written to ``task["current"]`` (when given) before it runs.
    """
    strategy = (fast_examples if task["fast"] else examples)(task["function_fraction"])
    checker.stats = collections.Counter()
    current = open(task["current"], "w") if task.get("current") else None  # noqa: SIM115
    count = [0]
    start = time.monotonic()

    @seed(task["seed"])
    @fuzz_settings(task["examples"], derandomize=False)
    @given(strategy)
    def run(ex):
        if current is not None:
            current.seek(0)
            current.write(ex.describe())
            current.truncate()
            current.flush()
        count[0] += 1
        if count[0] % 1000 == 0:
            print(f"seed {task['seed']}: {count[0]} examples, {time.monotonic() - start:.0f} s",
                  flush=True)  # fmt: skip
        checker.check(ex)

    failure = None
    try:
        run()
    except Exception as error:  # noqa: BLE001 - reported in the summary
        failure = _describe_failure(error)
    finally:
        if current is not None:
            current.close()
    seconds = time.monotonic() - start
    print(f"seed {task['seed']}: {'FAILED' if failure else 'OK'}, {count[0]} examples in "
          f"{seconds:.0f} s", flush=True)  # fmt: skip
    return {
        "ok": failure is None,
        "seed": task["seed"],
        "examples": count[0],
        "seconds": seconds,
        "failure": failure,
        "stats": {
            "|".join(map(str, k)) if isinstance(k, tuple) else k: v
            for k, v in checker.stats.items()
        },  # fmt: skip
    }


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Replays one chunk of the fuzzer in this process.")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--examples", type=int, required=True)
    parser.add_argument("--function-fraction", type=float, default=0.05)
    parser.add_argument("--fast", action="store_true", help="see fuzz_harness.chunk")
    parser.add_argument("--current", default=None, help="the running example is written here")
    parser.add_argument("--summary", default=None, help="the summary goes here (else stdout)")
    args = parser.parse_args(argv)
    task = chunk(args.seed, args.examples, args.fast, args.function_fraction)
    summary = run_chunk(Checker(), {**task, "current": args.current})
    if args.summary is None:
        print(json.dumps(summary, indent=1))
    else:
        Path(args.summary).write_text(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(_main())
