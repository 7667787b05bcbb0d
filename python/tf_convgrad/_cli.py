"""Command-line helpers shared by the tools (no TensorFlow import)."""

from __future__ import annotations

import argparse

# Every spelling the tools accept for a dtype, to its canonical (NumPy/TF) name.
DTYPE_ALIASES = {
    "float16": "float16", "f16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "f32": "float32", "fp32": "float32", "float": "float32",
    "float64": "float64", "f64": "float64", "fp64": "float64", "double": "float64",
}  # fmt: skip


def dtype(value: str) -> str:
    """argparse type: a dtype in any accepted spelling -> its canonical name."""
    try:
        return DTYPE_ALIASES[value.lower()]
    except KeyError:
        names = ", ".join(sorted(set(DTYPE_ALIASES.values())))
        raise argparse.ArgumentTypeError(
            f"unknown dtype {value!r}: use one of {names} (or f16, bf16, f32, f64)"
        ) from None


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), for every report that gives a figure."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def library_label(override: str | None, root) -> str:
    """The op library a generated doc used (``TF_CONVGRAD_LIBRARY``, or None), as the doc may name
    it: a path relative to the repository ``root`` (a pathlib.Path), never one outside it."""
    if not override:
        return "the installed tf_convgrad library"
    from pathlib import Path

    path = Path(override).resolve()
    if path.is_relative_to(root):
        return f"`{path.relative_to(root)}` (`TF_CONVGRAD_LIBRARY`)"
    return "a build outside the repository, loaded through `TF_CONVGRAD_LIBRARY`"
