"""Edge snapping: boundaries move onto image edges; the window scales with the frame."""

import numpy as np

from napari_cliprl.fusion.edges import scaled_radius, snap_to_edges


def _scene(h: int, w: int, edge: int) -> np.ndarray:
    """A grey frame, dark left of column ``edge``, bright from it on (RGB uint8)."""
    frame = np.full((h, w, 3), 200, np.uint8)
    frame[:, :edge] = 40
    return frame


def test_a_boundary_two_pixels_off_moves_onto_the_edge():
    frame = _scene(480, 640, edge=320)
    labels = np.zeros((480, 640), np.uint8)
    labels[:, 322:] = 3  # carried by the flow two pixels too far right
    snapped = snap_to_edges(labels, frame)
    assert (snapped[:, 320:] == 3).all() and (snapped[:, :320] == 0).all()


def test_the_radius_is_given_at_480_lines_and_scales_with_the_frame():
    assert scaled_radius(8, (480, 854)) == 8
    assert scaled_radius(8, (1080, 1920)) == 18
    assert scaled_radius(8, (64, 80)) == 1
    assert scaled_radius(0, (1080, 1920)) == 0


def test_a_small_region_on_a_small_frame_survives():
    """A 12-pixel blob on an 80 x 64 frame (a user's brush stroke carried to the next frame)
    with a fixed 8-pixel window would be absorbed by its surroundings."""
    frame = _scene(64, 80, edge=40)
    labels = np.zeros((64, 80), np.uint8)
    labels[20:32, 50:62] = 4
    snapped = snap_to_edges(labels, frame)
    assert (snapped[20:32, 50:62] == 4).mean() > 0.9
    np.testing.assert_array_equal(snap_to_edges(labels, frame, radius=0), labels)
