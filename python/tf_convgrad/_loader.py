"""Loads the op library once, with errors that say what to do."""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import tensorflow as tf

REQUIRED_TF_VERSION = "2.21.0"
LIBRARY_NAME = "_conv_backprop_ops.so"
_loaded_path: list[str] = []  # the library load() loaded


def _candidates() -> list[str]:
    # An editable install (scikit-build-core's redirect mode) puts the library in
    # site-packages while __file__ points into the source tree; the package's
    # __path__ holds both, so search all of it. (The import system sets __path__ before the
    # package's __init__ runs; reading it imports nothing.)
    package_path = sys.modules[__package__].__path__
    override = os.environ.get("TF_CONVGRAD_LIBRARY")
    if override:  # an explicit choice: that library or an error, never a silent fallback
        return [override]
    dirs = list(package_path) + [os.path.dirname(os.path.abspath(__file__))]
    return [os.path.join(d, LIBRARY_NAME) for d in dirs]


@functools.cache
def load():
    """Returns the loaded op library module (tf.load_op_library's result)."""
    if tf.__version__ != REQUIRED_TF_VERSION:
        raise ImportError(
            f"tf_convgrad was built for tensorflow=={REQUIRED_TF_VERSION}, but tensorflow "
            f"{tf.__version__} is installed. Install tensorflow=={REQUIRED_TF_VERSION} and "
            "rebuild tf_convgrad with `pip install --no-build-isolation -e .` (or run "
            "`bash scripts/setup.sh`)."
        )
    paths = _candidates()
    found = [p for p in paths if os.path.isfile(p)]
    override = os.environ.get("TF_CONVGRAD_LIBRARY")
    if not found and override:
        raise ImportError(
            f"tf_convgrad: TF_CONVGRAD_LIBRARY={override} is not a file. Point the variable at a "
            f"built {LIBRARY_NAME}, or unset it to load the library installed with the package."
        )
    if not found:
        raise ImportError(
            f"tf_convgrad: the op library {LIBRARY_NAME} was not found (looked for: "
            + ", ".join(paths)
            + "). Build it with `pip install --no-build-isolation -e .` from the repository "
            "root, or run `bash scripts/setup.sh`."
        )
    try:
        module = tf.load_op_library(found[0])
    except tf.errors.NotFoundError as e:
        raise ImportError(
            f"tf_convgrad: loading {found[0]} failed: {e.message.strip()}\nThe library does "
            f"not match the installed TensorFlow ({tf.__version__}); rebuild it with "
            "`pip install --no-build-isolation -e .` in the same environment."
        ) from None
    _loaded_path[:] = [found[0]]
    info = _library_info(found[0])
    if info.get("isa_error"):  # TF_CONVGRAD_ISA names a level this CPU (or build) lacks
        raise ImportError(f"tf_convgrad: {info['isa_error']}")
    return module


@functools.cache
def _library_info(path: str) -> dict[str, str]:
    """The library's own description of its build and of the instruction-set level it chose
    (``tf_convgrad_info()`` in cpu_dispatch.cc, read through ctypes: the library is already
    loaded, so this is the same copy); empty for a library without it."""
    try:
        function = ctypes.CDLL(path).tf_convgrad_info
    except (OSError, AttributeError):
        return {}
    function.restype = ctypes.c_char_p
    info = {}
    for line in function().decode().splitlines():
        key, _, value = line.partition("=")
        info[key] = value
    return info


def build_info() -> dict:
    """What the loaded library says of its build and of what runs: everything
    ``tf_convgrad.build_info()`` gives but the package version.

    Keys: ``tf_version`` (the TensorFlow the library was built for), ``tf_runtime`` (the one
    imported), ``compiler``, ``isa`` (the level in use), ``isa_description``, ``isa_levels``
    (the levels built, best first), ``isa_supported`` (those this CPU runs), ``isa_requested``
    (TF_CONVGRAD_ISA, "" if unset), ``isa_dispatch`` (False for a single-level
    ``TF_CONVGRAD_ARCH`` build), ``amx_bf16`` (bfloat16 Conv2DBackpropFilter runs on AMX tiles:
    the level has AVX512_BF16 and the CPU and OS give AMX-BF16) and ``library`` (its path).
    """
    load()
    path = _loaded_path[0]
    raw = _library_info(path)
    return {
        "tf_version": raw.get("tf_version", ""),
        "tf_runtime": tf.__version__,
        "compiler": raw.get("compiler", ""),
        "isa": raw.get("isa", ""),
        "isa_description": raw.get("isa_description", ""),
        "isa_levels": [v for v in raw.get("isa_levels", "").split(",") if v],
        "isa_supported": [v for v in raw.get("isa_supported", "").split(",") if v],
        "isa_requested": raw.get("isa_requested", ""),
        "isa_dispatch": raw.get("isa_dispatch") == "1",
        "amx_bf16": raw.get("amx_bf16") == "1",
        "library": path,
    }


def format_build_info(info: dict) -> str:
    """``tf_convgrad.build_info()`` as the lines ``python -m tf_convgrad info`` prints."""
    levels = ", ".join(info["isa_levels"]) or "?"
    supported = ", ".join(info["isa_supported"]) or "none"
    how = (
        f"forced by TF_CONVGRAD_ISA={info['isa_requested']}"
        if info["isa_requested"] not in ("", "auto")
        else "chosen from cpuid"
        if info["isa_dispatch"]
        else "single-level build"
    )
    return "\n".join(
        [
            f"tf_convgrad {info['version']}",
            f"TensorFlow: built for {info['tf_version'] or '?'}, running {info['tf_runtime']}",
            f"instruction set: {info['isa']} ({info['isa_description']}; {how})",
            f"levels built: {levels}; this CPU runs: {supported}",
            "AMX tiles: "
            + (
                "bfloat16 Conv2DBackpropFilter uses them"
                if info.get("amx_bf16")
                else "not used (this level or CPU has no AMX-BF16, or Linux refused the tile state)"
            ),
            f"compiler: {info['compiler'] or '?'}",
            f"library: {info['library']}",
        ]
    )
