"""The architecture registry: what ``build_model`` can build, as data.

Each entry names an open_clip model config (open_clip's own, or one of ours in ``archs/``, one
small JSON per model, registered with open_clip on first use) and this project's defaults for
it.  ``build`` and ``checkpoint`` both read it; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ARCHS_DIR = Path(__file__).parent / "archs"  # open_clip model configs of our own architectures
DEFAULT_ARCH = "ViT-B-16"


@dataclass(frozen=True)
class ArchSpec:
    open_clip_name: str  # open_clip model config name
    cpu_input_size: tuple[int, int]  # (h, w) default on CPU/MPS (4:5, patch multiple)
    gpu_input_size: tuple[int, int]  # (h, w) default on CUDA
    layer_indices: tuple[int, ...]  # blocks feeding the decoder (see CLIPBackbone)
    patch_size: int = 16  # ViT patch side: input sizes must be multiples of it
    decoder_dim: int = 128  # decoder / pixel feature channels
    agent_dim: int = 64  # agent hidden channels
    self_contained: bool = False  # checkpoints store the (random) backbone too
    description: str = ""


_ARCHITECTURES: dict[str, ArchSpec] = {
    "ViT-B-16": ArchSpec(
        "ViT-B-16", (192, 240), (448, 560), (2, 5, 8, 10),
        description="CLIP ViT-B/16 (default; 86 M frozen backbone parameters)",
    ),
    "ViT-B-32": ArchSpec(
        "ViT-B-32", (256, 320), (512, 640), (2, 5, 8, 10), patch_size=32,
        description="CLIP ViT-B/32 (faster, coarser: stride-32 tokens)",
    ),
    "tiny-test": ArchSpec(
        "cliprl-tiny-test", (128, 160), (128, 160), (0, 1, 2, 3), decoder_dim=32, agent_dim=16,
        self_contained=True, description="tiny random model for tests (milliseconds per frame)",
    ),
}  # fmt: skip


def list_architectures() -> list[str]:
    """Names accepted by ``build_model``."""
    return list(_ARCHITECTURES)


def get_architecture(name: str) -> ArchSpec:
    """The spec of architecture ``name``; ValueError naming the available ones."""
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(_ARCHITECTURES)}"
        ) from None


def check_patch_multiple(spec: ArchSpec, size: tuple[int, int], source: str = "input_size") -> None:
    """ValueError unless both sides of ``size`` are multiples of the patch size (and >= it)."""
    p = spec.patch_size
    if any(s < p or s % p for s in size):
        raise ValueError(
            f"{source}: input size {tuple(size)} must be a multiple of the patch size {p} of "
            f"{spec.open_clip_name} in both sides (e.g. {spec.cpu_input_size})"
        )


_REGISTERED: set[int] = set()


def register_open_clip_configs(open_clip: ModuleType) -> None:
    """Make open_clip know the configs in ``archs/`` (once per open_clip module)."""
    if id(open_clip) not in _REGISTERED:
        open_clip.add_model_config(ARCHS_DIR)
        _REGISTERED.add(id(open_clip))
