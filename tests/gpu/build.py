"""Builds the harness library: the TF-free GPU kernels plus the C entry points in capi.cu.cc.

Two flavours, from the same sources:

* ``cuda`` (default): nvcc, for the GPU machine. ``-gencode`` for the GPU that PyTorch sees
  (``--arch`` overrides, e.g. ``--arch 80,90``), static cudart, one nvcc per translation unit
  in parallel.
* ``emulate``: g++ against ``emu/cuda_emulation.h``; the kernels run on the CPU as fibers
  (see that header). Used on machines without a GPU.

The library is cached under ``build/gpu-harness/<flavour>-<hash>/`` (``build/`` is git-ignored);
the hash covers the sources and the flags, so an edit rebuilds. Needs only the compiler and the
Python standard library. Run directly to build and print the path::

    python tests/gpu/build.py [--emulate] [--arch 90] [--jobs N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KERNEL_DIR = ROOT / "tf_ops" / "cc" / "kernels" / "gpu"
LIB_NAME = "libtfcg_harness.so"


def kernel_sources() -> list[Path]:
    return sorted(KERNEL_DIR.glob("*.cu.cc"))


def _headers() -> list[Path]:
    return (
        sorted(KERNEL_DIR.glob("*.h"))
        + sorted(KERNEL_DIR.parent.glob("*.h"))  # conv_geometry.h (and the TF side: harmless)
        + sorted((HERE / "emu").glob("*.h"))
    )


def find_nvcc() -> str:
    for candidate in (
        os.environ.get("NVCC"),
        shutil.which("nvcc"),
        "/usr/local/cuda/bin/nvcc",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError("nvcc not found: set NVCC=/path/to/nvcc or put it on PATH")


def detect_arch() -> list[str]:
    """Compute capability of GPU 0 via PyTorch (e.g. ['90']), or sm_90 if that fails."""
    try:
        import torch  # noqa: PLC0415

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return [f"{major}{minor}"]
    except Exception:  # noqa: BLE001 - any failure just means "use the default"
        pass
    return ["90"]


def _digest(flavour: str, flags: list[str]) -> str:
    h = hashlib.sha256()
    h.update(flavour.encode())
    h.update(" ".join(flags).encode())
    srcs = kernel_sources() + [HERE / "capi.cu.cc", HERE / "emu" / "cuda_emulation.cc"]
    for path in srcs + _headers():
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(" ".join(cmd) + "\n" + result.stdout + result.stderr)
        raise RuntimeError(f"build step failed: {Path(cmd[-1]).name if cmd else cmd}")


def build(
    emulate: bool = False,
    arch: list[str] | None = None,
    jobs: int | None = None,
    verbose: bool = True,
) -> Path:
    """Builds (or reuses) the harness library and returns its path."""
    jobs = jobs or os.cpu_count() or 2
    if emulate:
        flavour = "emulate"
        compiler = os.environ.get("CXX", "g++")
        compile_flags = [
            "-std=c++17",
            "-O2",
            "-g",
            "-fPIC",
            "-U_FORTIFY_SOURCE",
            "-fno-strict-aliasing",
            "-ffp-contract=off",
            "-DTF_CONVGRAD_CUDA_EMULATION",
            # The CUDA stand-in, which the kernel sources never include themselves.
            "-include",
            str(HERE / "emu" / "cuda_emulation.h"),
            f"-I{ROOT}",
            "-x",
            "c++",
        ]
        link = [compiler, "-shared", "-o"]
        sources = kernel_sources() + [HERE / "capi.cu.cc", HERE / "emu" / "cuda_emulation.cc"]
    else:
        flavour = "cuda"
        compiler = find_nvcc()
        arch = arch or detect_arch()
        gencode = []
        for a in arch:
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        compile_flags = [
            "-std=c++17",
            "-O3",
            "-Xcompiler",
            "-fPIC",
            "-lineinfo",
            f"-I{ROOT}",
            "-x",
            "cu",
            *gencode,
        ]
        link = [compiler, "-shared", "-cudart", "static", *gencode, "-o"]
        sources = kernel_sources() + [HERE / "capi.cu.cc"]
    out_dir = ROOT / "build" / "gpu-harness" / f"{flavour}-{_digest(flavour, compile_flags)}"
    lib = out_dir / LIB_NAME
    if lib.is_file():
        if verbose:
            print(f"build: reusing {lib}", flush=True)
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    if verbose:
        print(
            f"build: {flavour}: compiling {len(sources)} files with {Path(compiler).name} "
            f"({jobs} jobs) into {out_dir}",
            flush=True,
        )
    objects = [out_dir / (src.name + ".o") for src in sources]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(_run, [compiler, *compile_flags, "-c", "-o", str(obj), str(src)])
            for src, obj in zip(sources, objects, strict=True)
        ]
        for future in futures:
            future.result()
    tmp = out_dir / (LIB_NAME + ".tmp")
    _run([*link, str(tmp), *map(str, objects)])
    tmp.rename(lib)
    if verbose:
        print(f"build: done in {time.monotonic() - start:.1f} s: {lib}", flush=True)
    return lib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulate", action="store_true", help="g++ CPU emulation build")
    parser.add_argument("--arch", help="comma-separated compute capabilities, e.g. 80,90")
    parser.add_argument("--jobs", type=int, help="parallel compiles (default: all CPUs)")
    args = parser.parse_args()
    arch = args.arch.split(",") if args.arch else None
    print(build(emulate=args.emulate, arch=arch, jobs=args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
