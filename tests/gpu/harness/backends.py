"""Where buffers live and how a launch is synchronised, and the runner that launches problems.

Two backends with one interface (``upload``, ``empty``, ``poison``, ``ptr``, ``download``,
``sync`` and a ``stream`` handle): :class:`EmuBackend` (host buffers; the emulated kernels run
synchronously on the CPU) and :class:`CudaBackend` (device buffers through PyTorch). The
:class:`Runner` owns the one call of ``tfcg_launch``; the grid, the large cases and the benchmark
all launch through it.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from .capi import DTYPE_CODE, OP_CODE, STORAGE, itemsize
from .problem import Problem


class EmuBackend:
    """Host buffers; the emulated kernels run synchronously on the CPU."""

    name = "emulate"

    def __init__(self):
        self.stream = ctypes.c_void_p(0x1000)  # any non-default handle

    def upload(self, a: np.ndarray, offset: int = 0):
        raw = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
        buf = np.full(max(offset + raw.size, 1), 0xFF, np.uint8)
        buf[offset : offset + raw.size] = raw
        return buf

    def empty(self, nbytes: int):
        return np.full(max(nbytes, 1), 0xFF, np.uint8)

    def poison(self, buf) -> None:
        buf.view(np.uint8).fill(0xFF)

    def ptr(self, buf) -> int:
        return buf.ctypes.data

    def download(self, buf, dtype: str, shape, offset: int = 0) -> np.ndarray:
        n = math.prod(shape) * itemsize(dtype)
        return buf[offset : offset + n].copy().view(STORAGE[dtype]).reshape(shape)

    def sync(self) -> None:
        pass


class CudaBackend:
    """Device buffers through PyTorch, launches on a dedicated (non-default) stream."""

    name = "cuda"

    def __init__(self, torch):
        self.torch = torch
        self.torch_stream = torch.cuda.Stream()
        # Everything (PyTorch's own work included) runs on this one non-default stream, so
        # there are no cross-stream races between uploads, our launches and downloads.
        torch.cuda.set_stream(self.torch_stream)
        self.stream = ctypes.c_void_p(self.torch_stream.cuda_stream)

    def upload(self, a: np.ndarray, offset: int = 0):
        host = self.torch.from_numpy(np.ascontiguousarray(a).view(np.uint8).reshape(-1))
        if offset == 0:
            return host.to("cuda")
        buf = self.empty(offset + host.numel())
        buf[offset:].copy_(host)
        return buf

    def empty(self, nbytes: int):
        return self.torch.full((max(nbytes, 1),), 0xFF, dtype=self.torch.uint8, device="cuda")

    def poison(self, buf) -> None:
        buf.fill_(0xFF)

    def ptr(self, buf) -> int:
        return buf.data_ptr()

    def download(self, buf, dtype: str, shape, offset: int = 0) -> np.ndarray:
        n = math.prod(shape) * itemsize(dtype)
        return buf[offset : offset + n].cpu().numpy().view(STORAGE[dtype]).reshape(shape).copy()

    def sync(self) -> None:
        self.torch_stream.synchronize()


class Runner:
    """Launches problems through the harness library on a backend; counts the launches."""

    def __init__(self, lib, backend):
        self.lib = lib
        self.backend = backend
        self.launches = 0

    def describe(self, p: Problem) -> str:
        """The kernels and plan the library picks for ``p`` (``KernelDescription``)."""
        return self.lib.tfcg_describe(
            OP_CODE[p.op], DTYPE_CODE[p.dtype], p.c_shape, p.c_options
        ).decode()

    def scratch_bytes(self, p: Problem) -> int:
        return int(
            self.lib.tfcg_scratch_bytes(OP_CODE[p.op], DTYPE_CODE[p.dtype], p.c_shape, p.c_options)
        )

    def launch(
        self, p: Problem, first: int, dy: int, out: int, scratch: int, scratch_bytes: int, stream
    ) -> None:
        """Enqueues ``p`` on ``stream`` with the given device addresses.

        Raises:
            RuntimeError: With the CUDA error string if the launch fails.
        """
        err = self.lib.tfcg_launch(
            OP_CODE[p.op],
            DTYPE_CODE[p.dtype],
            p.c_shape,
            first,
            dy,
            out,
            scratch,
            scratch_bytes,
            stream,
            p.c_options,
        )
        self.launches += 1
        if err != 0:
            raise RuntimeError(f"launch failed: {self.lib.tfcg_error_string(err).decode()}")

    def run(
        self,
        p: Problem,
        first: np.ndarray,
        dy: np.ndarray,
        repeats: int = 2,
        schedules: tuple = (0,),
    ) -> list[np.ndarray]:
        """Runs `repeats` times (output and scratch poisoned each time); returns the outputs.

        With the harness option ``misalign``, every tensor starts one element past an aligned
        address, which turns off the kernels' vector loads and stores.
        """
        b = self.backend
        offset = itemsize(p.dtype) if p.options.get("misalign") else 0
        first_buf, dy_buf = b.upload(first, offset), b.upload(dy, offset)
        out_bytes = math.prod(p.out_shape) * itemsize(p.dtype)
        scratch_bytes = self.scratch_bytes(p)
        out_buf, scratch_buf = b.empty(offset + out_bytes), b.empty(scratch_bytes)
        ptrs = (b.ptr(first_buf) + offset, b.ptr(dy_buf) + offset, b.ptr(out_buf) + offset)
        results = []
        for r in range(repeats):
            self.lib.tfcg_emu_set_schedule(schedules[r % len(schedules)], 1234 + r)
            b.poison(out_buf)
            b.poison(scratch_buf)
            self.launch(p, *ptrs, b.ptr(scratch_buf), scratch_bytes, b.stream)
            b.sync()
            results.append(b.download(out_buf, p.dtype, p.out_shape, offset))
        self.lib.tfcg_emu_set_schedule(0, 0)
        return results
