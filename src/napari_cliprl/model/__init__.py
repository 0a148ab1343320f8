"""CLIP-RL model (torch only): backbone, text bank, decoder, refinement agent, builder."""

from napari_cliprl.model.backbone import CLIPBackbone, Features
from napari_cliprl.model.build import (
    build_model,
    list_architectures,
    read_checkpoint_config,
    resolve_device,
    save_checkpoint,
)
from napari_cliprl.model.cliprl import CLIPRL, CLIPRLOutput
from napari_cliprl.model.decoder import SegDecoder
from napari_cliprl.model.policy import (
    RefinementAgent,
    action_log_probs,
    apply_actions,
    select_actions,
)
from napari_cliprl.model.text import TextBank

__all__ = [
    "CLIPRL",
    "CLIPBackbone",
    "CLIPRLOutput",
    "Features",
    "RefinementAgent",
    "SegDecoder",
    "TextBank",
    "action_log_probs",
    "apply_actions",
    "build_model",
    "list_architectures",
    "read_checkpoint_config",
    "resolve_device",
    "save_checkpoint",
    "select_actions",
]
