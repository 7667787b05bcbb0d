"""How the benchmark times a call on a GPU, and the ceilings it compares against.

:func:`time_graph` replays a CUDA graph of K calls that cycle through several input sets (so
that L2 holds less than a third of them) and times each replay with CUDA events; the table
reports medians after warm-up. :func:`measure_ceilings` measures the copy bandwidth and the
matmul rate per dtype on the same GPU.
"""

from __future__ import annotations

import statistics


def measure_ceilings(torch) -> dict:
    """Device-to-device copy bandwidth and matrix-product rates measured on this GPU."""
    t = torch
    ceilings = {}
    nbytes = 1 << 30
    buffers = [t.empty(nbytes, dtype=t.uint8, device="cuda") for _ in range(2)]
    ms = _time_torch(t, lambda: buffers[1].copy_(buffers[0]), reps=20)
    ceilings["bandwidth"] = 2 * nbytes / (ms * 1e-3)  # bytes read + written per second
    buffers.clear()
    t.backends.cuda.matmul.allow_tf32 = False
    for dtype, n in (("float16", 8192), ("bfloat16", 8192), ("float32", 8192), ("float64", 4096)):
        a = t.randn(n, n, device="cuda", dtype=getattr(t, dtype))
        b = t.randn(n, n, device="cuda", dtype=getattr(t, dtype))
        ms = _time_torch(t, lambda a=a, b=b: a @ b, reps=10)
        ceilings[dtype] = 2 * n**3 / (ms * 1e-3)
    t.cuda.empty_cache()
    return ceilings


def _time_torch(t, fn, reps: int) -> float:
    for _ in range(3):
        fn()
    t.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_graph(t, stream, enqueue, rotations: int, target_ms: float = 3.0, replays: int = 15):
    """Median milliseconds per call of enqueue(i) (i = input set), from CUDA-graph replays.

    Warm-up runs each input set (this is also when cuDNN autotunes), then one graph holding K
    calls that cycle through the input sets is captured and replayed; each replay is timed with
    CUDA events and divided by K. Falls back to back-to-back launches if capture fails.
    Returns (milliseconds, "graph" or "stream", milliseconds of plain back-to-back launches):
    the last one includes launch gaps and is a cross-check that the graph really ran the work.
    """
    with t.cuda.stream(stream):
        for i in range(max(3, rotations)):
            enqueue(i % rotations)
        stream.synchronize()
        start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        start.record(stream)
        for i in range(rotations):
            enqueue(i)
        end.record(stream)
        end.synchronize()
        est = max(start.elapsed_time(end) / rotations, 1e-3)
        k = int(min(max(target_ms / est, 4), 400))
        k = max(rotations, k - k % rotations)
        try:
            graph = t.cuda.CUDAGraph()
            with t.cuda.graph(graph, stream=stream):
                for i in range(k):
                    enqueue(i % rotations)
            run = graph.replay
            how = "graph"
        except Exception:  # noqa: BLE001 - fall back to plain launches

            def run():
                for i in range(k):
                    enqueue(i % rotations)

            how = "stream"
        run()
        stream.synchronize()
        times = []
        for _ in range(replays):
            start.record(stream)
            run()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) / k)
        plain = []
        for _ in range(3):
            start.record(stream)
            for i in range(k):
                enqueue(i % rotations)
            end.record(stream)
            end.synchronize()
            plain.append(start.elapsed_time(end) / k)
    return statistics.median(times), how, statistics.median(plain)
