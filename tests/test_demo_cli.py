"""``cliprl demo`` without a display explains what to do instead of hanging or crashing."""

from __future__ import annotations

import pytest

from napari_cliprl.cli import main


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XAUTHORITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")


def test_demo_without_display_suggests_xvfb_or_screenshot(headless, capsys) -> None:
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "no display found" in err and "xvfb-run" in err and "--screenshot" in err


def test_demo_rejects_an_empty_clip(headless, capsys) -> None:
    assert main(["demo", "--frames", "0"]) == 2
    assert "--frames must be 1..1000, got 0" in capsys.readouterr().err
