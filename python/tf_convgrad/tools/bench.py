"""`python -m tf_convgrad bench`: ours against TensorFlow's own CPU kernels.

Method (see docs/PERF.md for results):
* TensorFlow's kernel choice is fixed per process by TF_ENABLE_ONEDNN_OPTS, so the suite runs in
  two worker processes, oneDNN on and oneDNN off. Each worker times ours and TF's on the very same
  inputs in three modes, interleaved call by call (the order reshuffled every round), after
  warm-up calls: "graph" (the primary figure, column "ratio"), a tf.function holding
  GRAPH_CALLS = 4 independent calls of the op on different out_backprop tensors, timed per call,
  as TF's executor runs the independent gradient ops of a training step; "1-call", a tf.function
  holding one call; and "eager". Reported times are medians; "ours" is the lower of the two
  workers' medians, and TF's best is the lower of its oneDNN and native medians.
* The tool measures the machine itself: an SGEMM (tf.matmul, all threads) for the float32 peak
  FLOP rate and a large streaming multiply for the memory bandwidth. The roofline time of a case
  is max(flops / peak, bytes / bandwidth), bytes being the minimum traffic (read both inputs,
  write the output once); "% roofline" = roofline time / measured time. "ceil" = TF's best time /
  roofline time: the ratio ours would reach at 100% of the roofline, so a target ratio above it
  cannot be met on that case by a kernel that stays within the roofline.
* A 16-bit case also times ours in float32 on the same values, interleaved with the other two
  calls: "per_element" = ours 16-bit / ours float32 (at most 1: 16-bit as fast per element).
  Timed in the same rounds, it does not depend on the machine's state moving between cases.
* Each worker records the CPU time other processes used while a case ran ("fgn", in cores, from
  /proc/stat): timings taken at fgn > 0.3 are not trustworthy on a 2-core machine.

`bench --memory` measures, instead of time, the peak extra resident memory (RSS) of one call of
ours, of TF with oneDNN on and of TF native (Linux with glibc only):
* Three worker processes, one per implementation, each running the cases in turn. Per case it
  builds the inputs, calls the op once (kernel and oneDNN primitive creation) and drops the
  result; then, three times: gc, malloc_trim(0), read VmRSS, reset VmHWM to it (write 5 to
  /proc/self/clear_refs), call the op, read VmHWM, drop the result, gc, read VmRSS again.
  peak = the highest of the three VmHWM - (the lower VmRSS).
  It includes the output tensor (the same size for all three; shown as "out"), so the scratch
  part is peak - out. Memory that an implementation keeps between calls (caches, pools) is not
  in it; ours keeps none.
* RSS must fall when memory is freed, or a call's buffers hide in pages an earlier call left
  resident. So the workers run with MALLOC_MMAP_THRESHOLD_=65536: glibc serves blocks of 64 KiB
  and more that do not fit in free heap space with mmap and unmaps them on free. And
  malloc_trim(0) before each measured call gives the free heap space's pages back, without which
  a 0.5 MiB output sometimes fitted in resident free heap and measured 0. Repeated runs still
  differ by up to ~0.1 MiB (small allocations); the ratio counts peaks under 0.25 MiB as 0.25.
* With oneDNN on, TF's CPU allocator keeps blocks of 256 KiB and more in a BFC pool that never
  shrinks, so after the warm-up call its peak would read ~0; the workers set
  TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1, which sends those blocks to malloc (same kernels).
* --fresh runs a new process per case and implementation (TensorFlow's import each time, 3 to
  10 s); on the --quick cases it gave the same peaks as the batched default within 0.1 MiB.
* The peaks depend on the number of threads (per-thread scratch): compare on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

from .. import _cli

OPS = {
    "CBF": "Conv2DBackpropFilter",
    "DBF": "DepthwiseConv2dNativeBackpropFilter",
    "DBI": "DepthwiseConv2dNativeBackpropInput",
}

# (name, op, batch, h, w, c, k, stride, multiplier or out_depth, padding)
_DEPTHWISE = [
    ("mbv2 112x112x32 k3", 16, 112, 112, 32, 3, 1, 1, "SAME"),
    ("mbv2 113x113x96 k3 s2 (pad+VALID)", 16, 113, 113, 96, 3, 2, 1, "VALID"),
    ("mbv2 56x56x144 k3", 16, 56, 56, 144, 3, 1, 1, "SAME"),
    ("mbv2 56x56x144 k3 s2", 16, 56, 56, 144, 3, 2, 1, "SAME"),
    ("mbv2 28x28x192 k3", 32, 28, 28, 192, 3, 1, 1, "SAME"),
    ("mbv2 29x29x192 k3 s2 (pad+VALID)", 32, 29, 29, 192, 3, 2, 1, "VALID"),
    ("mbv2 14x14x384 k3", 32, 14, 14, 384, 3, 1, 1, "SAME"),
    ("mbv2 14x14x576 k3", 32, 14, 14, 576, 3, 1, 1, "SAME"),
    ("mbv2 14x14x576 k3 s2", 32, 14, 14, 576, 3, 2, 1, "SAME"),
    ("mbv2 7x7x960 k3", 32, 7, 7, 960, 3, 1, 1, "SAME"),
    ("effb0 56x56x144 k5 s2", 16, 56, 56, 144, 5, 2, 1, "SAME"),
    ("effb0 28x28x240 k5", 32, 28, 28, 240, 5, 1, 1, "SAME"),
    ("effb0 14x14x672 k5", 32, 14, 14, 672, 5, 1, 1, "SAME"),
    ("effb0 14x14x672 k5 s2", 32, 14, 14, 672, 5, 2, 1, "SAME"),
    ("effb0 7x7x1152 k5", 32, 7, 7, 1152, 5, 1, 1, "SAME"),
    ("k7 28x28x192", 32, 28, 28, 192, 7, 1, 1, "SAME"),
    ("k7 14x14x384 s2", 32, 14, 14, 384, 7, 2, 1, "SAME"),
    ("batch1 112x112x32 k3", 1, 112, 112, 32, 3, 1, 1, "SAME"),
    ("batch1 14x14x672 k5", 1, 14, 14, 672, 5, 1, 1, "SAME"),
    ("mult2 56x56x32 k3", 16, 56, 56, 32, 3, 1, 2, "SAME"),
    ("mult2 28x28x96 k3 s2", 32, 28, 28, 96, 3, 2, 2, "SAME"),
    ("mult2 14x14x192 k5 VALID", 32, 14, 14, 192, 5, 1, 2, "VALID"),
]
_RESNET = [
    ("rn50 stem 230x230x3->64 k7 s2 (pad+VALID)", 8, 230, 230, 3, 7, 2, 64, "VALID"),
    ("rn50 56x56x64->64 k3", 16, 56, 56, 64, 3, 1, 64, "SAME"),
    ("rn50 56x56x64->256 k1", 16, 56, 56, 64, 1, 1, 256, "SAME"),
    ("rn50 56x56x256->64 k1", 16, 56, 56, 256, 1, 1, 64, "SAME"),
    ("rn50 56x56x256->512 k1 s2", 16, 56, 56, 256, 1, 2, 512, "SAME"),
    ("rn50 56x56x128->128 k3 s2", 16, 56, 56, 128, 3, 2, 128, "SAME"),
    ("rn50 28x28x128->128 k3", 16, 28, 28, 128, 3, 1, 128, "SAME"),
    ("rn50 14x14x256->256 k3", 32, 14, 14, 256, 3, 1, 256, "SAME"),
    ("rn50 14x14x1024->256 k1", 32, 14, 14, 1024, 1, 1, 256, "SAME"),
    ("rn50 7x7x512->512 k3", 32, 7, 7, 512, 3, 1, 512, "SAME"),
    ("rn50 7x7x512->2048 k1", 32, 7, 7, 512, 1, 1, 2048, "SAME"),
]
_OTHER_DTYPES = {
    "DBF": ["mbv2 56x56x144 k3", "effb0 14x14x672 k5"],
    "DBI": ["mbv2 56x56x144 k3", "effb0 14x14x672 k5"],
    "CBF": ["rn50 28x28x128->128 k3", "rn50 14x14x1024->256 k1"],
}
_QUICK = {"mbv2 56x56x144 k3", "effb0 14x14x672 k5", "mult2 56x56x32 k3", "rn50 28x28x128->128 k3"}


def suite(quick=False, ops=None, dtypes=None):
    """The benchmark cases, as plain dicts."""
    cases = []
    for op in ("DBF", "DBI", "CBF"):
        table = _RESNET if op == "CBF" else _DEPTHWISE
        for name, n, h, w, c, k, s, mo, pad in table:
            if quick and name not in _QUICK:
                continue
            names = ["float32"] + (
                ["bfloat16", "float16", "float64"] if name in _OTHER_DTYPES[op] else []
            )
            for dt in names:
                if (ops and op not in ops) or (dtypes and dt not in dtypes):
                    continue
                cases.append(
                    dict(op=op, name=name, n=n, h=h, w=w, c=c, k=k, s=s, mo=mo, pad=pad, dtype=dt)
                )
    return cases


def _out(size, k, s, pad):
    return (size + s - 1) // s if pad == "SAME" else (size - k + s) // s


_ITEM = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}


def cost(case):
    """(flops, bytes) of a case: 2 x multiply-adds, and the minimum memory traffic."""
    n, h, w, c, k, s, mo = (case[key] for key in ("n", "h", "w", "c", "k", "s", "mo"))
    oh, ow = _out(h, k, s, case["pad"]), _out(w, k, s, case["pad"])
    item = _ITEM[case["dtype"]]
    if case["op"] == "CBF":
        macs = n * oh * ow * k * k * c * mo
        elems = n * h * w * c + n * oh * ow * mo + k * k * c * mo
    else:
        macs = n * oh * ow * k * k * c * mo
        elems = n * h * w * c + n * oh * ow * c * mo + k * k * c * mo
    return 2 * macs, elems * item


def output_bytes(case):
    """Size of the op's result: the filter gradient (CBF, DBF) or the input gradient (DBI)."""
    n, h, w, c, k, mo = (case[key] for key in ("n", "h", "w", "c", "k", "mo"))
    elems = n * h * w * c if case["op"] == "DBI" else k * k * c * mo
    return elems * _ITEM[case["dtype"]]


