"""Property-based fuzzing (hypothesis) of the three ops: a short, reproducible run.

``fuzz_harness.py`` draws whole calls (op, dtype, format, eager or ``tf.function``, shapes,
sizes, every attribute, with hostile corruptions about half the time) and checks them against an
independent validity model: valid calls must match the float64 reference, invalid ones must
raise ``InvalidArgumentError``. The run happens in a crash-isolated worker process
(``fuzz_harness.run_chunks``), so a crash is reported with its signal and the example that caused
it instead of killing the test session.
``scripts/fuzz_long.py`` runs the same property for >= 100,000 examples (docs/FUZZ.md).
"""

from __future__ import annotations

from tf_convgrad import _optable

import fuzz_harness
from fuzz_harness import Example, model

SHORT_RUN_SEED = 5  # fixed: the default suite's run is the same every time
SHORT_RUN_EXAMPLES = 300


def test_fuzz_short_run():
    chunk = fuzz_harness.chunk(
        SHORT_RUN_SEED, SHORT_RUN_EXAMPLES, fast=False, function_fraction=0.1
    )
    (result,) = fuzz_harness.run_chunks([chunk], workers=1, timeout=600)
    assert result["failure"] is None, result["failure"]
    assert result["examples"] >= SHORT_RUN_EXAMPLES
    stats = result["stats"]
    for op in _optable.KEYS:
        for validity in ("valid", "invalid"):
            count = stats.get(f"{op}|{validity}|eager", 0) + stats.get(
                f"{op}|{validity}|function", 0
            )
            assert count >= 15, f"only {count} {validity} {op} examples: {stats}"
    assert stats.get("values checked", 0) >= 60, stats


def _example(**changes) -> Example:
    base = {
        "op": "cbf",
        "dtype": "float32",
        "data_format": "NHWC",
        "mode": "eager",
        "first_shape": [2, 5, 5, 3],
        "dy_shape": [2, 5, 5, 2],
        "sizes": [3, 3, 3, 2],
        "attrs": {
            "strides": [1, 1, 1, 1],
            "padding": "SAME",
            "explicit_paddings": [],
            "data_format": "NHWC",
            "dilations": [1, 1, 1, 1],
        },
        "corruptions": (),
        "data_seed": 0,
    }
    attrs = changes.pop("attrs", {})
    base.update(changes)
    base["attrs"] = {**base["attrs"], **attrs}
    return Example(**base)


def test_model_accepts_and_rejects_what_tf_does():
    """The fuzzer's validity model against known answers (docs/SEMANTICS.md: validation, sizes)."""
    assert model(_example()) is not None
    assert model(_example(attrs={"strides": [1, 0, 1, 1]})) is None
    assert model(_example(attrs={"strides": [1, 2**31, 1, 1]})) is None
    assert model(_example(attrs={"dilations": [1, 1, 1, 2]})) is None
    assert model(_example(attrs={"explicit_paddings": [0, 0, 1, 1, 1, 1, 0, 0]})) is None
    assert model(_example(dy_shape=[2, 4, 5, 2])) is None
    assert model(_example(sizes=[3, 3, -1, 2])) is None
    assert model(_example(first_shape=[2, 5, 5, 0], sizes=[3, 3, 1, 2])) is None  # 0 groups
    grouped = model(_example(first_shape=[2, 5, 5, 6], sizes=[3, 3, 3, 2]))
    assert grouped is not None  # 2 groups of 3 input channels, 1 output channel each
    # VALID: input 1, filter 4, stride 2 -> 0 rows (C++ truncation), accepted.
    valid0 = _example(
        first_shape=[1, 1, 1, 1],
        dy_shape=[1, 0, 0, 1],
        sizes=[4, 4, 1, 1],
        attrs={"padding": "VALID", "strides": [1, 2, 2, 1]},
    )
    assert model(valid0) is not None
    explicit = _example(  # docs/SEMANTICS.md table: EXPLICIT [[1,2],[2,1]], 5x6, s2 -> 3x4
        first_shape=[2, 5, 6, 3],
        dy_shape=[2, 3, 4, 2],
        attrs={"padding": "EXPLICIT", "strides": [1, 2, 2, 1],
               "explicit_paddings": [0, 0, 1, 2, 2, 1, 0, 0]},
    )  # fmt: skip
    assert model(explicit)["pads_before"] == (1, 2)
    nchw = _example(
        data_format="NCHW",
        first_shape=[2, 3, 5, 5],
        dy_shape=[2, 2, 5, 5],
        attrs={"data_format": "NCHW"},
    )
    assert model(nchw)["input_nhwc"] == [2, 5, 5, 3]
    depthwise = _example(op="dbi", first_shape=[3, 3, 3, 2], dy_shape=[2, 5, 5, 6],
                         sizes=[2, 5, 5, 3])  # fmt: skip
    assert model(depthwise) is not None
    assert model(_example(op="dbi", first_shape=[3, 3, 3, 2], dy_shape=[2, 5, 5, 5],
                          sizes=[2, 5, 5, 3])) is None  # fmt: skip
