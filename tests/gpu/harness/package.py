"""The modules the harness shares with the rest of the repository, loaded without TensorFlow.

The harness runs where TensorFlow cannot be installed (the GPU machine), so it must not execute
``tf_convgrad/__init__.py``, which imports TF. It registers a stub package instead and imports
the package's pure modules (NumPy and the standard library only) through it; their relative
imports (``from .._geometry import ...``) then resolve as usual.

* :data:`OPTABLE`: ``tf_convgrad._optable``: op keys and TF names.
* :data:`GEOMETRY`: ``tf_convgrad._geometry``: attribute checks, output sizes and padding.
* :data:`METRICS`: ``tf_convgrad.tools.metrics``: the tolerance table and the error measure.
* :data:`REFERENCE`: ``tf_convgrad.tools.reference``: the float64 reference (einsum and loops).
* :data:`PROBLEMS`: ``tf_convgrad.tools.problems``: the geometry type and the benchmark layers.
* :data:`PROVENANCE`: ``scripts/provenance.py``: how a generated document names its commit.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DIR = ROOT / "python" / "tf_convgrad"


def package_module(name: str) -> ModuleType:
    """Imports ``tf_convgrad.<name>`` without running ``tf_convgrad/__init__.py``.

    The first call registers an empty stub for the ``tf_convgrad`` package whose ``__path__`` is
    the source folder, so submodules and their relative imports load from the repository, while
    the real package initialiser (which imports TensorFlow) never runs. Only TF-free modules
    may be imported this way.

    Args:
        name: The dotted name below the package, e.g. ``"tools.metrics"``.

    Returns:
        The imported module.
    """
    if "tf_convgrad" not in sys.modules:
        stub = types.ModuleType("tf_convgrad")
        stub.__path__ = [str(PACKAGE_DIR)]
        sys.modules["tf_convgrad"] = stub
    return importlib.import_module(f"tf_convgrad.{name}")


def script_module(name: str) -> ModuleType:
    """Imports ``scripts/<name>.py`` (a module the scripts share) under its own name."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


OPTABLE = package_module("_optable")
GEOMETRY = package_module("_geometry")
METRICS = package_module("tools.metrics")
REFERENCE = package_module("tools.reference")
PROBLEMS = package_module("tools.problems")
PROVENANCE = script_module("provenance")
