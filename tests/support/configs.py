"""The value tests' problems: the tiers of :mod:`tf_convgrad.tools.problems`, with test ids.

A case is a :class:`~tf_convgrad.tools.problems.Problem` (NHWC / HWIO); its id says which op, what
is awkward about the geometry, and the padding, e.g. ``dbf-unequal_strides_dilated-EXPLICIT``.
NCHW variants are produced by the tests, which transpose the same data.

* ``SMALL`` (tier ``"awkward"``) and ``RANDOM`` (tier ``"random"``): the default run, checked
  against the float64 reference's loops.
* ``SLOW`` (tier ``"layers"``): network layer shapes, ``@slow``, checked against its einsum form.
* ``DBI_STREAM`` (tier ``"streaming"``): DBI problems over the CPU core's streaming threshold.

What this module adds to the tiers is test policy: which dtype and format each case meets
(:func:`combos`) and the dtypes TF's oneDNN kernels are compared in.
"""

from __future__ import annotations

import zlib

from tf_convgrad._optable import KEYS
from tf_convgrad._optable import OPS as _OPS
from tf_convgrad.tools import problems
from tf_convgrad.tools.metrics import TOLERANCES

__all__ = [
    "DBI_STREAM",
    "DEFAULT",
    "DTYPES",
    "FORMATS",
    "ONEDNN_DTYPES",
    "OPS",
    "OP_NAMES",
    "RANDOM",
    "SLOW",
    "SMALL",
    "TOL",
    "Case",
    "Geometry",
    "combos",
    "expand",
    "make_case",
]

#: The op keys, and TF's name of each.
OPS = KEYS
OP_NAMES = {key: op.tf_name for key, op in _OPS.items()}

#: A test case is a problem; tests write their own geometries as :class:`Geometry` rows.
Case = problems.Problem
Geometry = problems.Geometry
expand = problems.expand


def make_case(op: str, geometry: Geometry, padding: str) -> Case | None:
    """The case for one padding, or None where that padding gives a negative output size."""
    return geometry.problem(op, padding)


SMALL = problems.tier("awkward")
RANDOM = problems.tier("random")
SLOW = problems.tier("layers")
DBI_STREAM = problems.tier("streaming")

# The value tests of the default run.
DEFAULT = SMALL + RANDOM
_RANDOM_IDS = {case.id for case in RANDOM}

DTYPES = ("float64", "float32", "float16", "bfloat16")
FORMATS = ("NHWC", "NCHW")
ONEDNN_DTYPES = ("float32", "bfloat16")  # TF's oneDNN kernels: no float64; half not on this CPU

#: Norm-relative tolerance against float64 computed on the same T-rounded inputs:
#: max|ours - ref| / max(max|ref|, tiny).
TOL = TOLERANCES


def combos(case: Case, dtypes=None, formats=None) -> list[tuple[str, str]]:
    """The (dtype, data_format) pairs a case is tested with, among ``dtypes`` x ``formats``.

    Hand-written cases get every pair. A random case gets two, drawn from its id: one of
    float64/float32 and one of float16/bfloat16, each with a drawn format (keeps the default
    run at a few thousand tests while every dtype and format still meets random geometries).
    """
    dtypes = DTYPES if dtypes is None else dtypes
    formats = FORMATS if formats is None else formats
    if case.id not in _RANDOM_IDS:
        return [(dtype, fmt) for dtype in dtypes for fmt in formats]
    bits = zlib.crc32(case.id.encode())
    drawn = [
        (("float64", "float32")[bits & 1], FORMATS[(bits >> 1) & 1]),
        (("float16", "bfloat16")[(bits >> 2) & 1], FORMATS[(bits >> 3) & 1]),
    ]
    return [(dtype, fmt) for dtype, fmt in drawn if dtype in dtypes and fmt in formats]


# Known values from TF's own conv_ops_test.py (data = arange(1, n + 1)); independent of all oracles.
# (id, input NHWC, filter HWIO, strides (h, w), padding, expected dw flattened)
# fmt: off
GOLDEN = [
    ("2x2_depth1_valid", (1, 2, 3, 1), (2, 2, 1, 1), (1, 1), "VALID", [5, 8, 14, 17]),
    (
        "2x2_depth3_valid",
        (1, 2, 3, 3),
        (2, 2, 3, 3),
        (1, 1),
        "VALID",
        [17, 22, 27, 22, 29, 36, 27, 36, 45, 32, 43, 54, 37, 50, 63, 42, 57, 72,
         62, 85, 108, 67, 92, 117, 72, 99, 126, 77, 106, 135, 82, 113, 144, 87, 120, 153],
    ),
    ("2x2_stride1x2_valid", (1, 3, 6, 1), (2, 2, 1, 1), (1, 2), "VALID", [161, 182, 287, 308]),
    ("1x1_stride2_same", (1, 4, 4, 1), (1, 1, 1, 1), (2, 2), "SAME", [78]),
    ("kernel_eq_input_valid", (1, 2, 2, 1), (2, 2, 1, 2), (1, 1), "VALID",
     [1, 2, 2, 4, 3, 6, 4, 8]),
]
# fmt: on
