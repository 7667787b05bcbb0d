"""The benchmark (GPU only): ours against PyTorch on the benchmark layers.

PyTorch is timed through ``aten.convolution_backward`` with ``cudnn.benchmark=True`` and TF32
off; for NHWC it gets channels_last tensors, so cuDNN runs, and for NCHW it may choose its own
depthwise kernel (the table names the backend). Both sides are timed by
:func:`~.timing.time_graph`. Each row also gives our bandwidth and FLOP rate as fractions of
the ceilings measured on the same GPU and whether two runs were bitwise equal.
"""

from __future__ import annotations

import ctypes
import math
import zlib

from .capi import itemsize
from .problem import Problem
from .report import bench_line
from .timing import measure_ceilings, time_graph
from .torch_oracle import TorchConv

#: Seconds one benchmark row may take, for the hardware check's plan and deadline.
SECONDS_PER_ROW = 0.7


def ceilings_and_l2(torch) -> tuple[dict, int]:
    """Measures the ceilings (and prints them) and reads the L2 size of GPU 0."""
    ceilings = measure_ceilings(torch)
    props = torch.cuda.get_device_properties(0)
    l2 = int(getattr(props, "L2_cache_size", 50 << 20))
    print(
        "ceilings: "
        + ", ".join(
            f"{k} {v / 1e12:.1f} TB/s" if k == "bandwidth" else f"{k} {v / 1e12:.0f} TFLOP/s"
            for k, v in ceilings.items()
        ),
        flush=True,
    )
    return ceilings, l2


class OurLaunch:
    """ours(i): enqueues our op on input set i on PyTorch's current stream."""

    def __init__(self, runner, p: Problem, bufs, out_buf, scratch, scratch_bytes: int):
        self.runner, self.p = runner, p
        self.torch = runner.backend.torch
        self.ptrs = [(f.data_ptr(), d.data_ptr()) for f, d in bufs]
        self.out, self.scratch, self.scratch_bytes = (
            out_buf.data_ptr(),
            scratch.data_ptr(),
            scratch_bytes,
        )

    def __call__(self, i: int) -> None:
        stream = ctypes.c_void_p(self.torch.cuda.current_stream().cuda_stream)
        first, dy = self.ptrs[i]
        self.runner.launch(self.p, first, dy, self.out, self.scratch, self.scratch_bytes, stream)


def run_benchmarks(
    runner, torch, problems, ceilings, l2_bytes: int, deadline=None, on_row=None
) -> list[dict]:
    """Times each (suite, problem) for ours and PyTorch; prints and returns one row per layer.

    Args:
        runner: A :class:`~.backends.Runner` on the CUDA backend.
        torch: PyTorch.
        problems: (suite, problem) pairs, in order.
        ceilings: :func:`~.timing.measure_ceilings` of this GPU.
        l2_bytes: The L2 size; input sets rotate so that L2 holds less than a third of them.
        deadline: Stops before a row when ``deadline.allows(SECONDS_PER_ROW)`` is false.
        on_row: Called with the rows so far after each row (the hardware check saves them).
    """
    t = torch
    t.backends.cudnn.benchmark = True
    t.backends.cudnn.allow_tf32 = False
    t.backends.cuda.matmul.allow_tf32 = False
    stream = runner.backend.torch_stream
    rows = []
    for suite, p in problems:
        if deadline is not None and not deadline.allows(SECONDS_PER_ROW):
            break
        t.cuda.empty_cache()
        set_bytes = p.tensor_bytes()
        rotations = int(min(8, max(1, math.ceil(3 * l2_bytes / max(set_bytes, 1)))))
        b = runner.backend
        gen = t.Generator(device="cuda").manual_seed(zlib.crc32(p.id.encode()))
        dt = getattr(t, p.dtype)

        def rand(shape, gen=gen, dt=dt):  # uniform in [-1, 1), made on the GPU
            return (t.rand(shape, device="cuda", generator=gen) * 2 - 1).to(dt)

        bufs = [(rand(p.first_shape), rand(p.dy_shape)) for _ in range(rotations)]
        out_buf = b.empty(math.prod(p.out_shape) * itemsize(p.dtype))
        scratch_bytes = runner.scratch_bytes(p)
        scratch = b.empty(scratch_bytes)
        ours = OurLaunch(runner, p, bufs, out_buf, scratch, scratch_bytes)

        row = {
            "suite": suite,
            "op": p.op,
            "layer": p.geometry.name,
            "dtype": p.dtype,
            "format": p.data_format,
            "kernel": runner.describe(p),
        }
        try:
            # Determinism on this size: two eager runs on input set 0, bitwise.
            outs = []
            for _ in range(2):
                b.poison(out_buf)
                with t.cuda.stream(stream):
                    ours(0)
                stream.synchronize()
                outs.append(out_buf.clone())
            row["deterministic"] = bool(t.equal(outs[0], outs[1]))
            row["ours_ms"], row["how"], row["ours_plain_ms"] = time_graph(
                t, stream, ours, rotations
            )
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["error"] = f"ours: {e}"
        try:
            convs = [TorchConv(t, p, f, d) for f, d in bufs]
            row["torch_backend"] = convs[0].backend_name()
            row["torch_ms"], row["torch_how"], row["torch_plain_ms"] = time_graph(
                t, stream, lambda i, convs=convs: convs[i](), rotations
            )
        except Exception as e:  # noqa: BLE001
            row["error"] = (row.get("error", "") + f" torch: {e}").strip()
        if "ours_ms" in row:
            seconds = row["ours_ms"] * 1e-3
            row["gbps"] = set_bytes / seconds / 1e9
            row["bw_frac"] = set_bytes / seconds / ceilings["bandwidth"]
            row["tflops"] = 2 * p.macs() / seconds / 1e12
            row["flop_frac"] = 2 * p.macs() / seconds / ceilings[p.dtype]
        if "ours_ms" in row and "torch_ms" in row:
            row["speedup"] = row["torch_ms"] / row["ours_ms"]
        rows.append(row)
        print(bench_line(row), flush=True)
        del bufs, out_buf, scratch
        if on_row is not None:
            on_row(rows)
    return rows
