"""The run loop with propagation: reviewed frames as anchors, never touched; flows computed once;
re-proposing after a review touches exactly the frames whose nearest reviewed frame changed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from _fusion_data import SIZE, ShiftFlows, stripes

from napari_cliprl.annotation.repropose import frames_to_repropose, repropose
from napari_cliprl.annotation.run import predict_sequence
from napari_cliprl.annotation.session import CORRECTED, PROPAGATED, Session
from napari_cliprl.schemas import get_schema

N = 10
STEP = 2


class RecordingPredictor:
    """Proposes class 7 everywhere; records the frames and contexts it was asked for."""

    def __init__(self):
        self.calls: list[tuple[int, object]] = []

    def predict(self, frame, steps=None, key=None, context=None):
        self.calls.append((key[1], context))
        maps = [np.full(SIZE, 7, np.uint8)] * ((steps or 0) + 1)
        return SimpleNamespace(zero_shot=maps[0], steps=maps, entropy=[0.5] * len(maps))


def _session(tmp_path, reviewed=(2, 7)) -> Session:
    session = Session.create(
        tmp_path / "s", source=None, shape=(N, *SIZE), schema=get_schema("cholecseg8k"), steps=1
    )
    for i in range(N):  # earlier proposals everywhere
        session.write_prediction(i, np.full(SIZE, 9, np.uint8), [np.full(SIZE, 9, np.uint8)] * 2)
    for i in reviewed:
        session.array(CORRECTED)[i] = stripes(offset=STEP * i)
    session.mark_reviewed(reviewed)
    return session


def _frames():
    return [np.zeros((*SIZE, 3), np.uint8)] * N


def _snapshot(session: Session, frames) -> dict:
    return {(n, i): np.array(session.array(n)[i]) for n in session.layer_names for i in frames}


def test_reviewed_frames_are_anchors_and_never_change(tmp_path):
    session = _session(tmp_path)
    before = _snapshot(session, [2, 7])
    predictor = RecordingPredictor()
    done = list(
        predict_sequence(predictor, _frames(), range(N), session, key="v", flows=ShiftFlows(N))
    )
    assert [d.index for d in done] == [0, 1, 3, 4, 5, 6, 8, 9]  # gap by gap, reviewed skipped
    assert all(d.propagated for d in done)
    after = _snapshot(session, [2, 7])
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # frame 4 sees frame 2 carried forward and frame 7 carried backward
    ctx = dict(predictor.calls)[4]
    assert (ctx.forward.anchor, ctx.forward.distance) == (2, 2)
    assert (ctx.backward.anchor, ctx.backward.distance) == (7, 3)
    moved = ctx.forward.conf > 0
    np.testing.assert_array_equal(ctx.forward.labels[moved], stripes(offset=STEP * 4)[moved])
    np.testing.assert_array_equal(session.array(PROPAGATED)[4], ctx.propagated)
    assert (session.array(PROPAGATED)[2] == 255).all()  # nothing propagated onto an anchor
    assert (session.array("step 1")[4] == 7).all()


def test_without_propagation_every_frame_runs_on_its_own(tmp_path):
    session = _session(tmp_path)
    predictor = RecordingPredictor()
    list(predict_sequence(predictor, _frames(), [3, 2], session, key="v", propagate=False))
    assert predictor.calls == [(3, None), (2, None)]


def test_the_flow_cache_is_reused_by_a_second_propagation(tmp_path):
    from napari_cliprl.flow import FlowCache

    rng = np.random.default_rng(0)
    frames = [(rng.random((*SIZE, 3)) * 255).astype(np.uint8) for _ in range(N)]
    session = _session(tmp_path)
    cache = FlowCache(frames, tmp_path / "flows")
    list(predict_sequence(RecordingPredictor(), frames, range(N), session, key="v", flows=cache))
    computed = cache.stats.computed
    assert computed == N - 1  # each consecutive pair once
    list(predict_sequence(RecordingPredictor(), frames, range(N), session, key="v", flows=cache))
    assert cache.stats.computed == computed  # nothing estimated again
    reopened = FlowCache(frames, tmp_path / "flows")  # e.g. the session opened again
    list(repropose(RecordingPredictor(), frames, session, 7, key="v", flows=reopened))
    assert reopened.stats.computed == 0 and reopened.stats.disk_reads > 0


def test_which_frames_a_review_re_proposes():
    assert frames_to_repropose(5, [2, 5, 9], 12) == [6, 7, 8, 3, 4]
    assert frames_to_repropose(5, [5], 8) == [6, 7, 0, 1, 2, 3, 4]  # to the video's ends
    assert frames_to_repropose(0, [0, 1], 4) == []
    assert frames_to_repropose(3, [], 5) == [4, 0, 1, 2]  # not yet in the reviewed list
    with pytest.raises(IndexError):
        frames_to_repropose(5, [], 5)


def test_re_proposing_touches_exactly_the_frames_between_the_reviewed_neighbours(tmp_path):
    session = _session(tmp_path, reviewed=(2, 7))
    session.array(CORRECTED)[5] = stripes(offset=STEP * 5)
    session.mark_reviewed([5])
    written = []
    original = session.write_prediction
    session.write_prediction = lambda i, *a, **kw: (written.append(i), original(i, *a, **kw))
    before = _snapshot(session, [0, 1, 2, 5, 7, 8, 9])
    predictor = RecordingPredictor()
    done = list(repropose(predictor, _frames(), session, 5, key="v", flows=ShiftFlows(N)))
    assert [d.index for d in done] == written == [6, 3, 4]  # after it first, then before it
    assert all(ctx.forward.anchor in (2, 5) for _, ctx in predictor.calls)
    after = _snapshot(session, [0, 1, 2, 5, 7, 8, 9])
    assert all(np.array_equal(before[k], after[k]) for k in before)
    session.mark_reviewed([6], reviewed=False)
    with pytest.raises(ValueError, match="not marked reviewed"):
        list(repropose(predictor, _frames(), session, 6))
