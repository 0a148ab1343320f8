"""Subcommands of ``cliprl`` (see :mod:`napari_cliprl.cli`)."""

import argparse


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR`` (repeatable, required): labelled sequences for finetune and evaluate."""
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR",
        help="labelled sequence folder, or a folder of them (repeatable)",
    )
