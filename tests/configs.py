"""Problem tables for the value tests, in tiers (CUTLASS conv2d_problems.h style).

Every geometry is written once in NHWC/HWIO terms and crossed with the paddings it lists; the
case id says which op, what is awkward about the geometry, and the padding, e.g.
``dbf-unequal_strides_dilated-EXPLICIT``. NCHW variants are produced by the tests, which transpose
the same data.

* ``SMALL``: awkward little problems, default run, checked against the naive float64 loops.
* ``SLOW``: MobileNetV2 / EfficientNet / ResNet-50 layer shapes (batch reduced), ``@slow``, checked
  against the vectorised float64 reference.
"""

from __future__ import annotations

import random
import zlib
from typing import NamedTuple

import reference

OPS = ("cbf", "dbf", "dbi")
OP_NAMES = {
    "cbf": "Conv2DBackpropFilter",
    "dbf": "DepthwiseConv2dNativeBackpropFilter",
    "dbi": "DepthwiseConv2dNativeBackpropInput",
}
PADDINGS = ("SAME", "VALID", "EXPLICIT")
DEFAULT_EXPLICIT = ((1, 2), (2, 0))  # asymmetric on purpose


class Geometry(NamedTuple):
    name: str
    input_shape: tuple  # (B, H, W, C), NHWC
    filter_shape: tuple  # (fh, fw, in, out) for CBF (in = C / groups); (fh, fw, C, M) depthwise
    strides: tuple = (1, 1)  # (s_h, s_w)
    dilations: tuple = (1, 1)  # (d_h, d_w)
    paddings: tuple = PADDINGS
    explicit: tuple = DEFAULT_EXPLICIT  # ((top, bottom), (left, right)), used for EXPLICIT


class Case(NamedTuple):
    id: str
    op: str  # "cbf" | "dbf" | "dbi"
    input_shape: tuple  # NHWC
    filter_shape: tuple  # HWIO
    strides: tuple  # (s_h, s_w)
    padding: str
    dilations: tuple  # (d_h, d_w)
    explicit: tuple  # ((top, bottom), (left, right)); ((0, 0), (0, 0)) unless EXPLICIT
    out_hw: tuple  # (Ho, Wo)
    pads_before: tuple  # (top, left) as the ops compute them

    @property
    def out_channels(self) -> int:
        if self.op == "cbf":
            return self.filter_shape[3]
        return self.filter_shape[2] * self.filter_shape[3]

    @property
    def out_shape(self) -> tuple:
        """Shape of out_backprop, NHWC."""
        return (self.input_shape[0], *self.out_hw, self.out_channels)

    @property
    def result_shape(self) -> tuple:
        """Shape of the op's output, NHWC for DBI, HWIO otherwise."""
        return self.input_shape if self.op == "dbi" else self.filter_shape

    @property
    def groups(self) -> int:
        if self.op != "cbf" or self.filter_shape[2] == 0:
            return 1
        return self.input_shape[3] // self.filter_shape[2]

    @property
    def is_empty(self) -> bool:
        """Some operand or the result has no elements."""
        sizes = (self.input_shape, self.filter_shape, self.out_shape, self.result_shape)
        return any(0 in s for s in sizes)

    @property
    def terms_per_output(self) -> int:
        """Upper bound on the number of products summed into one output element."""
        if self.op == "dbi":
            return self.filter_shape[0] * self.filter_shape[1] * self.filter_shape[3]
        return self.input_shape[0] * self.out_hw[0] * self.out_hw[1]


def make_case(op: str, geometry: Geometry, padding: str) -> Case | None:
    """The case for one padding, or None where that padding gives a negative output size."""
    explicit = geometry.explicit if padding == "EXPLICIT" else ((0, 0), (0, 0))
    try:
        out_hw, pads_before = reference.conv_geometry(
            geometry.input_shape[1:3],
            geometry.filter_shape[:2],
            geometry.strides,
            geometry.dilations,
            padding,
            explicit,
        )
    except ValueError:
        return None
    return Case(
        id=f"{op}-{geometry.name}-{padding}",
        op=op,
        input_shape=tuple(geometry.input_shape),
        filter_shape=tuple(geometry.filter_shape),
        strides=tuple(geometry.strides),
        padding=padding,
        dilations=tuple(geometry.dilations),
        explicit=explicit,
        out_hw=out_hw,
        pads_before=pads_before,
    )