# ----------------------------------------------------------------------------- worker side


def _foreign_jiffies():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        own = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:15])
    return busy - own


def _calls(case, rng, copies=1):
    """A case's inputs (random normal) and its calls as functions of a copy index: "ours", "tf"
    and, for 16-bit cases, "ours_f32" (ours on the same values in float32). Call i uses the i-th
    of ``copies`` different out_backprop tensors, so that calls in one graph are independent ops
    that Grappler cannot merge."""
    import numpy as np
    import tensorflow as tf

    import tf_convgrad

    n, h, w, c, k, s, mo = (case[key] for key in ("n", "h", "w", "c", "k", "s", "mo"))
    oh, ow = _out(h, k, s, case["pad"]), _out(w, k, s, case["pad"])
    dt = tf.as_dtype(case["dtype"])
    od = mo if case["op"] == "CBF" else c * mo
    x = tf.cast(rng.standard_normal((n, h, w, c), dtype=np.float32), dt)
    dys = [
        tf.cast(rng.standard_normal((n, oh, ow, od), dtype=np.float32), dt) for _ in range(copies)
    ]
    dy = dys[0]
    f = tf.cast(rng.standard_normal((k, k, c, mo), dtype=np.float32), dt)
    attrs = dict(strides=[1, s, s, 1], padding=case["pad"])
    if case["op"] == "DBI":
        kw = dict(input_sizes=tf.constant([n, h, w, c]), filter=f, out_backprop=dy, **attrs)
        wide = dict(kw, filter=tf.cast(f, tf.float32), out_backprop=tf.cast(dy, tf.float32))
        ours, theirs = (
            tf_convgrad.depthwise_conv2d_native_backprop_input,
            (tf.raw_ops.DepthwiseConv2dNativeBackpropInput),
        )
    else:
        kw = dict(input=x, filter_sizes=tf.constant([k, k, c, mo]), out_backprop=dy, **attrs)
        wide = dict(kw, input=tf.cast(x, tf.float32), out_backprop=tf.cast(dy, tf.float32))
        ours, theirs = (
            (tf_convgrad.conv2d_backprop_filter, tf.raw_ops.Conv2DBackpropFilter)
            if case["op"] == "CBF"
            else (
                tf_convgrad.depthwise_conv2d_native_backprop_filter,
                tf.raw_ops.DepthwiseConv2dNativeBackpropFilter,
            )
        )
    wide_dys = [tf.cast(d, tf.float32) for d in dys] if dt.size == 2 else []
    calls = {
        "ours": lambda i=0: ours(**dict(kw, out_backprop=dys[i])),
        "tf": lambda i=0: theirs(**dict(kw, out_backprop=dys[i])),
    }
    if dt.size == 2:
        calls["ours_f32"] = lambda i=0: ours(**dict(wide, out_backprop=wide_dys[i]))
    return calls


