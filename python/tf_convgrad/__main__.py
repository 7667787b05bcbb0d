"""Command line: ``python -m tf_convgrad <command>``.

Commands:
    crosscheck: Our ops against a float64 reference and against TF's native and oneDNN kernels
        over a built-in grid of configurations (see :mod:`tf_convgrad.crosscheck`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per tool."""
    from . import crosscheck

    parser = argparse.ArgumentParser(
        prog="python -m tf_convgrad",
        description="Tools for the tf_convgrad convolution-gradient ops.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    check = commands.add_parser(
        "crosscheck",
        help="check our ops against float64 and TF's native and oneDNN kernels",
        description=crosscheck.DESCRIPTION,
    )
    crosscheck.add_arguments(check)
    check.set_defaults(handler=crosscheck.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the chosen command; returns its exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
