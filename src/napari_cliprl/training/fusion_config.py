"""The video-fusion part of a fine-tune's configuration (``FinetuneConfig.fusion``).

Torch-free like :mod:`napari_cliprl.training.config`, which imports it; the command line's
``--fusion-*`` options come from these fields and their comments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from napari_cliprl.training.checks import ConfigError, check_bool, check_count, check_number

MAX_ITERATIONS = 10_000_000  # as training.config's


def _optional_path(config: Any, name: str) -> None:
    value = getattr(config, name)
    if value is None:
        return
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(name, f"must be a path, got {value!r}")
    object.__setattr__(config, name, os.fspath(value))


@dataclass(frozen=True)
class FusionConfig:
    """Video fusion (DESIGN 2.11): learn from the reviewed frames how far to trust labels
    carried by optical flow from reviewed frames, and where the image knows better."""

    FLAGS: ClassVar[dict[str, str]] = {"enabled": "--fusion"}

    enabled: bool = True  # train the fusion head and the agent's side actions when the video
    # of the reviewed frames can be read (an export's manifest source, or video)
    video: str | None = None  # frames of the reviewed frames' video; None: each export's
    # manifest source
    flow_cache: str | None = None  # folder of the video's flow cache to reuse or fill (e.g.
    # the session folder); None: flows in memory
    head_iterations: int = 300  # fusion-head updates at most (fewer with few samples)
    iterations_per_sample: int = 20  # fusion-head updates per training sample: the budget
    # grows with the reviewed frames
    learning_rate: float = 3e-3  # Adam, fusion head
    anchor_decay: float = 0.01  # pull of the head's weights towards "trust the flow" (L2-SP)
    heldout_fraction: float = 0.5  # decoders for held-out outputs train this share of phase
    # A's steps (a fusion must see the decoder as it is on frames it never saw)
    max_gap: int = 64  # pairs of reviewed frames at most this many frames apart
    neighbours: int = 4  # pairs of each reviewed frame with this many nearest per side
    round_trip_max: int = 8  # round trips i -> i + d -> i for d = 1, 2, 4, ... up to this
    # (0: none)
    round_trips_when: int = 1  # round trips only with at most this many reviewed frames
    rl_share: float = 0.5  # share of phase B episodes played on fusion samples
    side_actions: bool = True  # the agent's "take the forward / backward / image label" actions

    def __post_init__(self) -> None:
        check_bool(self, "enabled")
        for name in ("video", "flow_cache"):
            _optional_path(self, name)
        check_count(self, "head_iterations", 0, MAX_ITERATIONS)
        check_count(self, "iterations_per_sample", 0, MAX_ITERATIONS)
        check_number(self, "learning_rate", 0.0, low_open=True)
        check_number(self, "anchor_decay", 0.0)
        check_number(self, "heldout_fraction", 0.0, 1.0)
        check_count(self, "max_gap", 1, MAX_ITERATIONS)
        check_count(self, "neighbours", 1, MAX_ITERATIONS)
        check_count(self, "round_trip_max", 0, MAX_ITERATIONS)
        check_count(self, "round_trips_when", 0, MAX_ITERATIONS)
        check_number(self, "rl_share", 0.0, 1.0)
        check_bool(self, "side_actions")
