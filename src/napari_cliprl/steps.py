"""Names of the proposal maps: one home for step keys and display names.

A model run gives a zero-shot map (CLIP alone), the decoder's map (step 0) and one map per agent
step (step 1 .. step T). Two spellings exist and each has one use:

- keys (``"zero_shot"``, ``"step_0"``, ...): metrics dicts, JSON, file and array names;
- labels (``"zero-shot"``, ``"step 0"``, ...): what a person reads (napari layers, tables).
"""

from __future__ import annotations

ZERO_SHOT_KEY = "zero_shot"
ZERO_SHOT_LABEL = "zero-shot"


def step_key(t: int) -> str:
    """``"step_<t>"``: key of refinement step ``t`` (0 = the decoder's proposal)."""
    return f"step_{int(t)}"


def step_label(t: int) -> str:
    """``"step <t>"``: display name of refinement step ``t``."""
    return f"step {int(t)}"


def proposal_keys(steps: int) -> list[str]:
    """``["zero_shot", "step_0", ..., "step_<steps>"]``."""
    return [ZERO_SHOT_KEY, *(step_key(t) for t in range(int(steps) + 1))]


def proposal_labels(steps: int) -> list[str]:
    """``["zero-shot", "step 0", ..., "step <steps>"]``."""
    return [ZERO_SHOT_LABEL, *(step_label(t) for t in range(int(steps) + 1))]


def key_of(label: str) -> str:
    """The key of a display name (``"step 2"`` -> ``"step_2"``); keys are returned as they are."""
    return label.replace(" ", "_").replace("-", "_")


def label_of(key: str) -> str:
    """Display name of a key: ``"step_2"`` -> ``"step 2"``, ``"zero_shot"`` -> ``"zero-shot"``."""
    return ZERO_SHOT_LABEL if key == ZERO_SHOT_KEY else key.replace("_", " ")


def step_of(name: str) -> int | None:
    """The step number of a key or label (``"step 2"`` or ``"step_2"`` -> 2); None otherwise."""
    key = key_of(name)
    if key.startswith("step_") and key[5:].isdigit():
        return int(key[5:])
    return None