def expand(op: str, geometries) -> list[Case]:
    cases = []
    for geometry in geometries:
        for padding in geometry.paddings:
            case = make_case(op, geometry, padding)
            if case is not None:
                cases.append(case)
    return cases


G = Geometry

# --------------------------------------------------------------------------------------------------
# SMALL tier: awkward little problems
# --------------------------------------------------------------------------------------------------

# Conv2DBackpropFilter. filter_shape = (fh, fw, C / groups, Cout).
CBF_SMALL = [
    G("1x1", (2, 5, 5, 3), (1, 1, 3, 4)),
    G("1x1_stride2_gt_filter", (2, 6, 5, 3), (1, 1, 3, 2), strides=(2, 2)),
    G("filter_eq_input", (2, 4, 3, 2), (4, 3, 2, 3), explicit=((0, 0), (0, 0))),
    G("stride3_gt_filter2", (1, 9, 8, 2), (2, 2, 2, 3), strides=(3, 3)),
    G("odd_3x5_filter_odd_hw", (3, 7, 9, 5), (3, 5, 5, 3), strides=(2, 1)),
    G("batch1_one_channel", (1, 6, 6, 1), (3, 3, 1, 1)),
    G("unequal_strides", (2, 8, 7, 3), (3, 2, 3, 2), strides=(1, 3)),
    G("dilated2", (2, 7, 8, 2), (3, 3, 2, 2), dilations=(2, 2)),
    G("unequal_strides_dilated", (2, 9, 10, 3), (2, 3, 3, 2), strides=(2, 1), dilations=(1, 3)),
    G("stride2_dilated2", (1, 9, 9, 2), (3, 3, 2, 3), strides=(2, 2), dilations=(2, 2)),
    G("grouped_g3", (2, 5, 6, 6), (3, 3, 2, 6)),
    G("grouped_per_channel_g4", (1, 5, 5, 4), (3, 3, 1, 8), strides=(2, 1)),
    G(
        "grouped_dilated_g2",
        (2, 6, 7, 4),
        (2, 2, 2, 4),
        dilations=(2, 1),
        explicit=((0, 3), (1, 0)),
    ),
    G(
        "filter_gt_input",
        (1, 2, 3, 2),
        (4, 4, 2, 1),
        paddings=("SAME", "EXPLICIT"),
        explicit=((2, 1), (0, 3)),
    ),
    G(
        "explicit_big_asym_stride3",
        (2, 5, 4, 2),
        (2, 3, 2, 3),
        strides=(3, 2),
        explicit=((0, 3), (4, 0)),
    ),
    G("many_out_channels", (1, 4, 4, 2), (2, 2, 2, 17)),
    G(
        "pads_gt_filter",
        (1, 4, 4, 2),
        (2, 2, 2, 3),
        paddings=("EXPLICIT",),
        explicit=((3, 4), (5, 2)),
    ),
    G("stride_gt_input", (2, 3, 3, 2), (2, 2, 2, 2), strides=(4, 5)),
    G("1x7_filter", (1, 5, 11, 3), (1, 7, 3, 2)),
    G("7x1_filter_dilated2", (1, 15, 4, 2), (7, 1, 2, 2), dilations=(2, 1)),
    G("medium_c19_to_c23", (3, 13, 17, 19), (3, 3, 19, 23)),
    G("medium_c33_to_c35_s2", (2, 11, 13, 33), (3, 3, 33, 35), strides=(2, 2)),
    G("medium_grouped_g4", (2, 9, 11, 32), (3, 3, 8, 12)),
    G("1x1_grouped_g2", (2, 5, 6, 4), (1, 1, 2, 6)),
    G("cout300_tiled", (1, 3, 4, 2), (2, 2, 2, 300)),
    # fh*fw*C = 36864 columns: an im2col chunk of 8 MiB holds < 64 rows, so 121+ output
    # positions span several chunks.
    G("c4096_many_chunks", (1, 11, 11, 4096), (3, 3, 4096, 2)),
    G("empty_batch", (0, 5, 5, 3), (3, 3, 3, 2)),
    G("empty_out_channels", (2, 4, 4, 3), (2, 2, 3, 0)),
    G("empty_out_spatial_valid", (2, 2, 2, 3), (3, 3, 3, 4), strides=(2, 2), paddings=("VALID",)),
    G("empty_input_rows_same", (1, 0, 4, 2), (3, 3, 2, 2), paddings=("SAME",)),
]

