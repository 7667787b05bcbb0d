"""tf_convgrad: complete, deterministic convolution-gradient ops for TensorFlow 2.21.

Importing the package loads the op library and registers the ops' gradients, so
graphs and SavedModels that use the ops work after `import tf_convgrad`. It changes
nothing for TensorFlow's own ops until `tf_convgrad.enable()` (see `dropin`).

One exception: when `python -m tf_convgrad` starts, the API is loaded only after the command
line has been parsed (so `--help` needs no TensorFlow, and TF's log level can be set first).
"""

import sys as _sys

__version__ = "0.1.0"


def _started_by_cli() -> bool:
    """True while ``python -m tf_convgrad`` imports this package, before its __main__ runs.

    The interpreter passes argv[0] == "-m" while runpy looks for the module; runpy's frame names
    the module it is about to run. Any other import (a script, ``python -m some.other.module``,
    ``python -m tf_convgrad.tools.bench``) loads the API at once.
    """
    if _sys.argv[:1] != ["-m"]:
        return False
    frame = _sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "runpy" and frame.f_locals.get("mod_name") in (
            "tf_convgrad",
            "tf_convgrad.__main__",
        ):
            return True
        frame = frame.f_back
    return False


def build_info() -> dict:
    """What was built and what runs: versions, compiler, instruction-set levels.

    Keys: ``version`` (the package) and those the op library gives about itself, listed at
    :func:`tf_convgrad._loader.build_info` (``tf_version``, ``tf_runtime``, ``compiler``,
    ``isa``...). Loads TensorFlow and the library.
    """
    from . import _loader

    return {"version": __version__, **_loader.build_info()}


def _load() -> None:
    """Loads the API (TensorFlow, the op library, the gradients) into the package."""
    from . import _api

    globals().update({name: getattr(_api, name) for name in _api.__all__})


if not _started_by_cli():
    from ._api import *  # noqa: F403 -- the public API
    from ._api import __all__ as _api_all

    __all__ = ["build_info", *_api_all]
