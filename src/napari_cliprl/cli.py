"""The ``cliprl`` command line: one subcommand per module in ``napari_cliprl._commands``.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Bad input raises :class:`CLIError` (or a ``ValueError``/``OSError`` from the core), which ``main``
prints as one line on stderr before exiting with status 2. Any other exception is a bug: it is
still one line (its type and message) unless ``CLIPRL_DEBUG=1`` asks for the traceback. A
mistyped option is one line too (``cliprl COMMAND --help`` lists them all).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from napari_cliprl.errors import CLIError

__all__ = ["CLIError", "main"]

COMMANDS = ("info", "convert", "predict", "finetune", "evaluate", "demo")
DEBUG_ENV = "CLIPRL_DEBUG"  # set to 1 for tracebacks instead of one-line errors
USER_ERRORS = (ValueError, OSError, KeyError, RuntimeError)  # bad input: one line, status 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    command = "cliprl"
    try:
        args, unknown = build_parser().parse_known_args(argv)
        command = f"cliprl {args.command}"
        if unknown:  # named by the subcommand, whose --help lists its options
            text = f"unrecognized arguments: {' '.join(unknown)} (see {command} --help)"
            print(f"{command}: error: {text}", file=sys.stderr)
            return 2
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, *USER_ERRORS) as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{command}: error: {_first_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: still no traceback unless asked for
        if os.environ.get(DEBUG_ENV):
            raise
        text = _first_line(e)
        what = type(e).__name__ if text == type(e).__name__ else f"{type(e).__name__}: {text}"
        hint = f"an internal error; set {DEBUG_ENV}=1 for the traceback"
        print(f"{command}: error: {what} ({hint})", file=sys.stderr)
        return 1


def _first_line(exc: BaseException) -> str:
    from napari_cliprl.errors import first_line

    return first_line(exc)


def _exit_ranked(status: int) -> None:
    """Leave a torchrun worker without finalising the interpreter: Gloo's worker threads can
    abort the finalisation (SIGABRT, "terminate called without an active exception") after
    the work is done and saved, turning a finished run into a failed one. By now the process
    group is destroyed and every file this run wrote is closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":  # torchrun -m napari_cliprl.cli ...
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        _exit_ranked(code)
    sys.exit(code)
