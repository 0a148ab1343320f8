"""Curriculum (DESIGN 2.7): ordering, root pacing and growing episode length."""

import numpy as np

from napari_cliprl.training.curriculum import (
    CurriculumConfig,
    available_frames,
    competence,
    curriculum_order,
    episode_length,
    frame_difficulty,
    image_terms,
)


def test_easy_frames_come_first_and_pacing_grows_to_all():
    difficulty = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    order = curriculum_order(difficulty)
    assert order.tolist() == [1, 5, 3, 2, 4, 0]
    cfg = CurriculumConfig(c0=0.34)
    first = available_frames(order, 0.0, cfg)
    assert set(first.tolist()) == {1, 5, 3}  # the easiest third, never a hard frame
    sizes = [len(available_frames(order, p, cfg)) for p in np.linspace(0, 1, 11)]
    assert sizes == sorted(sizes) and sizes[-1] == 6
    assert competence(0.0, 0.34) == 0.34 and competence(1.0, 0.34) == 1.0
    assert competence(0.25) > 0.25  # root pacing: fast at first
    off = CurriculumConfig(enabled=False)
    assert len(available_frames(order, 0.0, off)) == 6


def test_episode_length_grows_one_two_three():
    lengths = [episode_length(p, 3) for p in np.linspace(0, 1, 13)]
    assert lengths[0] == 1 and lengths[-1] == 3
    assert lengths == sorted(lengths) and set(lengths) == {1, 2, 3}
    assert episode_length(0.0, 3, enabled=False) == 3


def test_difficulty_terms_rank_a_dark_blurry_cluttered_frame_harder():
    rng = np.random.default_rng(0)
    sharp = rng.integers(60, 200, (32, 40, 3), dtype=np.uint8)
    simple = np.zeros((32, 40), np.uint8)
    dark = np.full((32, 40, 3), 10, np.uint8)
    cluttered = rng.integers(0, 4, (32, 40)).astype(np.uint8)
    cfg = CurriculumConfig()
    easy = frame_difficulty(0.8, image_terms(sharp, simple, 4), cfg)
    hard = frame_difficulty(0.8, image_terms(dark, cluttered, 4), cfg)
    assert hard > easy
    assert frame_difficulty(0.2, image_terms(sharp, simple, 4), cfg) > easy
    terms = image_terms(sharp, simple, 4)
    assert all(0.0 <= v <= 1.0 for v in terms.values())