# Calls per tf.function in the "graph" mode: independent ops, as a training step has (a layer's two
# depthwise gradients, the gradients of parallel branches), which TF's executor runs concurrently
# on its inter-op threads, all sharing one intra-op pool.
GRAPH_CALLS = 4
MODES = ("graph", "single", "eager")


def _timed_modes(impl):
    """{mode: no-argument function} for one implementation; graph modes are traced here."""
    import tensorflow as tf

    multi = tf.function(lambda: [impl(i) for i in range(GRAPH_CALLS)])
    single = tf.function(lambda: impl(0))
    return {
        "graph": lambda: [t.shape for t in multi()],
        "single": lambda: single().shape,
        "eager": lambda: impl(0).shape,
    }


def _worker(cases, out_path, budget):
    """Times every case's implementations in the three modes, interleaved: per round, each
    (implementation, mode) pair once, in a new random order. "graph" is the time of one
    GRAPH_CALLS-call function divided by GRAPH_CALLS."""
    import numpy as np

    hz = os.sysconf("SC_CLK_TCK")
    results = []
    rng = np.random.default_rng(0)
    for idx, case in enumerate(cases):
        impls = {}
        for name, impl in _calls(case, rng, GRAPH_CALLS).items():
            for mode, fn in _timed_modes(impl).items():
                impls[(name, mode)] = fn
        first = {}
        for key, fn in impls.items():  # first call: tracing, kernel creation, primitive caches
            fn()
            t0 = time.perf_counter()
            fn()
            first[key] = time.perf_counter() - t0
            fn()
        est = max(min(first[(n, "eager")] for n, m in impls if m == "eager"), 1e-5)
        per_round = est * (GRAPH_CALLS + 2) * len({n for n, _ in impls})
        calls = int(min(30, max(5, budget / per_round)))
        samples = {key: [] for key in impls}
        j0, w0 = _foreign_jiffies(), time.perf_counter()
        order = list(impls)
        for _ in range(calls):
            random.shuffle(order)
            for key in order:
                t0 = time.perf_counter()
                impls[key]()
                samples[key].append(time.perf_counter() - t0)
        # /proc/stat and our own counters tick separately: clamp the small negative noise at 0.
        fgn = max(0.0, (_foreign_jiffies() - j0) / hz / (time.perf_counter() - w0))
        result = {"index": idx, "calls": calls, "fgn": round(fgn, 2)}
        for (name, mode), times in samples.items():
            per_call = GRAPH_CALLS if mode == "graph" else 1
            suffix = "" if mode == "graph" else f"_{mode}"
            result[f"{name}{suffix}_ms"] = 1e3 * float(np.median(times)) / per_call
        results.append(result)
        print(f"progress {idx + 1}/{len(cases)}", file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f)


