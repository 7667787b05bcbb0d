"""The float64 value a valid hostile case must produce (tests/robustness/test_hostile.py and
scripts/hostile_table.py judge ours, and TF's, by it)."""

from __future__ import annotations

import numpy as np
from tf_convgrad.tools import reference

import helpers
import hostile_cases


def _data(spec: dict) -> np.ndarray:
    """The worker's data for one tensor (``op_task.make_tensor``), rounded to T."""
    rng = np.random.default_rng(spec.get("seed", 0))
    return helpers.round_to(rng.uniform(-1.0, 1.0, spec["shape"]), spec["dtype"])


def value(case: hostile_cases.HostileCase) -> np.ndarray:
    """float64 reference for a valid NHWC case."""
    spec = case.spec
    attrs = spec["attrs"]
    assert attrs.get("data_format", "NHWC") == "NHWC", "value checks are written for NHWC"
    (sizes,) = (s["value"] for s in spec["sizes"].values())
    strides = tuple(attrs["strides"][1:3])
    dilations = tuple(attrs.get("dilations", [1, 1, 1, 1])[1:3])
    pads = attrs.get("explicit_paddings") or [0] * 8
    explicit = ((pads[2], pads[3]), (pads[4], pads[5]))
    first = _data(spec["tensors"]["filter" if case.op == "dbi" else "input"])
    dy = _data(spec["tensors"]["out_backprop"])
    input_shape = sizes if case.op == "dbi" else first.shape
    filter_shape = first.shape if case.op == "dbi" else sizes
    geometry = reference.conv_geometry(
        input_shape[1:3], filter_shape[:2], [1, *strides, 1], attrs["padding"],
        [0, 0, *explicit[0], *explicit[1], 0, 0] if attrs["padding"] == "EXPLICIT" else [],
        "NHWC", [1, *dilations, 1],
    )  # fmt: skip
    out_hw, pads_before = (geometry.out_h, geometry.out_w), (geometry.pad_top, geometry.pad_left)
    assert tuple(out_hw) == dy.shape[1:3], "the case's out_backprop does not fit its geometry"
    shape = tuple(sizes)
    return reference.KERNELS["loops"][case.op](first, dy, shape, strides, dilations, pads_before)
