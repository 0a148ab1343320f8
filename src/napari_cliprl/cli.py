"""The ``cliprl`` command line: one subcommand per module in ``napari_cliprl._commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Bad input raises :class:`CLIError` (or a ``ValueError``/``OSError`` from the core), which ``main``
prints as one line on stderr before exiting with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = ("info", "convert", "predict", "finetune", "evaluate", "demo")


class CLIError(Exception):
    """A user error reported as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cliprl",
        description="CLIP-RL semi-automatic annotation of surgical video (napari-cliprl).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"napari_cliprl._commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"napari_cliprl._commands.{name}":
                continue  # command not part of this build
            raise
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("cliprl: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, KeyError, RuntimeError) as e:
        if os.environ.get("CLIPRL_DEBUG"):
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"cliprl {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # torchrun -m napari_cliprl.cli ...
    sys.exit(main())