def _status_bytes(key):
    """A field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak():
    """Resets this process's VmHWM (peak RSS) to its current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _memory_worker(cases, impl, out_path, repeats=3):
    """Peak extra RSS of one call of `impl` ("ours" or "tf") per case: after a warm-up call, the
    highest of `repeats` calls, each measured on its own (the peak reset before it)."""
    import ctypes
    import gc

    import numpy as np
    import tensorflow as tf

    libc = ctypes.CDLL("libc.so.6")
    gc.collect()
    gc.freeze()  # later collections skip TensorFlow's own objects (0.2 s each otherwise)
    rng = np.random.default_rng(0)
    results = []
    for idx, case in enumerate(cases):
        call = _calls(case, rng)[impl]
        try:
            call()  # kernel and primitive creation; also flushes TF's deferred input frees
            peaks = []
            for _ in range(repeats):
                gc.collect()
                libc.malloc_trim(0)  # no resident free heap pages for this call to reuse
                _reset_peak()
                before = _status_bytes("VmRSS")
                result = call()
                top = _status_bytes("VmHWM")
                del result
                gc.collect()
                # Heap pages that earlier calls freed late may be given back during this call;
                # the RSS after it (its result freed) is then the lower, truer baseline.
                peaks.append(top - min(before, _status_bytes("VmRSS")))
            results.append({"peak_bytes": max(peaks), "peak_bytes_runs": peaks})
        except tf.errors.OpError as e:  # the kernel refuses the case
            message = (e.message or "").strip().splitlines()
            results.append({"error": f"{type(e).__name__}: {message[0] if message else ''}"})
        del call
        gc.collect()
        print(f"progress {idx + 1}/{len(cases)}", file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f)


def _isa_level() -> str:
    """The instruction-set level of our CPU cores in this process, and so in the workers, which
    inherit TF_CONVGRAD_ISA (``python -m tf_convgrad info``)."""
    from .. import _loader

    return _loader.build_info()["isa"]


def _measure_machine():
    """Float32 SGEMM rate (GFLOP/s) and streaming bandwidth (GB/s) with all threads."""
    import numpy as np
    import tensorflow as tf

    a = tf.random.normal([2048, 2048])
    tf.matmul(a, a)
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        tf.matmul(a, a).numpy()
        ts.append(time.perf_counter() - t0)
    peak = 2 * 2048**3 / min(ts) / 1e9
    v = tf.ones([64 * 1024 * 1024])  # 256 MiB
    (v * 2.0).numpy()
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        r = v * 2.0
        r = r[:1].numpy()  # forces completion without a full copy
        ts.append(time.perf_counter() - t0)
    bw = 2 * 4 * 64 * 1024 * 1024 / float(np.median(ts)) / 1e9
    return peak, bw


