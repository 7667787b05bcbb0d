"""What ``crosscheck`` runs: its built-in tiers and configuration files.

The configurations are :class:`~.problems.Problem` objects; their string form
(``"n2 h9w7 c4 k3x3 m2 s2x1 d1x2 SAME NCHW"``, :meth:`~.problems.Problem.parse`) is how the table,
``--list`` and configuration files name them. The built-in tiers are the ``"grid_*"`` tiers of
:mod:`.problems`. No TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import _geometry
from .._optable import KEYS, OPS, op
from .problems import Problem, tier

__all__ = ["TIERS", "build_grid", "load_configs", "to_json"]

#: The built-in grids, smallest first, and the :mod:`.problems` tier behind each.
TIERS = ("quick", "default", "full")
_PROBLEM_TIERS = {"quick": "grid_quick", "default": "grid", "full": "grid_full"}

#: The fields a configuration file may spell out (``out``: Cout for CBF, the multiplier for
#: depthwise; ``pads``: ``[top, bottom, left, right]``).
_FIELDS = ("op", "n", "h", "w", "c", "kh", "kw", "out", "groups", "strides", "dilations",
           "padding", "pads", "data_format")  # fmt: skip
_REQUIRED = {"n", "h", "w", "c", "kh", "kw", "out"}


def build_grid(tier_name: str = "default", ops: Sequence[str] | None = None) -> list[Problem]:
    """A built-in grid of configurations.

    Args:
        tier_name: ``"quick"`` (the smallest grid), ``"default"`` (a broader one) or ``"full"``
            (the default grid plus layer-sized problems).
        ops: Restrict to these ops, by any of their names (all three by default).

    Returns:
        The configurations, op by op.

    Raises:
        ValueError: On an unknown tier or op.
    """
    if tier_name not in TIERS:
        raise ValueError(f"unknown tier {tier_name!r}; expected one of {TIERS}")
    keys = [op(name).key for name in ops] if ops else list(KEYS)
    return tier(_PROBLEM_TIERS[tier_name], keys)


def to_json(problem: Problem) -> dict[str, str]:
    """``{"op": "CBF", "config": "<parseable string>"}``, as :func:`load_configs` reads."""
    return {"op": OPS[problem.op].label, "config": str(problem)}


def _config_from_json(item: Any) -> Problem:
    if not isinstance(item, dict) or "op" not in item:
        raise ValueError(f"each configuration must be an object with an 'op', got {item!r}")
    try:
        key = op(item["op"]).key
    except ValueError:
        names = [o.tf_name for o in OPS.values()]
        raise ValueError(f"unknown op {item['op']!r}; expected CBF, DBF, DBI or {names}") from None
    if "config" in item:
        extra = set(item) - {"op", "config"}
        if extra:
            raise ValueError(f"'config' strings take no other fields, got {sorted(extra)}")
        return Problem.parse(key, item["config"])
    unknown = set(item) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} (known: {sorted(_FIELDS)})")
    fields = {k: v for k, v in item.items() if k != "op"}
    for name in ("strides", "dilations", "pads"):
        if name in fields:
            fields[name] = tuple(int(v) for v in fields[name])
    for name in ("n", "h", "w", "c", "kh", "kw", "out", "groups"):
        if name in fields:
            fields[name] = int(fields[name])
    missing = _REQUIRED - set(fields)
    if missing:
        raise ValueError(f"configuration {item!r} lacks {sorted(missing)}")
    problem = Problem.from_sizes(key, **fields)
    if problem.padding not in _geometry.PADDINGS:
        raise ValueError(f"padding must be SAME, VALID or EXPLICIT, got {problem.padding!r}")
    if problem.data_format not in _geometry.FORMATS:
        raise ValueError(f"data_format must be NHWC or NCHW, got {problem.data_format!r}")
    return problem


def load_configs(path: str) -> list[Problem]:
    """Reads configurations from a JSON file.

    The file holds a list, or an object with a ``"configs"`` list. Each entry is either
    ``{"op": "CBF", "config": "n2 h9w7 c4 k3x3 o6 g2 s2x1 d1x2 EXPLICIT[1,0,2,1] NCHW"}`` (the
    string form printed by the table and by ``--list``) or the fields spelled out, e.g.
    ``{"op": "DBI", "n": 2, "h": 9, "w": 7, "c": 4, "kh": 3, "kw": 3, "out": 2,
    "strides": [2, 1], "padding": "SAME", "data_format": "NCHW"}`` (``out`` is the output depth
    for CBF and the depth multiplier for depthwise; ``pads`` = ``[top, bottom, left, right]`` for
    EXPLICIT). ``op`` is ``CBF``, ``DBF``, ``DBI`` or the TF op name.

    Args:
        path: The JSON file.

    Returns:
        The configurations, validated (each must give a valid, non-negative output size).

    Raises:
        ValueError: On unreadable JSON or an invalid configuration (the message names it).
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    items = data.get("configs") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ValueError(
            f"{path}: expected a non-empty list of configurations (or {{'configs': [...]}})"
        )
    configs = []
    for k, item in enumerate(items):
        try:
            config = _config_from_json(item)
            _geometry.out_backprop_shape(
                OPS[config.op].tf_name, config.input_sizes, config.filter_sizes, **config.attrs()
            )
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: configuration {k}: {error}") from None
        configs.append(config)
    return configs
