"""The session store (zarr label stacks, reviewed flags, restore) and the core annotation
loop, without a viewer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from napari_cliprl.annotation.export import export_session
from napari_cliprl.annotation.run import predict_sequence
from napari_cliprl.annotation.session import (
    CORRECTED,
    Session,
    SessionError,
    default_session_dir,
    find_session,
)
from napari_cliprl.errors import describe_error
from napari_cliprl.io import read_labeled
from napari_cliprl.io.lazy import EditableLazyArray, LazyArray, as_frames
from napari_cliprl.schemas import get_schema
from napari_cliprl.steps import proposal_labels

T, H, W, STEPS = 5, 12, 16, 2


class FakePredictor:
    """Step t of frame i is filled with (i + t) % 4: easy to check."""

    def predict(self, frame, steps=None, key=None, prior=None, prior_weight=None):
        i = int(frame[0, 0, 0])
        maps = [np.full((H, W), (i + t) % 4, np.uint8) for t in range(steps + 1)]
        return SimpleNamespace(zero_shot=np.full((H, W), 5, np.uint8), steps=maps, entropy=[])


@pytest.fixture
def frames() -> np.ndarray:
    return np.stack([np.full((H, W, 3), i, np.uint8) for i in range(T)])


@pytest.fixture
def session(tmp_path) -> Session:
    return Session.create(
        default_session_dir(tmp_path / "video.mp4"),
        source=tmp_path / "video.mp4",
        shape=(T, H, W),
        schema=get_schema("endovis2018"),
        steps=STEPS,
    )


def test_label_stacks_are_chunked_per_frame_on_disk(session):
    assert session.layer_names == ["zero-shot", "step 0", "step 1", "step 2", CORRECTED]
    array = session.array(CORRECTED)
    assert array.shape == (T, H, W) and array.chunks == (1, H, W) and array.dtype == np.uint8
    assert session.folder.name == "video.mp4.cliprl-session"
    with pytest.raises(KeyError, match="no layer 'step 9'"):
        session.array("step 9")


def test_predictions_stream_into_the_session(session, frames):
    done = list(predict_sequence(FakePredictor(), frames, [1, 3], session))
    assert [(d.index, d.done, d.total) for d in done] == [(1, 1, 2), (3, 2, 2)]
    assert session.predicted == [1, 3]
    assert (session.array("step 2")[3] == 1).all() and (session.array("zero-shot")[1] == 5).all()
    assert session.init_corrected(3) and (session.array(CORRECTED)[3] == 1).all()
    assert not session.array(CORRECTED)[0].any()  # frames never run stay empty


def test_reviewed_flags_and_edits_survive_reopening(session, frames, tmp_path):
    list(predict_sequence(FakePredictor(), frames, range(T), session))
    session.array(CORRECTED)[2, :4, :4] = 7  # as a paint stroke writes it
    assert session.mark_reviewed([2, 4, 99]) == [2, 4]
    assert session.mark_reviewed([2]) == []
    assert not session.init_corrected(2)  # a reviewed frame is never overwritten
    assert session.next_unreviewed(after=1) == 3 and session.next_unreviewed(after=4) == 0

    session.close()  # reopen from disk, not the open session
    again = Session.open(find_session(tmp_path / "video.mp4"))
    assert again.reviewed == [2, 4] and again.predicted == list(range(T))
    assert (again.array(CORRECTED)[2, :4, :4] == 7).all()
    data = json.loads((again.folder / "session.json").read_text())
    assert data["source"].endswith("video.mp4") and data["schema"]["name"] == "endovis2018"


def test_changing_steps_keeps_corrections(session, frames):
    list(predict_sequence(FakePredictor(), frames, range(T), session))
    session.array(CORRECTED)[0] = 3
    session.mark_reviewed([0])
    assert session.set_model(steps=4, checkpoint=None, checkpoint_hash=None, model="tiny-test")
    assert session.layer_names[:-1] == proposal_labels(4) and session.predicted == []
    assert (session.array(CORRECTED)[0] == 3).all() and session.reviewed == [0]
    assert not session.set_model(steps=4, checkpoint=None, checkpoint_hash=None, model="tiny-test")


def test_incompatible_data_and_existing_sessions_are_refused(session):
    with pytest.raises(SessionError, match="session is for 5 frames"):
        session.check_compatible((6, H, W), session.schema)
    with pytest.raises(SessionError, match="uses schema 'endovis2018'"):
        session.check_compatible((T, H, W), get_schema("endovis2017-binary"))
    with pytest.raises(SessionError, match="exists there already"):
        Session.create(session.folder, source=None, shape=(T, H, W), schema=session.schema, steps=1)
    with pytest.raises(SessionError, match="no session here"):
        Session.open(session.folder.parent / "elsewhere")


def test_export_writes_reviewed_frames_and_never_overwrites(session, frames, tmp_path):
    from napari_cliprl.training.dataset import changed_mask

    list(predict_sequence(FakePredictor(), frames, range(T), session))
    for i in (1, 3):
        session.init_corrected(i)
    edit = np.asarray(session.array(CORRECTED)[3])
    edit[:4, :5] = 7  # the annotator repaints a corner of frame 3
    session.array(CORRECTED)[3] = edit
    session.mark_reviewed([3, 1])
    out = tmp_path / "export"
    export_session(session, out, as_frames(frames))
    seq = read_labeled(out, reviewed_only=True)
    assert seq.indices == [1, 3] and seq.frame_names == ["frame001", "frame003"]
    np.testing.assert_array_equal(seq.labels(1), session.array(CORRECTED)[3])
    np.testing.assert_array_equal(seq.frames[0], frames[1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["reviewed"] for f in manifest["frames"]] == [True, True]
    # the pixels a person changed weigh more in fine-tuning: exported as changed/ masks
    expected = np.zeros((H, W), bool)
    expected[:4, :5] = edit[:4, :5] != (3 + STEPS) % 4  # unless the proposal had 7 already
    np.testing.assert_array_equal(changed_mask(seq, 1), expected)
    assert not changed_mask(seq, 0).any()  # frame 1 was accepted as proposed
    with pytest.raises(FileExistsError, match="frame001.png exists"):
        export_session(session, out, as_frames(frames))
    export_session(session, out, as_frames(frames), overwrite=True)


def test_export_without_reviewed_frames_says_so(session, tmp_path):
    with pytest.raises(ValueError, match="no reviewed frames"):
        export_session(session, tmp_path / "out")


def test_lazy_arrays_read_only_what_is_indexed():
    reads = []

    def get(i):
        reads.append(i)
        return np.full((4, 5), i % 256, np.uint8)

    lazy = LazyArray(get, 10_000, (4, 5))
    assert lazy.shape == (10_000, 4, 5) and lazy.ndim == 3
    assert lazy[7, 1, 2] == 7 and lazy[-1].shape == (4, 5)
    assert lazy[2:5, 0].shape == (3, 5) and reads == [7, 9999, 2, 3, 4]

    editable = EditableLazyArray(get, 3, (4, 5))
    editable[slice(1, 2), 0:2, 0:2] = 9
    editable[(np.array([2, 2]), np.array([0, 1]), np.array([0, 0]))] = 8
    assert editable[1, 0, 0] == 9 and editable[2, 1, 0] == 8 and editable[0, 0, 0] == 0
    assert sorted(editable.edited) == [1, 2]


def test_errors_become_one_sentence():
    assert describe_error(RuntimeError("CUDA out of memory. Tried to allocate"), "cuda").startswith(
        "Out of memory on cuda"
    )
    assert describe_error(ValueError("bad schema")) == "bad schema."
    grey = as_frames(np.zeros((2, 4, 5), np.uint16), rgb=False)
    assert grey.shape == (2, 4, 5, 3) and grey[1].dtype == np.uint8