def _run_workers(cases, budget, progress):
    """Runs the suite with oneDNN on and off; returns {setting: results}."""
    out = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as tmp:
        case_path = os.path.join(tmp, "cases.json")
        with open(case_path, "w") as f:
            json.dump(cases, f)
        for setting in ("onednn", "native"):
            env["TF_ENABLE_ONEDNN_OPTS"] = "1" if setting == "onednn" else "0"
            res_path = os.path.join(tmp, f"{setting}.json")
            cmd = [sys.executable, "-m", "tf_convgrad.tools.bench", "--worker", case_path, res_path,
                   str(budget)]  # fmt: skip
            proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
            for line in proc.stderr:
                if line.startswith("progress "):
                    done, total = line.split()[1].split("/")
                    progress(f"TF {setting}", int(done), int(total))
            if proc.wait() != 0:
                raise RuntimeError(f"bench worker ({setting}) failed with code {proc.returncode}")
            with open(res_path) as f:
                out[setting] = json.load(f)
    return out


def _bar(label, done, total):
    width = 30
    filled = width * done // total
    line = f"  {label:10s} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if done == total else ""))
    elif done == total or done % 10 == 0:  # a log file gets a line every 10 cases
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


# Memory mode: (label, call, TF_ENABLE_ONEDNN_OPTS) of its three workers, and their environment.
_MEMORY_WORKERS = (("ours", "ours", "0"), ("onednn", "tf", "1"), ("native", "tf", "0"))
MEMORY_ENV = {
    # glibc serves new blocks >= 64 KiB with mmap and unmaps them on free: RSS falls after a
    # free, so a call's peak is not hidden in heap pages that an earlier call left behind.
    "MALLOC_MMAP_THRESHOLD_": "65536",
    # With oneDNN on, TF's CPU allocator keeps blocks >= 256 KiB in a BFC pool that never
    # shrinks; the warm-up call would leave the measured call's memory pooled (peak ~0).
    "TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1",
}
# Repeated runs differ by up to ~0.1 MiB: the ratio counts smaller peaks as this.
RESOLUTION = 1 << 18


def _peak_reset_problem():
    """None if /proc/self/clear_refs resets VmHWM here, else why not."""
    try:
        block = b"\x01" * (64 << 20)  # raise the peak 64 MiB above the current RSS
        del block
        _reset_peak()
        gap = _status_bytes("VmHWM") - _status_bytes("VmRSS")
    except (OSError, RuntimeError) as e:
        return (
            f"cannot reset the peak RSS (VmHWM) through /proc/self/clear_refs: {e}. The memory "
            "mode needs Linux >= 4.0 with a writable /proc (not gVisor, not a read-only /proc)."
        )
    if gap > 32 << 20:
        return "writing 5 to /proc/self/clear_refs did not reset VmHWM on this kernel"
    return None


