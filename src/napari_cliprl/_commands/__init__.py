"""Subcommands of ``cliprl`` (see :mod:`napari_cliprl.cli`)."""
