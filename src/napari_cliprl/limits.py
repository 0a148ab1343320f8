"""Bounds on every size read from a file or a command line, checked before memory is committed.

Each limit is a named constant with a documented default. A user with a real need raises one
with an environment variable ``CLIPRL_<NAME>`` (e.g. ``CLIPRL_MAX_IMAGE_PIXELS=200000000``);
a value below the default is ignored and nothing switches a check off. A value over its limit
raises :class:`LimitError`, one line that names the file (or option), the value and the limit.

==================  ==========  ===============================================================
name                default     what it bounds (checked from headers, before decoding)
==================  ==========  ===============================================================
MAX_IMAGE_PIXELS    40,000,000  width x height of one image file or video frame (8K is 33 M)
MAX_IMAGE_SIDE      16,384      width or height of one image file or video frame
MAX_FRAMES          1,000,000   frames of one video (header count) or sequence (~9 h at 30 fps)
MAX_JSON_BYTES      64 MiB      bytes of one JSON file (manifest, labels.json, schema, session)
MAX_STEPS           10          refinement steps T of a model or a run
MAX_INPUT_SIDE      2,048       side of a model's input size (h or w) in pixels
MAX_CLASSES         255         classes of one label schema or labels.json (ids 0..254;
                                label maps are uint8 and 255 means ignore, so a schema never
                                holds more than 255 classes whatever this is raised to)
MAX_BATCH           4,096       frames per batch or RL environments
==================  ==========  ===============================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str  # constant name; the environment variable is CLIPRL_<name>
    default: int  # the bound used unless the environment raises it
    what: str  # what it bounds, for messages and docs


LIMITS = {
    limit.name: limit
    for limit in (
        Limit("MAX_IMAGE_PIXELS", 40_000_000, "pixels of one image or video frame (8K is 33 M)"),
        Limit("MAX_IMAGE_SIDE", 16_384, "width or height of one image or video frame"),
        Limit("MAX_FRAMES", 1_000_000, "frames of one video or sequence (about 9 h at 30 fps)"),
        Limit("MAX_JSON_BYTES", 64 << 20, "bytes of one JSON file (session, manifest, config)"),
        Limit("MAX_STEPS", 10, "refinement steps T of a model or a run"),
        Limit("MAX_INPUT_SIDE", 2048, "side of a model's input size (h or w) in pixels"),
        Limit("MAX_CLASSES", 255, "classes of one label schema (ids 0..254, 255 = ignore)"),
        Limit("MAX_BATCH", 4096, "frames per batch or RL environments"),
    )
}


class LimitError(ValueError):
    """A size over its limit (the message names the source, the value and the limit)."""


def limit(name: str) -> int:
    """The bound ``name`` (``LIMITS``), raised by ``CLIPRL_<name>`` when that is a larger int."""
    default = LIMITS[name].default
    raw = os.environ.get(f"CLIPRL_{name}", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            return default
        return max(value, default) if value > 0 else default
    return default


def check_limit(
    name: str,
    value: int,
    source: str,
    what: str | None = None,
    error: type[LimitError] = LimitError,
) -> int:
    """``value`` unless it exceeds ``limit(name)``: then ``error`` (a LimitError) naming
    ``source``, the value, the limit and the variable that raises it."""
    bound = limit(name)
    if int(value) > bound:
        desc = what or LIMITS[name].what
        raise error(
            f"{source}: {desc} is {int(value):,}, over the limit of {bound:,} "
            f"(raise it with CLIPRL_{name}=N if this input is genuine)"
        )
    return int(value)
