"""The validation probes: invalid (and edge-valid) calls of the three ops, each with what TF's
native kernels do and what ours must do (``Probe.expect``, see tests/robustness/test_validation.py,
which runs them). The hostile-input corpus (hostile_cases.py) contains every probe and adds more.
"""

from __future__ import annotations

from typing import NamedTuple

BIG = 2**31 - 1


class Probe(NamedTuple):
    id: str
    op: str
    spec: dict  # {"tensors": ..., "sizes": ..., "attrs": ...}
    expect: str  # "parity" | "ours_invalid" | "ours_zeros"
    pattern: str | None  # regex our kernel message must contain (TF's wording), None: not checked
    tf_in_function: bool = True
    zeros_shape: tuple | None = None  # for ours_zeros


def _base(op: str) -> dict:
    """A valid problem: x [2,5,5,3], 3x3 filter, SAME, stride 1 (CBF Cout 2; depthwise M 2)."""
    if op == "cbf":
        tensors = {"input": [2, 5, 5, 3], "out_backprop": [2, 5, 5, 2]}
        sizes = {"filter_sizes": [3, 3, 3, 2]}
    elif op == "dbf":
        tensors = {"input": [2, 5, 5, 3], "out_backprop": [2, 5, 5, 6]}
        sizes = {"filter_sizes": [3, 3, 3, 2]}
    else:
        tensors = {"filter": [3, 3, 3, 2], "out_backprop": [2, 5, 5, 6]}
        sizes = {"input_sizes": [2, 5, 5, 3]}
    return {
        "tensors": {name: {"shape": shape, "dtype": "float32"} for name, shape in tensors.items()},
        "sizes": {name: {"value": value, "dtype": "int32"} for name, value in sizes.items()},
        "attrs": {"strides": [1, 1, 1, 1], "padding": "SAME"},
    }


def _spec(op, tensors=None, dtypes=None, sizes=None, sizes_dtype=None, **attrs) -> dict:
    spec = _base(op)
    for name, shape in (tensors or {}).items():
        spec["tensors"][name]["shape"] = shape
    for name, dtype in (dtypes or {}).items():
        spec["tensors"][name]["dtype"] = dtype
    (sizes_name,) = spec["sizes"]
    if sizes is not None:
        spec["sizes"][sizes_name]["value"] = sizes
    if sizes_dtype is not None:
        spec["sizes"][sizes_name]["dtype"] = sizes_dtype
    spec["attrs"].update(attrs)
    return spec


