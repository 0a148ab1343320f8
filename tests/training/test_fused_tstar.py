"""T* with a context (fusion_phase.choose_fused_steps)."""

from napari_cliprl.training.fusion_phase import choose_fused_steps


def _per_step(*mious: float) -> dict:
    return {f"step_{t}": {"miou": m, "pixels_to_change": 0.02} for t, m in enumerate(mious)}


def test_a_step_that_wins_on_held_out_frames_is_chosen():
    assert choose_fused_steps(_per_step(0.60, 0.65, 0.62), "miou", 0.001) == 1


def test_without_held_out_frames_the_agent_steps_are_not_trusted():
    assert choose_fused_steps(_per_step(0.60, 0.65, 0.62), "miou", 0.001, held_out=False) == 0
