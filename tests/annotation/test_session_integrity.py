"""A session folder that is damaged, crafted, read-only or open elsewhere: refused with one line
naming the file, never a traceback from below, never silent loss of a reviewed flag or an edit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import napari_cliprl.annotation.session as session_mod
from napari_cliprl import limits
from napari_cliprl.annotation.export import export_session
from napari_cliprl.annotation.run import predict_sequence
from napari_cliprl.annotation.session import CORRECTED, Session, SessionError
from napari_cliprl.schemas import get_schema

T, H, W, STEPS = 6, 8, 10, 1


class FakePredictor:
    def predict(self, frame, steps=None, key=None, prior=None, prior_weight=None):
        i = int(frame[0, 0, 0])
        maps = [np.full((H, W), (i + t) % 3 + 1, np.uint8) for t in range(steps + 1)]
        return SimpleNamespace(zero_shot=np.full((H, W), 4, np.uint8), steps=maps, entropy=[])


FRAMES = np.stack([np.full((H, W, 3), i, np.uint8) for i in range(T)])


def make_session(folder: Path, reviewed=(1, 3)) -> Path:
    """A closed session in ``folder``: every frame predicted, ``reviewed`` edited + reviewed."""
    session = Session.create(
        folder, source=None, shape=(T, H, W), schema=get_schema("endovis2018"), steps=STEPS
    )
    list(predict_sequence(FakePredictor(), FRAMES, range(T), session))
    for i in reviewed:
        session.array(CORRECTED)[i] = 7
    session.mark_reviewed(reviewed)
    session.close()
    return folder


def edit_json(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


def refused(folder: Path, match: str, **kwargs) -> str:
    with pytest.raises(SessionError, match=match) as info:
        Session.open(folder, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- session.json is validated in full --------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"reviewed": [10**9]}, r"'reviewed'.*1000000000.*0\.\.5"),
        ({"reviewed": [-1]}, r"'reviewed'.*-1.*0\.\.5"),
        ({"reviewed": [True]}, "'reviewed'"),
        ({"reviewed": "1,2"}, "'reviewed'"),
        ({"predicted": [6]}, "'predicted'"),
        ({"steps": 3000}, "steps"),
        ({"steps": -1}, "steps"),
        ({"steps": "two"}, "steps"),
        ({"shape": [T, H]}, "'shape'"),
        ({"shape": [T, H, "W"]}, "'shape'"),
        ({"shape": [10**12, H, W]}, "limit"),
        ({"shape": [T, 10**6, 10**6]}, "limit"),
        ({"uncertainty": {"2": "nan"}}, "'uncertainty'"),
        ({"uncertainty": {"99": 0.5}}, "'uncertainty'"),
        ({"uncertainty": [1, 2]}, "'uncertainty'"),
        ({"schema": {"name": "x"}}, "schema"),
        ({"source": 5}, "'source'"),
        ({"version": 99}, "version"),
    ],
)
def test_malformed_session_json_is_refused_naming_the_file(tmp_path, changes, match):
    folder = make_session(tmp_path / "s")
    edit_json(folder / "session.json", **changes)
    message = refused(folder, match)
    assert message.startswith(str(folder / "session.json"))
    assert len(list(folder.glob("labels.zarr/*/zarr.json"))) == STEPS + 3  # nothing was created


def test_nan_uncertainty_is_refused(tmp_path):
    folder = make_session(tmp_path / "s")
    text = (folder / "session.json").read_text()
    data = json.loads(text)
    data["uncertainty"] = {"2": 0.5}
    (folder / "session.json").write_text(json.dumps(data).replace("0.5", "NaN"))
    refused(folder, "'uncertainty'")


def test_session_json_as_a_device_or_fifo_is_refused_at_once(tmp_path):
    folder = make_session(tmp_path / "s")
    file = folder / "session.json"
    file.unlink()
    file.symlink_to("/dev/zero")
    refused(folder, "not a regular file")
    file.unlink()
    os.mkfifo(file)
    outcome: list = []

    def open_it():
        try:
            Session.open(folder)
        except SessionError as e:
            outcome.append(str(e))

    thread = threading.Thread(target=open_it, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock the reader before failing
        with open(file, "w") as f:
            f.write("{}")
        thread.join(5)
        pytest.fail("opening a session whose session.json is a FIFO hung")
    assert outcome and "not a regular file" in outcome[0]


def test_oversized_session_json_is_refused(tmp_path, monkeypatch):
    folder = make_session(tmp_path / "s")
    monkeypatch.setitem(limits.LIMITS, "MAX_JSON_BYTES", _small_limit(100))
    refused(folder, "over the limit")


def _small_limit(value):
    from napari_cliprl.limits import Limit

    return Limit("MAX_JSON_BYTES", value, "bytes of one JSON file")


# -- the stored arrays must agree with session.json -------------------------------------------
def test_a_reviewed_frame_whose_chunk_is_missing_refuses_to_open(tmp_path):
    folder = make_session(tmp_path / "s")
    chunk = folder / "labels.zarr" / "corrected" / "c" / "3" / "0" / "0"
    chunk.unlink()
    message = refused(folder, "frame 3")
    assert "corrected" in message and "reviewed" in message


def test_a_deleted_corrected_array_refuses_to_open(tmp_path):
    folder = make_session(tmp_path / "s")
    shutil.rmtree(folder / "labels.zarr" / "corrected")
    refused(folder, r"labels\.zarr/corrected")
    assert not (folder / "labels.zarr" / "corrected").exists()  # not silently recreated


def test_a_predicted_frame_whose_proposal_chunk_is_missing_refuses_to_open(tmp_path):
    folder = make_session(tmp_path / "s", reviewed=())
    (folder / "labels.zarr" / "step_1" / "c" / "2" / "0" / "0").unlink()
    refused(folder, r"step_1.*frame 2")


def test_a_chunk_that_is_not_a_regular_file_is_refused(tmp_path):
    folder = make_session(tmp_path / "s")
    chunk = folder / "labels.zarr" / "corrected" / "c" / "1" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to("/dev/zero")
    refused(folder, "not a regular file")
    chunk.unlink()
    chunk.mkdir()
    refused(folder, "not a regular file")


def test_an_array_whose_shape_disagrees_with_session_json_is_refused(tmp_path):
    folder = make_session(tmp_path / "s")
    meta = folder / "labels.zarr" / "step_0" / "zarr.json"
    data = json.loads(meta.read_text())
    data["shape"] = [T, H - 2, W]
    meta.write_text(json.dumps(data))
    message = refused(folder, "shape")
    assert str(meta) in message


@pytest.mark.parametrize("which", ["labels.zarr/zarr.json", "labels.zarr/corrected/zarr.json"])
def test_a_broken_zarr_json_is_one_line(tmp_path, which):
    folder = make_session(tmp_path / "s")
    (folder / which).write_text('{"zarr_format": 3, ')
    message = refused(folder, "JSON")
    assert message.startswith(str(folder / which))


def test_a_corrupt_chunk_names_the_layer_frame_and_folder(tmp_path):
    folder = make_session(tmp_path / "s")
    (folder / "labels.zarr" / "corrected" / "c" / "3" / "0" / "0").write_bytes(b"garbage" * 9)
    session = Session.open(folder, read_only=True)
    with pytest.raises(SessionError) as info:
        session.array(CORRECTED)[3]
    message = str(info.value)
    assert str(folder) in message and "corrected" in message and "frame 3" in message
    assert "\n" not in message
    np.testing.assert_array_equal(session.array(CORRECTED)[1], 7)  # other frames still read
    with pytest.raises(SessionError, match="frame 3"):
        export_session(session, tmp_path / "export")


def test_export_refuses_a_reviewed_frame_whose_chunk_vanished_while_open(tmp_path):
    folder = make_session(tmp_path / "s")
    session = Session.open(folder)
    (folder / "labels.zarr" / "corrected" / "c" / "1" / "0" / "0").unlink()
    with pytest.raises(SessionError, match="frame 1"):
        export_session(session, tmp_path / "export")
    assert not (tmp_path / "export" / "manifest.json").exists()
    session.close()


def test_an_all_background_reviewed_frame_is_stored_and_reopens(tmp_path):
    folder = tmp_path / "s"
    session = Session.create(
        folder, source=None, shape=(T, H, W), schema=get_schema("endovis2018"), steps=STEPS
    )
    session.array(CORRECTED)[2] = 0  # the fill value: zarr skips such chunks by default
    session.mark_reviewed([2, 4])  # frame 4 accepted as it is (never written)
    session.close()
    again = Session.open(folder)
    assert again.reviewed == [2, 4]
    assert (folder / "labels.zarr" / "corrected" / "c" / "4" / "0" / "0").is_file()
    again.close()


# -- one writer at a time; read-only means read-only -----------------------------------------
def _open_in_child(folder: Path, read_only: bool = False) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from napari_cliprl.annotation.session import Session, SessionError\n"
        "try:\n"
        f"    s = Session.open({str(folder)!r}, read_only={read_only})\n"
        "except SessionError as e:\n"
        "    print(e, file=sys.stderr); sys.exit(3)\n"
        "print(s.reviewed)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120
    )


def test_a_second_process_is_refused_while_a_session_is_open(tmp_path):
    folder = make_session(tmp_path / "s")
    session = Session.open(folder)
    child = _open_in_child(folder)
    assert child.returncode == 3, child.stderr
    assert f"open in another process (pid {os.getpid()})" in child.stderr
    assert "read-only" in child.stderr and "Traceback" not in child.stderr
    reader = _open_in_child(folder, read_only=True)  # reading is always possible
    assert reader.returncode == 0 and reader.stdout.strip() == "[1, 3]"
    session.mark_reviewed([0])
    session.close()
    child = _open_in_child(folder)  # the lock goes with the writer
    assert child.returncode == 0 and child.stdout.strip() == "[0, 1, 3]"


def test_opening_twice_in_one_process_shares_one_session(tmp_path):
    folder = make_session(tmp_path / "s")
    first = Session.open(folder)
    second = Session.open(folder)
    assert second is first
    first.mark_reviewed([5])
    assert second.reviewed == [1, 3, 5]
    first.close()


def test_a_read_only_session_refuses_edits_and_keeps_memory_equal_to_disk(tmp_path):
    folder = make_session(tmp_path / "s")
    session = Session.open(folder, read_only=True)
    assert session.read_only
    with pytest.raises(SessionError, match="read-only"):
        session.mark_reviewed([0])
    assert session.reviewed == [1, 3]
    with pytest.raises(SessionError, match="read-only"):
        session.array(CORRECTED)[0] = 1
    with pytest.raises(SessionError, match="read-only"):
        session.write_prediction(0, np.zeros((H, W), np.uint8), [np.zeros((H, W), np.uint8)] * 2)
    assert json.loads((folder / "session.json").read_text())["reviewed"] == [1, 3]


def test_a_folder_that_cannot_be_written_is_refused_for_writing(tmp_path, monkeypatch):
    folder = make_session(tmp_path / "s")

    def read_only_fs(path, *args, **kwargs):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(session_mod.locking, "open_lock_file", read_only_fs)
    message = refused(folder, "read-only")
    assert str(folder) in message
    session = Session.open(folder, read_only=True)
    assert session.reviewed == [1, 3]


def test_a_failed_save_rolls_the_reviewed_flags_back(tmp_path, monkeypatch):
    folder = make_session(tmp_path / "s")
    session = Session.open(folder)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session_mod, "write_json_atomic", disk_full)
    with pytest.raises(SessionError, match="No space left"):
        session.mark_reviewed([0])
    assert session.reviewed == [1, 3]  # memory follows disk
    monkeypatch.undo()
    session.close()


# -- a kill loses at most proposals that can be recomputed ------------------------------------
def test_a_killed_writer_loses_no_reviewed_flag_and_no_stored_proposal(tmp_path):
    folder = tmp_path / "s"
    code = f"""
