"""The configuration of a fine-tune: one dataclass per part, the single source of truth.

:class:`FinetuneConfig` describes a whole run of ``finetune(config)``. The command line's
options (:mod:`napari_cliprl.training.cli_options`), the widget's fine-tune options (a view of a
FinetuneConfig, ``annotation.finetune_job.widget_preset``) and the "equivalent command" are all
derived from these dataclasses, their defaults and the comment after each field (the help text).

Every choice is a ``Literal`` and every number is checked in ``__post_init__``: a bad value
raises :class:`ConfigError` (a ValueError), one line naming the option, the value and what is
allowed, before any data is read or any folder touched.

Importing this module is cheap (no torch), so that ``cliprl --help`` stays fast.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from napari_cliprl.limits import limit
from napari_cliprl.training.checks import (
    ConfigError,
    check_bool,
    check_choice,
    check_count,
    check_number,
    check_pair,
)
from napari_cliprl.training.fusion_config import FusionConfig

Algo = Literal["a2c", "ppo"]
Imitation = Literal["q", "expected", "ce"]
Difficulty = Literal["crossfit", "image"]
TstarMetric = Literal["miou", "iou", "mciou", "challenge_iou"]

MAX_EPOCHS = 100_000  # phase A epochs, warm-up epochs (an epoch plan is kept per epoch)
MAX_ITERATIONS = 10_000_000  # RL updates, optimiser warm-up steps, report intervals
MAX_SMALL = 1_000  # small counts: PPO epochs and minibatches, augmented copies, ViT blocks
MIN_INPUT_SIDE = 32  # smallest network input side: a few patches of a ViT
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


# -- callbacks (plain functions, no Qt; rank 0 only) -----------------------------------------
class ProgressFn(Protocol):
    def __call__(self, done: int, total: int, message: str = "", /) -> None: ...


StopFn = Callable[[], bool]  # polled between batches and iterations; True stops (resumable)
Metrics = dict[str, Any]  # one epoch's / logged iteration's / the final T* report
MetricsFn = Callable[[Metrics], None]


@dataclass(frozen=True)
class Callbacks:
    """What ``finetune`` calls while it runs (see docs/training.md for the metric dicts)."""

    progress: ProgressFn | None = None  # after every epoch / logged RL iteration
    should_stop: StopFn | None = None  # a stop writes a resumable checkpoint
    on_metrics: MetricsFn | None = None  # a live loss curve


# -- the parts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SupervisedConfig:
    """Phase A (supervised): decoder and text residual; CLIP frozen unless asked."""

    FLAGS: ClassVar[dict[str, str]] = {
        "epochs": "--epochs",
        "batch_size": "--batch-size",
        "learning_rate": "--lr",
        "backbone_lr": "--backbone-lr",
        "train_backbone": "--train-backbone",
    }

    epochs: int = 10  # passes over the training frames
    batch_size: int = 4  # frames per step and process
    learning_rate: float = 1e-3  # AdamW, decoder and text residual
    backbone_lr: float = 2e-4  # AdamW, trainable backbone parameters
    weight_decay: float = 1e-4  # AdamW weight decay (not on norms/biases/residual)
    dice_coef: float = 1.0  # weight of the soft Dice term next to the cross-entropy
    grad_clip: float = 1.0  # max gradient norm (0: no clipping)
    train_backbone: bool | None = None  # unfreeze the whole backbone; None: only for random-
    # weight architectures (tiny-test), whose frozen random backbone could not learn anything
    train_backbone_blocks: int = 0  # else: unfreeze the last N ViT blocks (pretrained CLIP)
    warmup_steps: int = 10  # linear learning-rate warm-up, then cosine decay to 10%

    def __post_init__(self) -> None:
        check_count(self, "epochs", 0, MAX_EPOCHS)
        check_count(self, "batch_size", 1, limit("MAX_BATCH"))
        check_number(self, "learning_rate", 0.0, low_open=True)
        check_number(self, "backbone_lr", 0.0, low_open=True)
        check_number(self, "weight_decay", 0.0)
        check_number(self, "dice_coef", 0.0)
        check_number(self, "grad_clip", 0.0)
        check_bool(self, "train_backbone", optional=True)
        check_count(self, "train_backbone_blocks", 0, MAX_SMALL)
        check_count(self, "warmup_steps", 0, MAX_ITERATIONS)


@dataclass(frozen=True)
class RLConfig:
    """Phase B (reinforcement learning): the refinement agent on cached decoder outputs."""

    FLAGS: ClassVar[dict[str, str]] = {
        "iterations": "--rl-iters",
        "imitation_iters": "--imitation-iters",
        "algo": "--algo",
        "max_steps": "--max-steps",
        "num_envs": "--num-envs",
    }

    iterations: int = 200  # A2C/PPO updates after the warm start (0: imitation only)
    imitation_iters: int = 100  # warm-start updates on the greedy one-step oracle action
    imitation: Imitation = "q"  # warm-start loss: "q" regresses every action's reward,
    # "expected" maximises the expected reward, "ce" imitates the oracle's argmax
    imitation_beta: float = 0.5  # warm start: follow the oracle with this probability per cell
    oracle_margin: float = 0.05  # the oracle keeps unless an action gains more than this
    algo: Algo = "a2c"  # "a2c" (synchronous advantage actor-critic) or "ppo"
    max_steps: int = 3  # episode length T at the end of the curriculum
    num_envs: int = 8  # episodes (frames) per update and process
    learning_rate: float = 3e-3  # Adam
    gamma: float = 1.0  # discount; 1: a return is the whole remaining Brier improvement
    gae_lambda: float = 1.0  # 1: n-step (Monte-Carlo) returns, as in A2C
    ent_coef: float = 0.01  # entropy bonus
    vf_coef: float = 0.5  # value loss weight
    bc_coef: float = 0.1  # oracle cross-entropy kept during RL (0: pure RL)
    clip_coef: float = 0.2  # PPO surrogate clipping
    update_epochs: int = 4  # PPO epochs per rollout
    num_minibatches: int = 2  # PPO minibatches (over episodes) per epoch
    norm_adv: bool = True  # normalise advantages per batch
    max_grad_norm: float = 0.5  # gradient clipping
    reward_scale: float = 10.0  # rewards are multiplied by this (per-cell gains are small)
    augment_copies: int = 4  # cached states per training frame: 1 plain + augmented copies

    def __post_init__(self) -> None:
        check_count(self, "iterations", 0, MAX_ITERATIONS)
        check_count(self, "imitation_iters", 0, MAX_ITERATIONS)
        check_choice(self, "imitation", Imitation)
        check_number(self, "imitation_beta", 0.0, 1.0)
        check_number(self, "oracle_margin", 0.0)
        check_choice(self, "algo", Algo)
        check_count(self, "max_steps", 1, limit("MAX_STEPS"))
        check_count(self, "num_envs", 1, limit("MAX_BATCH"))
        check_number(self, "learning_rate", 0.0, low_open=True)
        check_number(self, "gamma", 0.0, 1.0)
        check_number(self, "gae_lambda", 0.0, 1.0)
        for name in ("ent_coef", "vf_coef", "bc_coef", "max_grad_norm"):
            check_number(self, name, 0.0)
        check_number(self, "clip_coef", 0.0, low_open=True)
        check_count(self, "update_epochs", 1, MAX_SMALL)
        check_count(self, "num_minibatches", 1, MAX_SMALL)
        check_bool(self, "norm_adv")
        check_number(self, "reward_scale", 0.0, low_open=True)
        check_count(self, "augment_copies", 1, MAX_SMALL)


@dataclass(frozen=True)
class CurriculumConfig:
    """Curriculum: frames easy to hard (root pacing) and the RL episode length growing."""

    FLAGS: ClassVar[dict[str, str]] = {"enabled": "--curriculum"}

    enabled: bool = True  # False: every frame from the start, T = max_steps throughout
    c0: float = 0.34  # competence at p = 0: fraction of (easiest) frames available at first
    power: float = 2.0  # root pacing c(p) = min(1, (p (1 - c0^p) + c0^p) ** (1/p)), 2 = sqrt
    w_specular: float = 0.1  # weight of the specular-highlight fraction
    w_brightness: float = 0.1  # weight of |mean brightness - 0.45| (0.45: well exposed)
    w_blur: float = 0.1  # weight of the blur term (1 - sharpness)
    w_classes: float = 0.05  # weight of (classes in the frame) / K
    w_occlusion: float = 0.1  # weight of the boundary density (occlusion proxy)

    def __post_init__(self) -> None:
        check_bool(self, "enabled")
        check_number(self, "c0", 0.0, 1.0, low_open=True)
        check_number(self, "power", 0.0, 100.0, low_open=True)
        for name in ("w_specular", "w_brightness", "w_blur", "w_classes", "w_occlusion"):
            check_number(self, name, 0.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of phase A items and of phase B's cached copies."""

    FLAGS: ClassVar[dict[str, str]] = {"enabled": "--augment"}

    enabled: bool = True  # False: items are only resized
    scale: tuple[float, float] = (0.75, 1.33)  # zoom range; < 1 pads with ignore, > 1 crops
    hflip: float = 0.5  # probability of a horizontal flip
    vflip: float = 0.0  # probability of a vertical flip (endoscopes are rarely upside down)
    brightness: float = 0.3  # multiply by U(1 - b, 1 + b)  (lighting robustness)
    contrast: float = 0.3  # blend with the mean grey by U(1 - c, 1 + c)
    saturation: float = 0.2  # blend with the grey image by U(1 - s, 1 + s)
    hue: float = 0.04  # rotate hue by U(-h, h) turns (YIQ rotation)

    def __post_init__(self) -> None:
        check_bool(self, "enabled")
        _set(self, "scale", check_pair(self, "scale", float))
        low, high = self.scale
        if not (math.isfinite(low) and math.isfinite(high) and 0.1 <= low <= high <= 10.0):
            problem = f"must be LOW HIGH with 0.1 <= LOW <= HIGH <= 10, got {self.scale}"
            raise ConfigError("scale", problem)
        for name in ("hflip", "vflip", "brightness", "contrast", "saturation"):
            check_number(self, name, 0.0, 1.0)
        check_number(self, "hue", 0.0, 0.5)


