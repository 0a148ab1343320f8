"""The manifest's contributions: widget, sample data, readers and writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cliprl_gui import error_messages, n_records
from npe2 import PluginManager
from PIL import Image

from napari_cliprl._napari._reader import get_reader
from napari_cliprl._napari._sample_data import make_sample_data
from napari_cliprl._napari._widget import AnnotatorWidget
from napari_cliprl.io.lazy import LazyFrames
from napari_cliprl.io.video import write_video

pytestmark = pytest.mark.gui
PLUGIN = "napari-cliprl"


def _write_video(path: Path, n: int = 4, h: int = 64, w: int = 80) -> None:
    write_video(path, (np.full((h, w, 3), 40 * i, np.uint8) for i in range(n)))


def test_manifest_contributions_load(make_napari_viewer):
    viewer = make_napari_viewer()  # discovers plugins
    manifest = PluginManager.instance().get_manifest(PLUGIN)
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == ["CLIP-RL annotator"]
    assert {"*.mp4", "*.avi", "*.mov", "*.mkv"} <= set(contributions.readers[0].filename_patterns)
    assert [s.key for s in contributions.sample_data] == ["synthetic_clip"]
    assert {tuple(w.layer_types) for w in contributions.writers} == {
        ("labels",),
        ("image", "labels"),
    }
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "CLIP-RL annotator")
    assert isinstance(widget, AnnotatorWidget)


def test_sample_data_opens_with_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synthetic_clip")
    image, truth = viewer.layers["synthetic clip"], viewer.layers["ground truth"]
    assert image.rgb and image.data.shape[1:] == (256, 320, 3)
    assert truth.data.shape == image.data.shape[:3]
    assert set(np.unique(truth.data)) >= {0, 1, 2, 3}  # instruments are in the clip
    np.testing.assert_allclose(truth.colormap.color_dict[4][:3], [1, 55 / 255, 0])
    assert truth.metadata["cliprl_schema"] == "endovis2018"


def test_video_opens_as_a_lazy_layer(make_napari_viewer, tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert isinstance(layer.data, LazyFrames)
    assert layer.data.shape == (4, 64, 80, 3) and layer.rgb
    assert abs(int(np.asarray(layer.data[2]).mean()) - 80) <= 3
    assert layer.metadata["cliprl_source"] == str(path)


def test_bad_file_gives_a_notification_not_an_exception(make_napari_viewer, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    viewer = make_napari_viewer()
    before = n_records()
    assert viewer.open(str(bad), plugin=PLUGIN) == []
    messages = error_messages(before)
    assert len(messages) == 1 and messages[0].startswith("Cannot open broken.mp4")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path)) is None  # a folder without frames

    seq = tmp_path / "seq_9"  # a label file with a colour of no class
    (seq / "left_frames").mkdir(parents=True)
    (seq / "labels").mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(seq / "left_frames" / "frame000.png")
    Image.fromarray(np.full((8, 10, 3), 7, np.uint8)).save(seq / "labels" / "frame000.png")
    before = n_records()
    _, labels = viewer.open(str(seq), plugin=PLUGIN)
    assert (np.asarray(labels.data[0]) == 255).all()  # shown as "ignore", nothing raised
    (message,) = error_messages(before)
    assert "frame000.png: 80 pixels have colours in no class" in message


def test_writer_and_reader_round_trip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    for data, meta, kind in make_sample_data(n_frames=4, size=(64, 80)):
        getattr(viewer, f"add_{kind}")(data, **meta)
    truth = viewer.layers["ground truth"]
    out = tmp_path / "seq_1"
    viewer.layers.selection = {viewer.layers["synthetic clip"], truth}
    written = viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
    assert len(written) == 2 * truth.data.shape[0] + 2
    assert (out / "labels.json").is_file() and (out / "left_frames" / "frame003.png").is_file()
    (out / "schema.json").unlink()  # now a plain EndoVis 2018 sequence folder

    viewer2 = make_napari_viewer()
    frames, labels = viewer2.open(str(out), plugin=PLUGIN)
    assert frames.data.shape == (4, 64, 80, 3) and labels.name == "ground truth"
    np.testing.assert_array_equal(np.asarray(labels.data[3]), truth.data[3])
    np.testing.assert_array_equal(np.asarray(frames.data[3]), viewer.layers[0].data[3])

    viewer.layers.selection = {truth}
    only = tmp_path / "labels_only"
    viewer.layers.save(str(only), selected=True, plugin=PLUGIN)
    assert len(list((only / "labels").iterdir())) == 4 and not (only / "left_frames").exists()
    with pytest.raises(FileExistsError):  # never overwrites
        viewer.layers.save(str(only), selected=True, plugin=PLUGIN)


def test_the_guide_names_the_reader_as_napari_offers_it(make_napari_viewer, tmp_path):
    """napari's "which reader?" dialog lists a plugin by its manifest's display name."""
    make_napari_viewer()  # discovers plugins
    video = tmp_path / "clip.mp4"
    _write_video(video)
    manifest = PluginManager.instance().get_manifest(PLUGIN)
    offered = {
        r.plugin_name for r in PluginManager.instance().iter_compatible_readers([str(video)])
    }
    assert PLUGIN in offered
    guide = (Path(__file__).parents[2] / "docs" / "user-guide.md").read_text()
    assert f"choose **{manifest.display_name}**" in guide