def _run_memory_workers(cases, fresh, progress, workers=_MEMORY_WORKERS):
    """Runs the memory workers; returns {label: results in case order}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **MEMORY_ENV)
    batches = [cases[i : i + 1] for i in range(len(cases))] if fresh else [cases]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        case_path, res_path = os.path.join(tmp, "cases.json"), os.path.join(tmp, "results.json")
        for label, call, onednn in workers:
            env["TF_ENABLE_ONEDNN_OPTS"] = onednn
            results = []
            for batch in batches:
                with open(case_path, "w") as f:
                    json.dump(batch, f)
                cmd = [sys.executable, "-m", "tf_convgrad.tools.bench", "--memory-worker",
                       case_path, call, res_path]  # fmt: skip
                proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
                tail = []
                for line in proc.stderr:
                    if line.startswith("progress "):
                        done = len(results) + int(line.split()[1].split("/")[0])
                        progress(label if call == "ours" else f"TF {label}", done, len(cases))
                    else:
                        tail = (tail + [line.rstrip()])[-8:]
                if proc.wait() != 0:
                    raise RuntimeError(
                        f"bench memory worker ({label}) failed with code {proc.returncode}:\n"
                        + "\n".join(tail)
                    )
                with open(res_path) as f:
                    results += json.load(f)
            out[label] = results
    return out


def run_memory(args, cases):
    """`bench --memory`: peak extra RSS of one call, ours against TF oneDNN and TF native."""
    problem = _peak_reset_problem()
    if problem:
        print(f"bench --memory: {problem}", file=sys.stderr)
        return 2
    how = "a worker process per case and implementation" if args.fresh else "three worker processes"
    print(
        f"bench --memory: {len(cases)} cases; {how} (ours, TF oneDNN on, TF native), "
        "peak RSS of one call after a warm-up call",
        file=sys.stderr,
    )
    runs = _run_memory_workers(cases, args.fresh, _bar)
    rows = []
    for i, case in enumerate(cases):
        row = dict(case, output_bytes=output_bytes(case))
        for label, key in (("ours", "ours"), ("onednn", "tf_onednn"), ("native", "tf_native")):
            res = runs[label][i]
            row[f"{key}_peak_bytes"] = res.get("peak_bytes")
            row[f"{key}_peak_bytes_runs"] = res.get("peak_bytes_runs")
            if "error" in res:
                row[f"{key}_error"] = res["error"]
        tf_peaks = [row[k] for k in ("tf_onednn_peak_bytes", "tf_native_peak_bytes")]
        tf_peaks = [p for p in tf_peaks if p is not None]
        row["tf_best_peak_bytes"] = min(tf_peaks) if tf_peaks else None
        ours, best = row["ours_peak_bytes"], row["tf_best_peak_bytes"]
        both = ours is not None and best is not None
        row["ratio"] = max(ours, RESOLUTION) / max(best, RESOLUTION) if both else None
        row["excess_bytes"] = ours - best if both else None
        rows.append(row)
    summary = {}
    for op in ("DBF", "DBI", "CBF"):
        mine = [r for r in rows if r["op"] == op and r["ratio"] is not None]
        if mine:
            summary[op] = {
                "cases": len(mine),
                "cases_above_tf": sum(r["excess_bytes"] > RESOLUTION for r in mine),
                "max_ratio": max(r["ratio"] for r in mine),
                "max_excess_bytes": max(r["excess_bytes"] for r in mine),
            }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "mode": "memory",
        "machine": {"cpu": _cli.cpu_model(), "cpus": os.cpu_count()},
        "env": MEMORY_ENV,
        "fresh_processes": bool(args.fresh),
        "resolution_bytes": RESOLUTION,
        "summary": summary,
        "rows": rows,
    }
    print(json.dumps(report, indent=1) if args.json else format_memory_table(report))
    return 0


def format_memory_table(report):
    mib = 1 << 20

    def cell(row, key, width):
        value = row.get(key)
        if value is None:
            return f"{'error':>{width}s}"
        return f"{value / mib:{width}.2f}"

    lines = [
        f"date {report['date']}; {report['machine']['cpus']} CPUs; peak = highest RSS during a "
        "call above the RSS without it, output included (highest of 3 calls after a warm-up); MiB.",
        f"ratio = ours / TF's best (lower of oneDNN and native); <= 1: ours needs no more. "
        f"Peaks under {report['resolution_bytes'] / mib:.2f} MiB count as that in the ratio.",
        "excess = ours - TF's best (MiB); the scratch part of a peak is peak - out.",
        "",
        f"{'op':4s} {'layer':42s} {'dtype':8s} {'out':>7s} {'ours':>8s} {'oneDNN':>8s} "
        f"{'native':>8s} {'ratio':>6s} {'excess':>8s}",
    ]
    errors = []
    for r in report["rows"]:
        ratio = f"{r['ratio']:6.2f}" if r["ratio"] is not None else f"{'-':>6s}"
        excess = (
            f"{r['excess_bytes'] / mib:8.2f}" if r["excess_bytes"] is not None else f"{'-':>8s}"
        )
        lines.append(
            f"{r['op']:4s} {r['name']:42s} {r['dtype']:8s} {r['output_bytes'] / mib:7.2f} "
            f"{cell(r, 'ours_peak_bytes', 8)} {cell(r, 'tf_onednn_peak_bytes', 8)} "
            f"{cell(r, 'tf_native_peak_bytes', 8)} {ratio} {excess}"
        )
        for key, who in (("ours", "ours"), ("tf_onednn", "TF oneDNN"), ("tf_native", "TF native")):
            if f"{key}_error" in r:
                errors.append(f"  {r['op']} {r['name']} {r['dtype']}, {who}: {r[key + '_error']}")
    lines.append("")
    for op, s in report["summary"].items():
        lines.append(
            f"{op}: ours above TF's best (by > {report['resolution_bytes'] / mib:.2f} MiB) on "
            f"{s['cases_above_tf']} of {s['cases']} cases; highest ratio {s['max_ratio']:.2f}, "
            f"largest excess {s['max_excess_bytes'] / mib:.2f} MiB"
        )
    if errors:
        lines += ["", "errors (the kernel refused the case):"] + errors
    return "\n".join(lines)


TARGET_RATIO = {"DBF": 2.0, "DBI": 2.0, "CBF": 1.0}


def _geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def _mode_figures(dn, nat, mode):
    """Ours, TF's best and their ratio in a secondary mode ("single" or "eager")."""
    if f"ours_{mode}_ms" not in dn:
        return {}
    ours = min(dn[f"ours_{mode}_ms"], nat[f"ours_{mode}_ms"])
    tf_best = min(dn[f"tf_{mode}_ms"], nat[f"tf_{mode}_ms"])
    return {"ours_ms": ours, "tf_best_ms": tf_best, "ratio": tf_best / ours}


