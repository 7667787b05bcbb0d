"""Runs a few cases of each op and dtype with whatever instruction-set level this process got
(``TF_CONVGRAD_ISA``, or cpuid), for ``test_isa.py`` and ``test_qemu.py``.

    python tests/support/isa_worker.py [--quick]

Each case runs twice; the result is compared with the package's float64 reference
(``tf_convgrad.tools.reference``) on the same dtype-rounded inputs, and the two runs bitwise. Prints
one JSON object: ``{"info": tf_convgrad.build_info(), "results": [...]}``, a result being ``{"id",
"err", "tol", "deterministic", "sha256"}`` or ``{"id", "error"}``. Checks nothing itself: the
caller asserts. Small on purpose: under ``qemu-x86_64`` every case costs seconds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import NamedTuple

import ml_dtypes
import numpy as np
import tensorflow as tf
import tf_convgrad
from tf_convgrad.tools import reference
from tf_convgrad.tools.metrics import TOLERANCES as TOL  # the value tests' tolerances

NP_DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}


class Case(NamedTuple):
    op: str  # cbf | dbf | dbi
    x: tuple  # input NHWC (for dbi: the input sizes)
    f: tuple  # filter HWIO
    stride: int
    padding: str
    data_format: str = "NHWC"

    @property
    def id(self) -> str:
        x, f = "x".join(map(str, self.x)), "x".join(map(str, self.f))
        return f"{self.op}-{x}-f{f}-s{self.stride}-{self.padding}-{self.data_format}"


# Channel counts that are not multiples of a vector (16 floats, 8 doubles) and widths that use
# the depthwise window kernels (3 and 5 wide, strides 1 and 2), a grouped and a 1x1 filter.
CASES = [
    Case("cbf", (2, 9, 9, 20), (3, 3, 20, 24), 1, "SAME"),
    Case("cbf", (1, 8, 8, 32), (3, 3, 8, 16), 2, "VALID"),  # 4 groups
    Case("cbf", (2, 6, 6, 16), (1, 1, 16, 40), 1, "VALID"),
    Case("cbf", (2, 7, 7, 12), (3, 3, 12, 8), 1, "SAME", "NCHW"),
    Case("dbf", (2, 10, 10, 35), (3, 3, 35, 1), 1, "SAME"),
    Case("dbf", (1, 11, 11, 17), (5, 5, 17, 2), 2, "SAME"),
    Case("dbf", (2, 9, 9, 24), (3, 3, 24, 1), 1, "VALID", "NCHW"),
    Case("dbi", (2, 10, 10, 35), (3, 3, 35, 1), 1, "SAME"),
    Case("dbi", (1, 11, 11, 20), (5, 5, 20, 2), 2, "VALID"),
    Case("dbi", (2, 9, 9, 24), (3, 3, 24, 1), 1, "SAME", "NCHW"),
]
QUICK = [CASES[0], CASES[4], CASES[8]]
DTYPES = ("float32", "bfloat16", "float16", "float64")


def _out_shape(case: Case) -> tuple:
    n, h, w, c = case.x
    fh, fw, _, m = case.f
    s = case.stride
    if case.padding == "SAME":
        oh, ow = -(-h // s), -(-w // s)
    else:
        oh, ow = (h - fh) // s + 1, (w - fw) // s + 1
    depth = m if case.op == "cbf" else c * m
    return n, oh, ow, depth


def _to_format(a: np.ndarray, data_format: str) -> np.ndarray:
    return a if data_format == "NHWC" else np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _sizes(shape: tuple, data_format: str) -> list[int]:
    n, h, w, c = shape
    return [n, h, w, c] if data_format == "NHWC" else [n, c, h, w]


def run_case(case: Case, dtype: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    t = NP_DTYPES[dtype]
    strides = [1, case.stride, case.stride, 1]
    if case.data_format == "NCHW":
        strides = [1, 1, case.stride, case.stride]
    dy = _to_format(rng.standard_normal(_out_shape(case)).astype(t), case.data_format)
    common = {"strides": strides, "padding": case.padding, "data_format": case.data_format}
    if case.op == "dbi":
        f = rng.standard_normal(case.f).astype(t)
        sizes = _sizes(case.x, case.data_format)

        def ours():
            return tf_convgrad.depthwise_conv2d_native_backprop_input(sizes, f, dy, **common)

        ref = reference.depthwise_conv2d_native_backprop_input(
            sizes, f.astype(np.float64), dy.astype(np.float64), **common
        )
    else:
        x = _to_format(rng.standard_normal(case.x).astype(t), case.data_format)
        if case.op == "cbf":
            fn, ref_fn = tf_convgrad.conv2d_backprop_filter, reference.conv2d_backprop_filter
        else:
            fn = tf_convgrad.depthwise_conv2d_native_backprop_filter
            ref_fn = reference.depthwise_conv2d_native_backprop_filter

        def ours():
            return fn(x, list(case.f), dy, **common)

        ref = ref_fn(x.astype(np.float64), list(case.f), dy.astype(np.float64), **common)
    runs = [np.asarray(ours().numpy()) for _ in range(2)]
    got = runs[0].astype(np.float64)
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    err = float(np.max(np.abs(got - ref))) / scale if np.all(np.isfinite(got)) else float("inf")
    digests = [hashlib.sha256(r.tobytes()).hexdigest() for r in runs]
    return {
        "err": err,
        "tol": TOL[dtype],
        "deterministic": digests[0] == digests[1],
        "sha256": digests[0],
    }


def main(argv: list[str]) -> int:
    cases = QUICK if "--quick" in argv else CASES
    results = []
    for i, case in enumerate(cases):
        for dtype in DTYPES:
            result = {"id": f"{case.id}-{dtype}"}
            try:
                result.update(run_case(case, dtype, seed=1000 + i))
            except (tf.errors.OpError, ValueError) as e:
                result["error"] = f"{type(e).__name__}: {e}"
            results.append(result)
    json.dump({"info": tf_convgrad.build_info(), "results": results}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
