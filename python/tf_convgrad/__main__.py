"""Command line: ``python -m tf_convgrad <command>``.

Commands:
    info (or ``--version``): The package version, the TensorFlow the library was built for, the
        instruction-set level the CPU cores run at (and how it was chosen) and the compiler.
    crosscheck: Our ops, TF's native, oneDNN and (with a GPU) GPU kernels against a float64
        reference over a grid of configurations: errors, ULP distances, determinism and the
        kernel TF ran (see :mod:`tf_convgrad.tools.crosscheck`).
    bench: Ours against TF's oneDNN and native CPU kernels, interleaved, with the machine's
        measured peak, bandwidth and each layer's roofline; with ``--memory``, the peak resident
        memory of one call instead (see :mod:`tf_convgrad.tools.bench`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per tool."""
    from .tools import bench, crosscheck

    parser = argparse.ArgumentParser(
        prog="python -m tf_convgrad",
        description="Tools for the tf_convgrad convolution-gradient ops.",
    )
    parser.add_argument(
        "--version",
        action=_InfoAction,
        help="print the version, the TensorFlow built for, the instruction-set level in use and "
        "the compiler, and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    about = commands.add_parser(
        "info",
        help="version, TensorFlow built for, instruction-set level in use, compiler",
        description="Prints the package version, the TensorFlow the op library was built for, the "
        "instruction-set level its CPU cores run at (TF_CONVGRAD_ISA forces one) and the compiler.",
    )
    about.set_defaults(handler=_info, command_parser=about)
    check = commands.add_parser(
        "crosscheck",
        help="cross-check ours and TF's kernels against float64 (errors, ULPs, determinism)",
        description=crosscheck.DESCRIPTION,
    )
    crosscheck.add_arguments(check)
    check.set_defaults(handler=crosscheck.run, command_parser=check)
    timing = commands.add_parser(
        "bench",
        help="time ours against TF's CPU kernels (oneDNN on and off) with roofline figures, "
        "or (--memory) measure their peak memory",
        description=(bench.__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(timing)
    timing.set_defaults(handler=bench.run, command_parser=timing)
    return parser


def _info(args=None) -> int:
    from . import _loader, build_info

    print(_loader.format_build_info(build_info()))
    return 0


class _InfoAction(argparse.Action):
    """``--version``: prints what ``info`` prints and exits (loads the library only then)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(_info())


def main(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the chosen command; returns its exit code.

    TensorFlow's C++ log (oneDNN notices, ``failed call to cuInit`` on machines without a GPU)
    is off unless TF_CPP_MIN_LOG_LEVEL says otherwise; the tools report errors themselves.
    """
    quiet = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, not the top-level one
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _load_api(quiet)  # after parsing: --help needs no TensorFlow
    return args.handler(args)


# What TensorFlow 2.21 writes to stderr at import whatever TF_CPP_MIN_LOG_LEVEL says (absl logs
# before its initialisation): the oneDNN and CUDA-driver notices and the CPU-feature hint.
_IMPORT_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog|[IW]\d{4} \d|To enable the following "
    r"instructions|.*rebuild TensorFlow with the appropriate compiler flags"
)


def _load_api(quiet: bool) -> None:
    """Imports TensorFlow, the op library and the API; with ``quiet``, drops TF's import notices
    from stderr (everything else written there during the import is passed on)."""
    import tf_convgrad

    if not quiet:
        tf_convgrad._load()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            tf_convgrad._load()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _IMPORT_NOISE.match(line):
                    sys.stderr.write(line)


if __name__ == "__main__":
    sys.exit(main())