# Depthwise (both ops). filter_shape = (fh, fw, C, M).
DW_SMALL = [
    G("1x1_m1", (2, 5, 5, 3), (1, 1, 3, 1)),
    G("1x1_m4_stride2", (2, 6, 5, 3), (1, 1, 3, 4), strides=(2, 2)),
    G("filter_eq_input", (1, 4, 5, 2), (4, 5, 2, 2), explicit=((0, 0), (0, 0))),
    G("stride3_gt_filter2", (2, 9, 9, 3), (2, 2, 3, 1), strides=(3, 3)),
    G("odd_3x5_filter_odd_hw", (3, 7, 9, 5), (3, 5, 5, 2), strides=(2, 2)),
    G("batch1_one_channel", (1, 6, 6, 1), (3, 3, 1, 1)),
    G("one_channel_m16", (1, 5, 6, 1), (3, 3, 1, 16)),
    G("m8", (2, 4, 4, 3), (2, 2, 3, 8)),
    G("unequal_strides", (2, 8, 7, 3), (3, 3, 3, 2), strides=(1, 2)),
    G("dilated2", (2, 7, 8, 2), (3, 3, 2, 2), dilations=(2, 2)),
    G("unequal_strides_dilated", (2, 9, 10, 3), (2, 3, 3, 2), strides=(2, 1), dilations=(1, 3)),
    G("stride2_dilated2", (1, 9, 9, 2), (3, 3, 2, 1), strides=(2, 2), dilations=(2, 2)),
    G(
        "filter_gt_input",
        (1, 2, 3, 2),
        (4, 4, 2, 1),
        paddings=("SAME", "EXPLICIT"),
        explicit=((2, 1), (0, 3)),
    ),
    G(
        "explicit_big_asym_stride3",
        (2, 5, 4, 2),
        (2, 3, 2, 2),
        strides=(3, 3),
        explicit=((0, 3), (4, 0)),
    ),
    G("many_channels_17", (1, 4, 5, 17), (3, 3, 17, 1)),
    G(
        "pads_gt_filter",
        (1, 4, 4, 2),
        (2, 2, 2, 3),
        paddings=("EXPLICIT",),
        explicit=((3, 4), (5, 2)),
    ),
    G("stride_gt_input", (2, 3, 3, 2), (2, 2, 2, 2), strides=(4, 5)),
    G("1x7_filter", (1, 5, 11, 3), (1, 7, 3, 2)),
    G("7x1_filter_dilated2", (1, 15, 4, 2), (7, 1, 2, 2), dilations=(2, 1)),
    G("medium_c33_m3", (2, 11, 13, 33), (3, 3, 33, 3)),
    G("medium_c64_s2", (2, 16, 16, 64), (3, 3, 64, 1), strides=(2, 2)),
    G("medium_5x5_c24", (1, 12, 12, 24), (5, 5, 24, 1)),
    G("multiplier0", (2, 4, 4, 2), (3, 3, 2, 0)),
    G("empty_batch", (0, 5, 5, 2), (3, 3, 2, 2)),
    G("empty_channels", (1, 4, 4, 0), (3, 3, 0, 2), paddings=("SAME",)),
    G("empty_out_spatial_valid", (1, 2, 2, 2), (3, 3, 2, 2), strides=(2, 2), paddings=("VALID",)),
]

SMALL = expand("cbf", CBF_SMALL) + expand("dbf", DW_SMALL) + expand("dbi", DW_SMALL)


# --------------------------------------------------------------------------------------------------
# RANDOM tier: seeded random small geometries (default run), to reach combinations nobody wrote
# down. The id spells the whole geometry, so a failure can be reproduced from its name.
# --------------------------------------------------------------------------------------------------


