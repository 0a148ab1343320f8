"""Fixtures of the training tests."""

from pathlib import Path

import pytest
from _training_data import write_export


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("data") / "export")