def _probes(op: str) -> list[Probe]:
    depthwise = op != "cbf"
    first = "filter" if op == "dbi" else "input"  # the T tensor that is not out_backprop
    out_c = 6 if depthwise else 2
    sizes_name = "input_sizes" if op == "dbi" else "filter_sizes"
    sizes4 = [2, 5, 5, 3] if op == "dbi" else [3, 3, 3, 2]
    stride_gt0 = r"(strides should be larger than 0|Stride must be > 0)"
    dims4 = r"must be 4-dimensional"
    explicit = {"padding": "EXPLICIT"}

    def P(name, spec, pattern, **kw):  # noqa: N802
        return Probe(f"{op}-{name}", op, spec, "parity", pattern, **kw)

    def invalid(name, spec, pattern):
        return Probe(f"{op}-{name}", op, spec, "ours_invalid", pattern)

    probes = [
        P("strides_len3", _spec(op, strides=[1, 1, 1]), "strides field must specify 4 dimensions"),
        P(
            "strides_len5",
            _spec(op, strides=[1, 1, 1, 1, 1]),
            "strides field must specify 4 dimensions",
        ),
        P(
            "stride_batch2",
            _spec(op, strides=[2, 1, 1, 1]),
            "strides in the batch and depth dimensions",
        ),
        P(
            "stride_depth2",
            _spec(op, strides=[1, 1, 1, 2]),
            "strides in the batch and depth dimensions",
        ),
        P("stride_zero", _spec(op, strides=[1, 0, 0, 1]), stride_gt0, tf_in_function=False),
        P("stride_zero_rows", _spec(op, strides=[1, 0, 1, 1]), None, tf_in_function=False),
        P("stride_negative", _spec(op, strides=[1, -1, -1, 1]), stride_gt0),
        P("padding_full", _spec(op, padding="FULL"), None),
        P("data_format_nchw_vect_c", _spec(op, data_format="NCHW_VECT_C"), None),
        P("dtype_mismatch", _spec(op, dtypes={"out_backprop": "float64"}), None),
        P("dtype_int32", _spec(op, dtypes={first: "int32", "out_backprop": "int32"}), None),
        P("sizes_int64", _spec(op, sizes_dtype="int64"), None),
        P(
            "explicit_len6",
            _spec(op, explicit_paddings=[0, 0, 1, 1, 1, 1], **explicit),
            "explicit_paddings attribute must contain 8 values",
        ),
        P(
            "explicit_negative",
            _spec(op, explicit_paddings=[0, 0, -1, 1, 1, 1, 0, 0], **explicit),
            "All elements of explicit_paddings must be nonnegative",
        ),
        P(
            "explicit_batch_pad",
            _spec(op, explicit_paddings=[1, 1, 1, 1, 1, 1, 0, 0], **explicit),
            "Nonzero explicit padding in the batch or depth dimensions",
        ),
        P(
            "explicit_depth_pad",
            _spec(op, explicit_paddings=[0, 0, 1, 1, 1, 1, 0, 1], **explicit),
            "Nonzero explicit padding in the batch or depth dimensions",
        ),
        P(
            "explicit_depth_pad_nchw",
            _spec(op, explicit_paddings=[0, 0, 1, 0, 1, 1, 1, 1], data_format="NCHW", **explicit),
            "Nonzero explicit padding in the batch or depth dimensions",
        ),
        P(
            "explicit_with_same",
            _spec(op, explicit_paddings=[0, 0, 1, 1, 1, 1, 0, 0]),
            "explicit_paddings attribute must be empty if the padding attribute is not EXPLICIT",
        ),
        P(
            "explicit_with_valid",
            _spec(op, explicit_paddings=[0, 0, 1, 1, 1, 1, 0, 0], padding="VALID"),
            "explicit_paddings attribute must be empty if the padding attribute is not EXPLICIT",
        ),
        P(
            "explicit_2pow62_overflow",
            _spec(op, explicit_paddings=[0, 0, 2**62, 2**62, 1, 1, 0, 0], **explicit),
            # TF's int64 sum wraps ("would be negative: -9223372036854775805"); a clearer
            # message naming the overflow is fine too.
            "(Computed output size would be negative|padding is too large)",
        ),
        P(
            "explicit_2pow31_mismatch",
            _spec(op, explicit_paddings=[0, 0, 2**31, 2**31, 1, 1, 0, 0], **explicit),
            "doesn't match computed",
        ),
        P("sizes_negative", _spec(op, sizes=[-1] + sizes4[1:]), "must be >= 0"),
        P("sizes_minus3", _spec(op, sizes=sizes4[:3] + [-3]), "must be >= 0"),
        P("sizes_overflow", _spec(op, sizes=[BIG] * 4), r"(2\*\*63 - 1 elements|overflow)"),
        P("sizes_scalar", _spec(op, sizes=5), rf"{sizes_name} input must be 1-dim"),
        P(
            "sizes_rank2",
            _spec(op, sizes=[sizes4[:2], sizes4[2:]]),
            rf"{sizes_name} input must be 1-dim",
        ),
        P("sizes_len0", _spec(op, sizes=[]), dims4),
        P("sizes_len3", _spec(op, sizes=sizes4[:3]), dims4),
        P("sizes_len5", _spec(op, sizes=sizes4 + [1]), dims4),
        P(
            f"{first}_rank3",
            _spec(op, tensors={first: [5, 5, 3] if op != "dbi" else [3, 3, 3]}),
            dims4,
        ),
        P(
            f"{first}_rank5",
            _spec(op, tensors={first: [1, 2, 5, 5, 3] if op != "dbi" else [1, 3, 3, 3, 2]}),
            dims4,
        ),
        P("out_backprop_rank3", _spec(op, tensors={"out_backprop": [2, 5, 5 * out_c]}), dims4),
        P("out_backprop_rank5", _spec(op, tensors={"out_backprop": [1, 2, 5, 5, out_c]}), dims4),
        P(
            "batch_mismatch",
            _spec(op, tensors={"out_backprop": [3, 5, 5, out_c]}),
            "input and out_backprop must have the same batch size",
        ),
        P(
            "rows_mismatch",
            _spec(op, tensors={"out_backprop": [2, 4, 5, out_c]}),
            "doesn't match computed",
        ),
        P(
            "cols_mismatch",
            _spec(op, tensors={"out_backprop": [2, 5, 6, out_c]}),
            "doesn't match computed",
        ),
        P(
            "rows_mismatch_stride2",
            _spec(op, tensors={"out_backprop": [2, 2, 3, out_c]}, strides=[1, 2, 2, 1]),
            "doesn't match computed",
        ),
        P(
            "valid_negative_output",
            _spec(
                op,
                tensors={
                    first: [4, 4, 3, 2] if op == "dbi" else [2, 2, 2, 3],
                    "out_backprop": [2, 1, 1, out_c],
                },
                sizes=[2, 2, 2, 3] if op == "dbi" else [4, 4, 3, 2],
                padding="VALID",
            ),
            "Computed output size would be negative",
        ),  # fmt: skip
    ]
    if op == "cbf":
        probes += [
            P(
                "input_depth_not_divisible",
                _spec(op, tensors={"input": [2, 5, 5, 5]}),
                "input depth must be evenly divisible by filter depth",
            ),
            P(
                "out_depth_mismatch",
                _spec(op, tensors={"out_backprop": [2, 5, 5, 3]}),
                "filter and out_backprop must have the same out_depth",
            ),
            P(
                "filter_depth_zero",
                _spec(op, sizes=[3, 3, 0, 2]),
                "filter depth must be strictly great",
            ),
            invalid(
                "grouped_out_depth_not_divisible_by_groups",
                _spec(
                    op,
                    tensors={"input": [2, 5, 5, 6], "out_backprop": [2, 5, 5, 3]},
                    sizes=[3, 3, 3, 3],
                ),
                r"(divisible|group)",
            ),
            P(
                "dilations_len3",
                _spec(op, dilations=[1, 1, 1]),
                "dilations field must specify 4 dimensions",
            ),
            P(
                "dilations_batch2",
                _spec(op, dilations=[2, 1, 1, 1]),
                "dilations in the batch and depth",
            ),
            P(
                "dilations_depth2",
                _spec(op, dilations=[1, 1, 1, 2]),
                "dilations in the batch and depth",
            ),
            P("dilations_zero", _spec(op, dilations=[1, 0, 0, 1]), "[Dd]ilat"),
            P("dilations_negative", _spec(op, dilations=[1, -2, 1, 1]), "[Dd]ilat"),
            P(
                "huge_filter_allocation",
                _spec(
                    op,
                    tensors={"input": [1, 1, 1, 1], "out_backprop": [1, 1, 1, 1]},
                    sizes=[2**30, 2**30, 1, 1],
                ),
                None,
            ),
            Probe(
                "cbf-zero_batch_huge_explicit_output",
                op,
                _spec(
                    op,
                    tensors={"input": [0, 5, 5, 1], "out_backprop": [0, 2**32 + 3, 3, 1]},
                    sizes=[3, 3, 1, 1],
                    padding="EXPLICIT",
                    explicit_paddings=[0, 0, 2**31, 2**31, 0, 0, 0, 0],
                ),
                "ours_zeros",
                None,
                zeros_shape=(3, 3, 1, 1),
            ),
        ]
    else:
        probes += [
            P(
                "in_depth_mismatch",
                _spec(
                    op,
                    **(
                        {"tensors": {"filter": [3, 3, 4, 2]}}
                        if op == "dbi"
                        else {"sizes": [3, 3, 4, 2]}
                    ),
                ),
                "input and filter must have the same in_depth",
            ),
            P(
                "multiplier_mismatch",
                _spec(op, tensors={"out_backprop": [2, 5, 5, 5]}),
                r"depth_multiplier \* in_depth not equal to out_depth",
            ),
            invalid("dilations_len3", _spec(op, dilations=[1, 1, 1]), "[Dd]ilation"),
            invalid("dilations_len5", _spec(op, dilations=[1, 1, 1, 1, 1]), "[Dd]ilation"),
            invalid("dilations_batch2", _spec(op, dilations=[2, 1, 1, 1]), "[Dd]ilation"),
            invalid("dilations_depth2", _spec(op, dilations=[1, 1, 1, 2]), "[Dd]ilation"),
            invalid("dilations_zero", _spec(op, dilations=[1, 0, 0, 1]), "[Dd]ilat"),
            invalid("dilations_negative", _spec(op, dilations=[1, -2, 1, 1]), "[Dd]ilat"),
        ]
        if op == "dbf":
            probes.append(P("huge_filter_allocation", _spec(op, sizes=[2**30, 2**30, 3, 2]), None))
        else:
            probes.append(
                P(
                    "huge_input_allocation",
                    _spec(
                        op,
                        tensors={"out_backprop": [1, 1, 1, 6]},
                        sizes=[1, 2**20, 2**20, 3],
                        strides=[1, 2**20, 2**20, 1],
                    ),
                    None,
                )
            )
    return probes


PROBES = _probes("cbf") + _probes("dbf") + _probes("dbi")
