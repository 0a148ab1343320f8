"""CLIP-RL model (torch only): backbone, text bank, decoder, refinement agent, builder."""

from napari_cliprl.model.backbone import CLIPBackbone, Features
from napari_cliprl.model.build import build_model
from napari_cliprl.model.checkpoint import CheckpointError, read_checkpoint_config, save_checkpoint
from napari_cliprl.model.cliprl import CLIPRL, CLIPRLOutput
from napari_cliprl.model.decoder import SegDecoder
from napari_cliprl.model.inference import predict_logits, upsample_labels
from napari_cliprl.model.policy import (
    RefinementAgent,
    action_log_probs,
    apply_actions,
    run_episode,
    select_actions,
)
from napari_cliprl.model.registry import ArchSpec, get_architecture, list_architectures
from napari_cliprl.model.text import TextBank

__all__ = [
    "CLIPRL",
    "ArchSpec",
    "CLIPBackbone",
    "CLIPRLOutput",
    "CheckpointError",
    "Features",
    "RefinementAgent",
    "SegDecoder",
    "TextBank",
    "action_log_probs",
    "apply_actions",
    "build_model",
    "get_architecture",
    "list_architectures",
    "predict_logits",
    "read_checkpoint_config",
    "run_episode",
    "save_checkpoint",
    "select_actions",
    "upsample_labels",
]