def timing_row(case, dn, nat, peak, bw):
    """One case's report row from the two workers' medians (dn: oneDNN on, nat: native)."""
    flops, nbytes = cost(case)
    # Peak for 16-bit types: same float32 FMA units after conversion; float64 half the lanes.
    p = peak / 2 if case["dtype"] == "float64" else peak
    roof_ms = 1e3 * max(flops / (p * 1e9), nbytes / (bw * 1e9))
    ours = min(dn["ours_ms"], nat["ours_ms"])
    tf_best = min(dn["tf_ms"], nat["tf_ms"])
    return dict(
        case,
        flops=flops,
        bytes=nbytes,
        ours_ms=ours,
        tf_onednn_ms=dn["tf_ms"],
        tf_native_ms=nat["tf_ms"],
        ratio=tf_best / ours,
        ours_gflops=flops / ours / 1e6,
        pct_peak=100 * flops / ours / 1e6 / p,
        pct_roofline=100 * roof_ms / ours,
        roof_ms=roof_ms,
        ceiling=tf_best / roof_ms,
        fgn=max(dn["fgn"], nat["fgn"]),
        **{
            f"{key}_{mode}": value
            for mode in ("single", "eager")
            for key, value in _mode_figures(dn, nat, mode).items()
        },
        **(
            {}
            if "ours_f32_ms" not in dn
            else {"per_element": ours / min(dn["ours_f32_ms"], nat["ours_f32_ms"])}
        ),
    )


def run(args):
    """Entry point of `python -m tf_convgrad bench`."""
    if getattr(args, "train", False):  # Namespaces built by hand may lack it
        from . import train_bench

        return train_bench.run_train(args)
    cases = suite(args.quick, args.op, args.dtype)
    if not cases:
        print("bench: no case matches the filters", file=sys.stderr)
        return 2
    if args.memory:
        if args.plot:
            print(
                "bench: --plot charts the timing ratios; it does not go with --memory",
                file=sys.stderr,
            )
            return 2
        return run_memory(args, cases)
    print(
        f"bench: {len(cases)} cases; measuring the machine, then two worker processes "
        "(TF oneDNN on, TF native), each timing ours and TF's interleaved",
        file=sys.stderr,
    )
    peak, bw = _measure_machine()
    isa = _isa_level()
    print(
        f"bench: measured float32 SGEMM {peak:.0f} GFLOP/s, bandwidth {bw:.1f} GB/s; "
        f"our CPU cores run at instruction-set level {isa}",
        file=sys.stderr,
    )
    runs = _run_workers(cases, args.budget, _bar)
    rows = [
        timing_row(case, dn, nat, peak, bw)
        for case, dn, nat in zip(cases, runs["onednn"], runs["native"], strict=True)
    ]
    summary = {}
    for op in ("DBF", "DBI", "CBF"):
        ratios = [r["ratio"] for r in rows if r["op"] == op and r["dtype"] == "float32"]
        if ratios:
            summary[op] = {
                "geomean_ratio_f32": _geomean(ratios),
                "min_ratio_f32": min(ratios),
                "cases_f32": len(ratios),
                # The targets: 2.0 for the depthwise ops, 1.0 for Conv2DBackpropFilter.
                "target_ratio": TARGET_RATIO[op],
                "ceiling_below_target_f32": sum(
                    r["ceiling"] < TARGET_RATIO[op]
                    for r in rows
                    if r["op"] == op and r["dtype"] == "float32"
                ),
            }
            for mode in ("single", "eager"):
                values = [
                    r[f"ratio_{mode}"]
                    for r in rows
                    if r["op"] == op and r["dtype"] == "float32" and f"ratio_{mode}" in r
                ]
                if values:
                    summary[op][f"geomean_ratio_f32_{mode}"] = _geomean(values)
                    summary[op][f"min_ratio_f32_{mode}"] = min(values)
    for op in ("DBF", "DBI", "CBF"):
        for dtype in ("bfloat16", "float16"):
            per = [r["per_element"] for r in rows if r["op"] == op and r["dtype"] == dtype]
            if per:
                summary.setdefault(op, {}).setdefault("per_element", {})[dtype] = {
                    "min": min(per),
                    "max": max(per),
                    "cases": len(per),
                }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu": _cli.cpu_model(),
            "sgemm_gflops": peak,
            "bandwidth_gbs": bw,
            "cpus": os.cpu_count(),
            "isa": isa,
        },
        "summary": summary,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
    if args.plot:
        plot(report, args.plot)
    return 0