def random_cases(op: str, count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < count:
        batch = rng.choice((0, 1, 1, 2, 2, 3)) if rng.random() < 0.9 else 0
        height, width = rng.randint(1, 11), rng.randint(1, 11)
        fh, fw = rng.randint(1, 4), rng.randint(1, 4)
        strides = (rng.randint(1, 4), rng.randint(1, 4))
        dilations = (rng.choice((1, 1, 2, 3)), rng.choice((1, 1, 2, 3)))
        explicit = tuple((rng.randint(0, 4), rng.randint(0, 4)) for _ in range(2))
        padding = rng.choice(PADDINGS)
        if op == "cbf":
            groups = rng.choice((1, 1, 2, 3))
            cin_f, cout = rng.randint(1, 5), groups * rng.randint(1, 5)
            channels, filter_shape = groups * cin_f, (fh, fw, cin_f, cout)
            depth = f"c{channels}g{groups}o{cout}"
        else:
            channels, mult = rng.randint(1, 9), rng.choice((1, 1, 2, 3, 5))
            filter_shape = (fh, fw, channels, mult)
            depth = f"c{channels}m{mult}"
        name = (
            f"rand{len(cases):02d}_b{batch}_{height}x{width}_{depth}_k{fh}x{fw}"
            f"_s{strides[0]}x{strides[1]}_d{dilations[0]}x{dilations[1]}"
        )
        if padding == "EXPLICIT":
            name += "_p" + "".join(str(p) for pair in explicit for p in pair)
        geometry = Geometry(
            name, (batch, height, width, channels), filter_shape, strides, dilations, (padding,),
            explicit,
        )  # fmt: skip
        case = make_case(op, geometry, padding)
        if case is not None:
            cases.append(case)
    return cases


RANDOM = random_cases("cbf", 60, 1) + random_cases("dbf", 60, 2) + random_cases("dbi", 60, 3)
_RANDOM_IDS = {case.id for case in RANDOM}

# The value tests of the default run.
DEFAULT = SMALL + RANDOM


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


# --------------------------------------------------------------------------------------------------
# SLOW tier: real layer shapes (batch reduced to keep the float64 reference and TF's slow
# 16-bit kernels affordable on two cores)
# --------------------------------------------------------------------------------------------------

SAME_ONLY = ("SAME",)
VALID_ONLY = ("VALID",)
S2 = {"strides": (2, 2)}
SAME, VALID = {"paddings": SAME_ONLY}, {"paddings": VALID_ONLY}
PAD3 = {"paddings": ("EXPLICIT",), "explicit": ((3, 3), (3, 3))}  # Keras ZeroPadding2D(3)
PAD01 = {"paddings": ("EXPLICIT",), "explicit": ((0, 1), (0, 1))}  # Keras correct_pad, stride 2
DIL2_PAD2 = {"dilations": (2, 2), "paddings": ("EXPLICIT",), "explicit": ((2, 2), (2, 2))}

CBF_SLOW = [
    G("rn50_stem_230x230x3_k7_s2", (2, 230, 230, 3), (7, 7, 3, 64), **S2, **VALID),
    G("rn50_stem_224x224x3_k7_s2_pad3", (2, 224, 224, 3), (7, 7, 3, 64), **S2, **PAD3),
    G("rn50_56x56x64_k3", (2, 56, 56, 64), (3, 3, 64, 64), **SAME),
    G("rn50_56x56x64_to_256_k1", (2, 56, 56, 64), (1, 1, 64, 256), **SAME),
    G("rn50_56x56x256_to_64_k1", (2, 56, 56, 256), (1, 1, 256, 64), **SAME),
    G("rn50_56x56x256_to_512_k1_s2", (2, 56, 56, 256), (1, 1, 256, 512), **S2, **SAME),
    G("rn50_56x56x128_k3_s2", (2, 56, 56, 128), (3, 3, 128, 128), **S2, **SAME),
    G("rn50_28x28x128_k3_batch8", (8, 28, 28, 128), (3, 3, 128, 128), **SAME),
    G("rn50_14x14x256_k3", (4, 14, 14, 256), (3, 3, 256, 256), **SAME),
    G("rn50_14x14x1024_to_256_k1", (4, 14, 14, 1024), (1, 1, 1024, 256), **SAME),
    G("rn50_7x7x512_to_2048_k1", (4, 7, 7, 512), (1, 1, 512, 2048), **SAME),
    G("valid_30x30x128_k3", (2, 30, 30, 128), (3, 3, 128, 128), **VALID),
    G("resnext_28x28x128_g32_k3", (2, 28, 28, 128), (3, 3, 4, 128), **SAME),
    G("dilated_28x28x64_k3_d2", (2, 28, 28, 64), (3, 3, 64, 64), **DIL2_PAD2),
]

DW_SLOW = [
    G("mbv2_112x112x32_k3", (2, 112, 112, 32), (3, 3, 32, 1), **SAME),
    G("mbv2_113x113x96_k3_s2_keras_pad", (2, 113, 113, 96), (3, 3, 96, 1), **S2, **VALID),
    G("mbv2_112x112x96_k3_s2_pad01", (2, 112, 112, 96), (3, 3, 96, 1), **S2, **PAD01),
    G("mbv2_56x56x144_k3_s2", (2, 56, 56, 144), (3, 3, 144, 1), **S2, **SAME),
    G("mbv2_28x28x192_k3", (4, 28, 28, 192), (3, 3, 192, 1), **SAME),
    G("mbv2_29x29x192_k3_s2_keras_pad", (4, 29, 29, 192), (3, 3, 192, 1), **S2, **VALID),
    G("mbv2_14x14x576_k3", (4, 14, 14, 576), (3, 3, 576, 1), **SAME),
    G("mbv2_7x7x960_k3", (4, 7, 7, 960), (3, 3, 960, 1), **SAME),
    G("effb0_56x56x144_k5_s2", (2, 56, 56, 144), (5, 5, 144, 1), **S2, **SAME),
    G("effb0_28x28x240_k5", (2, 28, 28, 240), (5, 5, 240, 1), **SAME),
    G("effb0_14x14x672_k5_s2", (4, 14, 14, 672), (5, 5, 672, 1), **S2, **SAME),
    G("effb0_7x7x1152_k5", (4, 7, 7, 1152), (5, 5, 1152, 1), **SAME),
    G("mult2_56x56x32_k3", (2, 56, 56, 32), (3, 3, 32, 2), **SAME),
    G("mult2_28x28x96_k3_s2", (4, 28, 28, 96), (3, 3, 96, 2), **S2, **SAME),
    G("mult2_14x14x192_k5_valid", (4, 14, 14, 192), (5, 5, 192, 2), **VALID),
    G("unequal_strides_56x56x64_s2x1", (2, 56, 56, 64), (3, 3, 64, 1), strides=(2, 1), **SAME),
    G("dilated_28x28x64_k3_d2", (2, 28, 28, 64), (3, 3, 64, 1), **DIL2_PAD2),
]

SLOW = expand("cbf", CBF_SLOW) + expand("dbf", DW_SLOW) + expand("dbi", DW_SLOW)

# DBI with dx over the CPU core's 4 MiB streaming threshold in every dtype (kStreamBytes in
# depthwise_backprop_input_cpu.cc), NHWC: non-temporal stores of whole lines (float32, float64),
# 16-bit channel-block pairs at stride 1 (nb even) and at stride 2 (all blocks per call), 16-bit
# half lines (nb odd), and 16-bit cached stores where the packed rows are too large for pairs (k7).
DBI_STREAM = expand(
    "dbi",
    [
        G("stream_14x14x384_k3", (32, 14, 14, 384), (3, 3, 384, 1), **SAME),
        G("stream_29x29x192_k3_s2", (32, 29, 29, 192), (3, 3, 192, 1), **S2, **VALID),
        G("stream_56x56x144_k3_s2", (16, 56, 56, 144), (3, 3, 144, 1), **S2, **SAME),
        G("stream_28x28x192_k7", (16, 28, 28, 192), (7, 7, 192, 1), **SAME),
    ],
)

# --------------------------------------------------------------------------------------------------
# Dtypes and tolerances
# --------------------------------------------------------------------------------------------------

DTYPES = ("float64", "float32", "float16", "bfloat16")
FORMATS = ("NHWC", "NCHW")
ONEDNN_DTYPES = ("float32", "bfloat16")  # TF's oneDNN kernels: no float64; half not on this CPU

# Norm-relative tolerance against float64 computed on the same T-rounded inputs:
# max|ours - ref| / max(max|ref|, tiny).
TOL = {"float64": 1e-12, "float32": 2e-5, "float16": 1e-3, "bfloat16": 8e-3}

# Unit roundoff of T (used for the worst-case bound on TF's 16-bit accumulation).
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
