"""The benchmark's layers: the package's ``"bench"`` tier (``tf_convgrad/tools/problems.py``).

The same MobileNetV2, EfficientNet-B0 and ResNet-50 layers (plus 7x7, batch-1 and multiplier-2
depthwise layers) at training batch as the CPU benchmark (``python -m tf_convgrad bench``), so
the two tables compare. Each layer runs in every requested dtype and data format. The ops take
turns layer by layer, so that a run cut short by the hardware check's time budget loses the tail
of each op's list rather than a whole op.
"""

from __future__ import annotations

import itertools

from .package import PROBLEMS
from .problem import Geometry, Problem

#: The ops in the order they take turns.
BENCH_OPS = ("dbf", "dbi", "cbf")


def bench_layers() -> list[tuple[str, str, Geometry]]:
    """(suite, op, geometry) per layer; the suite is the first word of the layer's name."""
    by_op = [PROBLEMS.tier("bench", ops=(op,)) for op in BENCH_OPS]
    turns = itertools.chain.from_iterable(itertools.zip_longest(*by_op))
    return [
        (
            layer.name.split()[0],
            layer.op,
            Geometry(
                layer.name,
                layer.input_shape,
                layer.filter_shape,
                layer.strides,
                layer.dilations,
                (layer.padding,),
                layer.explicit,
            ),
        )
        for layer in turns
        if layer is not None
    ]


def bench_problems(dtypes, formats) -> list[tuple[str, Problem]]:
    """(suite, problem) for every layer x dtype x format, layer by layer."""
    return [
        (suite, Problem(op, g, g.paddings[0], fmt, dtype))
        for suite, op, g in bench_layers()
        for dtype in dtypes
        for fmt in formats
    ]
