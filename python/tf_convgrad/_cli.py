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
