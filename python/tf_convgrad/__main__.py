"""Command line: ``python -m tf_convgrad <command>``.

Commands:
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the chosen command; returns its exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
