"""Command line: ``python -m tf_convgrad <command>``.

Commands:
    info (or ``--version``): The package version, the TensorFlow the library was built for, the
        instruction-set level the CPU cores run at (and how it was chosen) and the compiler.
    crosscheck: Our ops, TF's native, oneDNN and (with a GPU) GPU kernels against a float64
        reference over a grid of configurations: errors, ULP distances, determinism and the
        kernel TF ran (see :mod:`tf_convgrad.crosscheck`).
    bench: Ours against TF's oneDNN and native CPU kernels, interleaved, with the machine's
        measured peak, bandwidth and each layer's roofline; with ``--memory``, the peak resident
        memory of one call instead (see :mod:`tf_convgrad.bench`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per tool."""
    from . import bench, crosscheck

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
    about.set_defaults(handler=_info)
    check = commands.add_parser(
        "crosscheck",
        help="cross-check ours and TF's kernels against float64 (errors, ULPs, determinism)",
        description=crosscheck.DESCRIPTION,
    )
    crosscheck.add_arguments(check)
    check.set_defaults(handler=crosscheck.run)
    timing = commands.add_parser(
        "bench",
        help="time ours against TF's CPU kernels (oneDNN on and off) with roofline figures, "
        "or (--memory) measure their peak memory",
        description=(bench.__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(timing)
    timing.set_defaults(handler=bench.run)
    return parser


def _info(args=None) -> int:
    from . import _loader

    print(_loader.format_build_info(_loader.build_info()))
    return 0


class _InfoAction(argparse.Action):
    """``--version``: prints what ``info`` prints and exits (loads the library only then)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(_info())


def main(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the chosen command; returns its exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