def format_table(report):
    m = report["machine"]
    lines = [
        f"date {report['date']}; {m.get('cpu', 'CPU')}, {m['cpus']} CPUs; measured SGEMM "
        f"{m['sgemm_gflops']:.0f} GFLOP/s, "
        f"bandwidth {m['bandwidth_gbs']:.1f} GB/s; ours at instruction-set level "
        f"{m.get('isa', '?')}",
        "ratio = TF's best (faster of oneDNN and native) / ours; >1 means ours is faster. "
        "fgn = other processes' load (cores) while timing. ceil = TF's best / roofline time, "
        "the ratio ours would reach at 100% of the roofline.",
        "",
        f"{'op':4s} {'layer':38s} {'dtype':8s} {'ours ms':>8s} {'oneDNN':>8s} {'native':>8s} "
        f"{'ratio':>6s} {'1-call':>6s} {'eager':>6s} {'GFLOP/s':>8s} {'%peak':>6s} {'%roof':>6s} "
        f"{'ceil':>6s} {'fgn':>4s}",
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['op']:4s} {r['name']:38s} {r['dtype']:8s} {r['ours_ms']:8.2f} "
            f"{r['tf_onednn_ms']:8.2f} {r['tf_native_ms']:8.2f} {r['ratio']:6.2f} "
            f"{r.get('ratio_single', float('nan')):6.2f} {r.get('ratio_eager', float('nan')):6.2f} "
            f"{r['ours_gflops']:8.1f} {r['pct_peak']:6.1f} {r['pct_roofline']:6.1f} "
            f"{r['ceiling']:6.2f} {r['fgn']:4.1f}"
        )
    lines.append("")
    for op, s in report["summary"].items():
        if "geomean_ratio_f32" in s:
            lines.append(
                f"{op}: float32 geomean ratio {s['geomean_ratio_f32']:.2f} over {s['cases_f32']} "
                f"layers, lowest {s['min_ratio_f32']:.2f}; "
                f"{s['ceiling_below_target_f32']} with a ceiling below the target "
                f"{s['target_ratio']:.1f}"
            )
            others = [
                f"{mode} {s[f'geomean_ratio_f32_{mode}']:.2f} "
                f"(lowest {s[f'min_ratio_f32_{mode}']:.2f})"
                for mode in ("single", "eager")
                if f"geomean_ratio_f32_{mode}" in s
            ]
            if others:
                lines.append(f"{op}: float32 geomean ratio, " + ", ".join(others))
        for dtype, p in s.get("per_element", {}).items():
            lines.append(
                f"{op}: {dtype} per element (ours {dtype} / ours float32, timed interleaved) "
                f"{p['min']:.2f}-{p['max']:.2f} over {p['cases']} layers; <= 1 is as fast"
            )
    return "\n".join(lines)


def plot(report, path):
    """Writes a PNG bar chart of the ratios (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(rows) + 1.5))
    labels = [f"{r['op']} {r['name']} {r['dtype']}" for r in rows]
    colors = [{"DBF": "tab:blue", "DBI": "tab:orange", "CBF": "tab:green"}[r["op"]] for r in rows]
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color=colors)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("TF best time / ours (log scale; > 1: ours faster)")
    ax.set_title(f"tf_convgrad vs TensorFlow 2.21 CPU kernels, {report['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"bench: wrote {path}", file=sys.stderr)


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="four layers only")
    parser.add_argument("--op", action="append", choices=sorted(OPS), help="repeatable")
    parser.add_argument(
        "--dtype",
        action="append",
        type=_cli.dtype,
        metavar="DTYPE",
        help="float32, bfloat16, float16 or float64 (or f32, bf16, f16, f64); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart of the ratios")
    parser.add_argument(
        "--budget", type=float, default=0.6, help="seconds of timed calls per case and worker"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="instead of timing, measure the peak resident memory of one call (see above)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="with --memory: a new worker process per case and implementation (slow)",
    )
    from . import train_bench

    train_bench.add_train_arguments(parser)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        with open(sys.argv[2]) as f:
            _worker(json.load(f), sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--memory-worker":
        with open(sys.argv[2]) as f:
            _memory_worker(json.load(f), sys.argv[3], sys.argv[4])
    else:
        p = argparse.ArgumentParser(prog="python -m tf_convgrad.tools.bench")
        add_arguments(p)
        sys.exit(run(p.parse_args()))