import os, signal
import numpy as np
from napari_cliprl.annotation.session import Session
from napari_cliprl.schemas import get_schema
s = Session.create({str(folder)!r}, source=None, shape=({T}, {H}, {W}),
                   schema=get_schema("endovis2018"), steps={STEPS})
s.array("corrected")[2] = 9
s.mark_reviewed([2])
for i in range({T}):
    m = np.full(({H}, {W}), i % 3, np.uint8)
    s.write_prediction(i, m, [m, m], uncertainty=0.5)
os.kill(os.getpid(), signal.SIGKILL)
"""
    child = subprocess.run([sys.executable, "-c", code], env=os.environ, timeout=120)
    assert child.returncode == -9
    session = Session.open(folder)  # the dead writer's lock is gone with it
    assert session.reviewed == [2] and (session.array(CORRECTED)[2] == 9).all()
    assert session.predicted == list(range(T))  # derived from the stored chunks
    np.testing.assert_array_equal(session.array("step 1")[4], 1)
    session.close()


def test_predicting_does_not_rewrite_session_json_per_frame(tmp_path, monkeypatch):
    session = Session.create(
        tmp_path / "s", source=None, shape=(T, H, W), schema=get_schema("endovis2018"), steps=1
    )
    writes = []
    original = session_mod.write_json_atomic
    monkeypatch.setattr(
        session_mod, "write_json_atomic", lambda *a, **k: writes.append(a[0]) or original(*a, **k)
    )
    monkeypatch.setattr(session_mod, "SAVE_INTERVAL", 3600.0)
    list(predict_sequence(FakePredictor(), FRAMES, range(T), session))
    assert len(writes) <= 1
    session.mark_reviewed([0])  # a reviewed flag is saved at once
    assert json.loads((session.folder / "session.json").read_text())["reviewed"] == [0]
    session.flush()
    assert json.loads((session.folder / "session.json").read_text())["predicted"] == list(range(T))
    session.close()


def test_whole_frame_writes_read_back_through_zarr(tmp_path):
    import zarr
    from zarr.codecs import BloscCodec

    from napari_cliprl.annotation.session_store import SessionArray

    folder = make_session(tmp_path / "s", reviewed=())
    session = Session.open(folder)
    labels = np.random.default_rng(0).integers(0, 12, (H, W), dtype=np.uint8)
    session.array(CORRECTED).write_frame(4, labels)
    session.array(CORRECTED).write_frame(5, np.zeros((H, W), np.uint8))
    session.close()
    stored = zarr.open_array(folder / "labels.zarr" / "corrected", mode="r")
    np.testing.assert_array_equal(stored[4], labels)
    assert (folder / "labels.zarr" / "corrected" / "c" / "5" / "0" / "0").is_file()
    other = zarr.create_array(
        tmp_path / "other.zarr", shape=(2, H, W), chunks=(1, H, W), dtype="uint8",
        compressors=BloscCodec(cname="lz4"),
    )  # fmt: skip
    SessionArray(other, "other", tmp_path, read_only=False).write_frame(1, labels)  # via zarr
    np.testing.assert_array_equal(other[1], labels)
