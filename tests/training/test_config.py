"""FinetuneConfig is the single source of truth: options, round trip, validation, help text."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys

import pytest

from napari_cliprl.training.cli_options import (
    add_config_arguments,
    config_options,
    config_to_argv,
    field_comments,
    parse_config,
)
from napari_cliprl.training.config import (
    AugmentConfig,
    ConfigError,
    CurriculumConfig,
    FinetuneConfig,
    FusionConfig,
    RLConfig,
    SupervisedConfig,
    config_to_dict,
    get_field,
    replace_fields,
)

# every field away from its default (two configs: resume and overwrite exclude each other)
EVERYTHING = FinetuneConfig(
    data=["a folder", "-dash/b"],
    out="out dir",
    from_checkpoint="base",
    arch="tiny-test",
    clip_weights="hf-hub:org/repo",
    schema="cholecseg8k",
    input_size=(64, 80),
    device="cuda:1",
    ground_truth=True,
    supervised=SupervisedConfig(
        epochs=3,
        batch_size=5,
        learning_rate=0.125,
        backbone_lr=1e-5,
        weight_decay=0.0,
        dice_coef=0.5,
        grad_clip=2.0,
        train_backbone=False,
        train_backbone_blocks=2,
        warmup_steps=0,
    ),
    rl=RLConfig(
        iterations=7,
        imitation_iters=0,
        imitation="ce",
        imitation_beta=0.25,
        oracle_margin=0.0,
        algo="ppo",
        max_steps=2,
        num_envs=3,
        learning_rate=1e-4,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.0,
        vf_coef=1.0,
        bc_coef=0.0,
        clip_coef=0.1,
        update_epochs=2,
        num_minibatches=1,
        norm_adv=False,
        max_grad_norm=1.0,
        reward_scale=1.0,
        augment_copies=1,
    ),
    curriculum=CurriculumConfig(
        enabled=False,
        c0=0.5,
        power=3.0,
        w_specular=0.0,
        w_brightness=0.2,
        w_blur=0.3,
        w_classes=0.0,
        w_occlusion=0.4,
    ),
    augment=AugmentConfig(
        enabled=False,
        scale=(0.5, 2.0),
        hflip=0.0,
        vflip=0.5,
        brightness=0.0,
        contrast=0.1,
        saturation=0.0,
        hue=0.0,
    ),
    fusion=FusionConfig(
        enabled=False,
        video="the video.mp4",
        flow_cache="session dir",
        head_iterations=7,
        iterations_per_sample=3,
        learning_rate=0.5,
        anchor_decay=0.0,
        heldout_fraction=0.25,
        max_gap=9,
        neighbours=2,
        round_trip_max=2,
        round_trips_when=3,
        rl_share=0.25,
        side_actions=False,
    ),
    difficulty="image",
    warmup_epochs=0,
    val_fraction=0.0,
    min_epoch_frames=16,
    tstar_metric="challenge_iou",
    tstar_tol=0.0,
    changed_weight=1.0,
    checkpoint_every=1,
    log_every=1,
    resume=True,
    overwrite=False,
    seed=12345,
)
EVERYTHING_ELSE = dataclasses.replace(
    EVERYTHING, resume=False, overwrite=True, supervised=SupervisedConfig(train_backbone=True)
)

# today's flags (and the new ones) -> (field, a value, what it parses to)
FLAGS = [
    (["--epochs", "3"], "supervised.epochs", 3),
    (["--rl-iters", "9"], "rl.iterations", 9),
    (["--imitation-iters", "4"], "rl.imitation_iters", 4),
    (["--lr", "0.01"], "supervised.learning_rate", 0.01),
    (["--backbone-lr", "0.02"], "supervised.backbone_lr", 0.02),
    (["--algo", "ppo"], "rl.algo", "ppo"),
    (["--max-steps", "2"], "rl.max_steps", 2),
    (["--batch-size", "6"], "supervised.batch_size", 6),
    (["--no-curriculum"], "curriculum.enabled", False),
    (["--curriculum"], "curriculum.enabled", True),
    (["--train-backbone"], "supervised.train_backbone", True),
    (["--no-train-backbone"], "supervised.train_backbone", False),
    (["--val-fraction", "0.5"], "val_fraction", 0.5),
    (["--device", "cpu"], "device", "cpu"),
    (["--seed", "7"], "seed", 7),
    (["--resume"], "resume", True),
    (["--overwrite"], "overwrite", True),
    (["--from", "ck"], "from_checkpoint", "ck"),
    (["--arch", "tiny-test"], "arch", "tiny-test"),
    (["--clip-weights", "openai"], "clip_weights", "openai"),
    (["--schema", "endovis2018"], "schema", "endovis2018"),
    (["--input-size", "96", "120"], "input_size", (96, 120)),
    (["--num-envs", "2"], "rl.num_envs", 2),
    (["--warmup-epochs", "1"], "warmup_epochs", 1),
    (["--ground-truth"], "ground_truth", True),
]


def _leaves(config, prefix=""):
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def test_every_field_round_trips_through_the_command_line():
    default = dict(_leaves(FinetuneConfig()))
    changed = set()
    for config in (EVERYTHING, EVERYTHING_ELSE):
        argv = config_to_argv(config)
        assert parse_config(argv, FinetuneConfig) == config, argv
        changed |= {k for k, v in _leaves(config) if v != default[k]}
    assert changed == set(default), "fields the round trip never changes"
    assert config_to_argv(FinetuneConfig(data=["d"])) == ["--data", "d", "--out", default["out"]]


def test_every_field_has_one_option_with_help():
    options = list(config_options(FinetuneConfig))
    assert {".".join(o.path) for o in options} == set(dict(_leaves(FinetuneConfig())))
    assert len({o.flag for o in options}) == len(options)
    assert all(o.help for o in options), [o.flag for o in options if not o.help]
    comments = field_comments(SupervisedConfig)
    assert comments["train_backbone"].endswith("could not learn anything")  # continuation line


@pytest.mark.parametrize("argv,path,value", FLAGS, ids=[f[0][0] for f in FLAGS])
def test_todays_flags_and_the_new_ones_set_their_field(argv, path, value):
    config = parse_config(["--data", "d", "--out", "o", *argv], FinetuneConfig)
    assert get_field(config, path) == value
    assert parse_config(config_to_argv(config), FinetuneConfig) == config


def test_data_is_repeatable_and_data_and_out_are_required():
    config = parse_config(["--data", "a", "--data", "b", "--out", "o"], FinetuneConfig)
    assert config.data == ["a", "b"] and config.out == "o"
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_arguments(parser, FinetuneConfig)
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "a"])


@pytest.mark.parametrize(
    "make,names",
    [
        (lambda: RLConfig(algo="PPO"), ["algo", "'a2c', 'ppo'"]),
        (lambda: RLConfig(imitation="bc"), ["imitation", "'q', 'expected', 'ce'"]),
        (lambda: FinetuneConfig(difficulty="hard"), ["difficulty", "'crossfit', 'image'"]),
        (lambda: FinetuneConfig(tstar_metric="dice"), ["tstar_metric", "'miou'"]),
        (lambda: FinetuneConfig(device="gpu"), ["device", "cuda:N"]),
    ],
)
def test_choices_are_validated_with_the_allowed_values(make, names):
    with pytest.raises(ValueError) as info:
        make()
    assert all(n in str(info.value) for n in names), str(info.value)
    assert isinstance(info.value, ConfigError) and len(str(info.value).splitlines()) == 1


BAD_NUMBERS = [
    (lambda: SupervisedConfig(learning_rate=math.nan), "learning_rate"),
    (lambda: SupervisedConfig(learning_rate=0.0), "learning_rate"),
    (lambda: SupervisedConfig(backbone_lr=math.inf), "backbone_lr"),
    (lambda: SupervisedConfig(batch_size=0), "batch_size"),
    (lambda: SupervisedConfig(batch_size=10**9), "batch_size"),
    (lambda: SupervisedConfig(epochs=-1), "epochs"),
    (lambda: SupervisedConfig(epochs=2.5), "epochs"),
    (lambda: RLConfig(max_steps=-1), "max_steps"),
    (lambda: RLConfig(max_steps=11), "max_steps"),
    (lambda: RLConfig(num_envs=0), "num_envs"),
    (lambda: RLConfig(iterations=-3), "iterations"),
    (lambda: RLConfig(gamma=1.5), "gamma"),
    (lambda: RLConfig(learning_rate=-1e-3), "learning_rate"),
    (lambda: CurriculumConfig(c0=0.0), "c0"),
    (lambda: AugmentConfig(scale=(2.0, 1.0)), "scale"),
    (lambda: AugmentConfig(hflip=1.5), "hflip"),
    (lambda: FinetuneConfig(val_fraction=1.5), "val_fraction"),
    (lambda: FinetuneConfig(val_fraction=1.0), "val_fraction"),
    (lambda: FinetuneConfig(warmup_epochs=-1), "warmup_epochs"),
    (lambda: FinetuneConfig(input_size=(0, 80)), "input_size"),
    (lambda: FinetuneConfig(input_size=(10**6, 80)), "input_size"),
    (lambda: FinetuneConfig(data="one folder"), "data"),
    (lambda: FinetuneConfig(resume=True, overwrite=True), "resume"),
]


@pytest.mark.parametrize("make,option", BAD_NUMBERS)
def test_numbers_are_validated_one_line_naming_the_option(make, option):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.option == option
    assert str(info.value).startswith(f"{option}: ") and "\n" not in str(info.value)


def test_parsing_names_the_flag_not_the_field():
    with pytest.raises(ConfigError, match=r"^--lr: must be a finite number > 0, got nan$"):
        parse_config(["--data", "d", "--out", "o", "--lr", "nan"], FinetuneConfig)
    with pytest.raises(ConfigError, match=r"^--max-steps: must be between 1 and 10, got 11$"):
        parse_config(["--data", "d", "--out", "o", "--max-steps", "11"], FinetuneConfig)
    with pytest.raises(ConfigError, match=r"^--rl-gamma: "):
        parse_config(["--data", "d", "--out", "o", "--rl-gamma", "2"], FinetuneConfig)


def test_the_max_steps_bound_follows_the_named_limit(monkeypatch):
    with pytest.raises(ConfigError):
        RLConfig(max_steps=12)
    monkeypatch.setenv("CLIPRL_MAX_STEPS", "12")
    assert RLConfig(max_steps=12).max_steps == 12


def test_replace_fields_edits_dotted_fields_and_validates():
    config = replace_fields(FinetuneConfig(), {"rl.num_envs": 2, "supervised.epochs": 1})
    assert (config.rl.num_envs, config.supervised.epochs) == (2, 1)
    assert FinetuneConfig().rl.num_envs == 8  # the default is untouched
    with pytest.raises(ConfigError, match="num_envs"):
        replace_fields(config, {"rl.num_envs": 0})


def test_config_dict_is_json_and_numbers_are_normalised():
    config = FinetuneConfig(data=["d"], augment=AugmentConfig(scale=(1, 1), brightness=0))
    assert config.augment.scale == (1.0, 1.0) and isinstance(config.augment.brightness, float)
    assert json.loads(json.dumps(config_to_dict(EVERYTHING)))["rl"]["algo"] == "ppo"


def test_options_and_the_parser_do_not_import_torch():
    code = (
        "import sys; from napari_cliprl.cli import build_parser; "
        "build_parser().parse_args(['finetune', '--data', 'd', '--out', 'o']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
