"""Loads the op library once, with errors that say what to do."""

from __future__ import annotations

import functools
import os

import tensorflow as tf

REQUIRED_TF_VERSION = "2.21.0"
LIBRARY_NAME = "_conv_backprop_ops.so"


def _candidates() -> list[str]:
    # An editable install (scikit-build-core's redirect mode) puts the library in
    # site-packages while __file__ points into the source tree; the package's
    # __path__ holds both, so search all of it.
    from . import __path__ as package_path

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
        return tf.load_op_library(found[0])
    except tf.errors.NotFoundError as e:
        raise ImportError(
            f"tf_convgrad: loading {found[0]} failed: {e.message.strip()}\nThe library does "
            f"not match the installed TensorFlow ({tf.__version__}); rebuild it with "
            "`pip install --no-build-isolation -e .` in the same environment."
        ) from None