# -- the whole run --------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tune run: data, model, the phases, curriculum, T*, checkpoint and resume."""

    FLAGS: ClassVar[dict[str, str]] = {"from_checkpoint": "--from"}
    REQUIRED: ClassVar[tuple[str, ...]] = ("data", "out")  # on the command line
    METAVARS: ClassVar[dict[str, Any]] = {
        "data": "DIR",
        "out": "CKPT_DIR",
        "from_checkpoint": "CKPT",
        "input_size": ("H", "W"),
    }

    data: list[str] = field(default_factory=list)  # labelled folder, or a folder of them
    # (repeatable); from an export only the frames its manifest marks reviewed
    out: str = "cliprl-checkpoint"  # checkpoint folder to write (only ever replaces a
    # checkpoint written by napari-cliprl, and only with overwrite)
    from_checkpoint: str | None = None  # start from this checkpoint; None: a new model
    arch: str = "ViT-B-16"  # architecture of a new model (tiny-test for tests and demos)
    clip_weights: str | None = None  # open_clip tag, hf-hub:ORG/REPO or a local file; None:
    # "openai" for a new CLIP architecture, the checkpoint's own with from_checkpoint
    schema: str | None = None  # label schema name or JSON file; None: the data's
    input_size: tuple[int, int] | None = None  # network input (h, w); None: the default
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps (torchrun: this rank's GPU)
    ground_truth: bool = False  # folders without a manifest.json are ground truth (without
    # this, only frames a manifest marks reviewed, or known dataset layouts, are trained on)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    difficulty: Difficulty = "crossfit"  # "crossfit": warm-up decoders on 2 folds; "image":
    # image terms only
    warmup_epochs: int = 2  # epochs of each cross-fitted curriculum warm-up decoder
    val_fraction: float = 0.2  # held-out frames (evenly spaced) for validation and T*
    min_epoch_frames: int = 0  # an epoch draws at least this many samples (repeats, new
    # augmentation): a few corrected frames still make a useful epoch
    tstar_metric: TstarMetric = "miou"  # metric T* maximises on the held-out frames
    tstar_tol: float = 0.005  # a step must beat fewer steps by more than this to be chosen
    changed_weight: float = 2.0  # loss weight of pixels the annotator changed (changed/)
    checkpoint_every: int = 50  # RL iterations between checkpoints
    log_every: int = 10  # RL iterations between metric reports
    resume: bool = False  # continue the run saved in out (after a stop or a kill)
    overwrite: bool = False  # replace a napari-cliprl checkpoint already in out
    seed: int = 0  # seeds data order, augmentation and RL sampling

    def __post_init__(self) -> None:
        self._check_paths()
        if self.input_size is not None:
            _set(self, "input_size", check_pair(self, "input_size", int))
            if not all(MIN_INPUT_SIDE <= s <= limit("MAX_INPUT_SIDE") for s in self.input_size):
                raise ConfigError(
                    "input_size",
                    f"each side must be between {MIN_INPUT_SIDE} and "
                    f"{limit('MAX_INPUT_SIDE')}, got {self.input_size}",
                )
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError("device", f"{self.device!r} is not auto, cpu, cuda, cuda:N or mps")
        for name in ("ground_truth", "resume", "overwrite"):
            check_bool(self, name)
        self._check_parts()
        check_choice(self, "difficulty", Difficulty)
        check_count(self, "warmup_epochs", 0, MAX_EPOCHS)
        check_number(self, "val_fraction", 0.0, 1.0, high_open=True)
        check_count(self, "min_epoch_frames", 0, MAX_ITERATIONS)
        check_choice(self, "tstar_metric", TstarMetric)
        check_number(self, "tstar_tol", 0.0, 1.0)
        check_number(self, "changed_weight", 0.0, 1000.0, low_open=True)
        check_count(self, "checkpoint_every", 1, MAX_ITERATIONS)
        check_count(self, "log_every", 1, MAX_ITERATIONS)
        check_count(self, "seed", 0, 2**63 - 1)
        if self.resume and self.overwrite:
            problem = "continues the run saved in out, overwrite replaces it: pick one"
            raise ConfigError("resume", problem)

    def _check_paths(self) -> None:
        one_path = isinstance(self.data, str | bytes | os.PathLike)
        if one_path or not isinstance(self.data, list | tuple):
            raise ConfigError("data", f"must be a list of folders, got {self.data!r}")
        _set(self, "data", [_path_text("data", d) for d in self.data])
        _set(self, "out", _path_text("out", self.out))
        for name in ("from_checkpoint", "clip_weights", "schema"):
            if getattr(self, name) is not None:
                _set(self, name, _path_text(name, getattr(self, name)))
        if not isinstance(self.arch, str) or not self.arch:
            raise ConfigError("arch", f"must be an architecture name, got {self.arch!r}")

    def _check_parts(self) -> None:
        for name, kind in (
            ("supervised", SupervisedConfig),
            ("rl", RLConfig),
            ("curriculum", CurriculumConfig),
            ("augment", AugmentConfig),
            ("fusion", FusionConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(name, f"must be a {kind.__name__}, got {getattr(self, name)!r}")


def _set(config: Any, name: str, value: Any) -> None:
    """Normalise a field of a frozen config in its ``__post_init__``."""
    object.__setattr__(config, name, value)


def _path_text(name: str, value: Any) -> str:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(name, f"must be a path or name, got {value!r}")
    return os.fspath(value)


@dataclass
class FinetuneResult:
    """What ``finetune`` returns."""

    checkpoint: Path  # the checkpoint folder (loadable by build_model / cliprl predict)
    history: list[Metrics]  # one dict per epoch / logged RL iteration / final T*
    tstar: int = 0  # agent steps chosen on the held-out frames (0: refinement did not help)
    stopped: bool = False  # should_stop() ended training early (the checkpoint can resume)


# -- views: a config as a dict, fields by dotted name ----------------------------------------
def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (stored in checkpoints); tuples become lists."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, list):
            value = list(value)
        out[f.name] = value
    return out


def get_field(config: Any, path: str) -> Any:
    """The value of a dotted field name, e.g. ``get_field(config, "rl.num_envs")``."""
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def replace_fields(config: Any, changes: Mapping[str, Any]) -> Any:
    """A copy of ``config`` with dotted fields replaced (and validated), e.g.
    ``replace_fields(config, {"supervised.epochs": 3, "device": "cpu"})``."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = replace_fields(direct.get(head, getattr(config, head)), sub)
    return replace(config, **direct)
