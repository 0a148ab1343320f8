"""The flow cache: computed once, reused from memory and disk, invalidated, crash- and
thread-safe."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from _synthetic import square_mask, translated_clip

from napari_cliprl.flow import FlowCache, FlowCacheError, FlowConfig, dense, propagate
from napari_cliprl.flow.cache import FLOW_STORE
from napari_cliprl.io.lazy import LazyArray

SIZE = (48, 64)
CONFIG = FlowConfig(preset="ultrafast", max_side=0)


@pytest.fixture
def frames() -> list[np.ndarray]:
    return translated_clip(6, SIZE, (1, 2))


@pytest.fixture
def dis_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts DIS estimations (two per pair: forward and backward)."""
    calls: list[int] = []
    real = dense.estimate_flow

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dense, "estimate_flow", counting)
    return calls


def _propagate_all(cache: FlowCache) -> dict:
    anchors = {0: square_mask(SIZE, (10, 10, 20, 20)), 5: square_mask(SIZE, (15, 20, 20, 20))}
    return propagate(anchors, range(1, 5), cache)


@pytest.mark.parametrize("on_disk", [True, False])
def test_a_second_propagation_computes_no_flow(
    frames: list, dis_calls: list, tmp_path: Path, on_disk: bool
) -> None:
    cache = FlowCache(frames, tmp_path if on_disk else None, CONFIG)
    first = _propagate_all(cache)
    assert len(dis_calls) == 2 * 5 and cache.stats.computed == 5
    second = _propagate_all(cache)
    assert len(dis_calls) == 2 * 5, "flows were estimated again"
    for t in first:
        np.testing.assert_array_equal(first[t].forward.labels, second[t].forward.labels)


def test_the_cache_survives_reopening_from_disk(
    frames: list, dis_calls: list, tmp_path: Path
) -> None:
    cache = FlowCache(frames, tmp_path, CONFIG)
    first = _propagate_all(cache)
    assert cache.computed() == [0, 1, 2, 3, 4]
    reopened = FlowCache(frames, tmp_path, CONFIG)
    again = _propagate_all(reopened)
    assert len(dis_calls) == 2 * 5 and reopened.stats.computed == 0
    assert reopened.stats.disk_reads == 5
    for t in first:
        np.testing.assert_array_equal(first[t].backward.conf, again[t].backward.conf)


@pytest.mark.parametrize(
    "change", ["preset", "working size", "frames", "frame count", "stored parameters"]
)
def test_a_cache_of_other_parameters_is_discarded(
    frames: list, dis_calls: list, tmp_path: Path, change: str
) -> None:
    FlowCache(frames, tmp_path, CONFIG).compute_all()
    config, other = CONFIG, frames
    if change == "preset":
        config = FlowConfig(preset="fast", max_side=0)
    elif change == "working size":
        config = FlowConfig(preset="ultrafast", max_side=32)
    elif change == "frames":
        other = [f.copy() for f in frames]
        other[-1][0, 0] ^= 1  # one pixel of the last frame differs
    elif change == "frame count":
        other = frames[:5]
    else:
        group = zarr.open_group(tmp_path / FLOW_STORE, mode="a")
        group.attrs["cliprl_flow"] = {**group.attrs["cliprl_flow"], "version": -1}
    reopened = FlowCache(other, tmp_path, config)
    assert reopened.computed() == []
    reopened.pair(0)
    assert reopened.stats.computed == 1 and reopened.stats.disk_reads == 0


def test_data_is_written_before_the_computed_flag(
    frames: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FlowCache(frames, tmp_path, CONFIG)
    writes: list[str] = []
    real = zarr.Array.__setitem__

    def recording(self, key, value):
        writes.append(self.basename)
        if self.basename == "flows" and len(writes) > 2:
            raise OSError("killed while writing")  # the second pair's data never lands
        return real(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", recording)
    cache.pair(0)
    with pytest.raises(OSError, match="killed"):
        cache.pair(1)
    assert writes == ["flows", "computed", "flows"]
    monkeypatch.undo()
    reopened = FlowCache(frames, tmp_path, CONFIG)
    assert reopened.computed() == [0]
    reopened.pair(1)
    assert reopened.stats.computed == 1


def test_memory_mode_keeps_a_bounded_number_of_pairs(frames: list, dis_calls: list) -> None:
    h, w = SIZE
    cache = FlowCache(frames, None, CONFIG, memory_mb=2.5 * 8 * h * w / 2**20)  # two pairs
    for t in range(5):
        cache.pair(t)
    assert cache.computed() == [3, 4]
    cache.pair(4)
    cache.pair(0)
    assert cache.stats.memory_hits == 1 and cache.stats.computed == 6


def test_concurrent_readers_share_one_estimation_per_pair(
    frames: list, dis_calls: list, tmp_path: Path
) -> None:
    cache = FlowCache(frames, tmp_path, CONFIG)
    barrier = threading.Barrier(4)
    results: list = []

    def read() -> None:
        barrier.wait()
        results.append([cache.pair(t).forward for t in (2, 0, 4, 1, 3)])

    threads = [threading.Thread(target=read) for _ in range(3)]
    worker = threading.Thread(target=lambda: (barrier.wait(), cache.compute_all()))
    for thread in [*threads, worker]:
        thread.start()
    for thread in [*threads, worker]:
        thread.join()
    assert cache.stats.computed == 5 and len(dis_calls) == 10
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_any_frame_source_with_len_and_indexing_works(frames: list) -> None:
    lazy = LazyArray(lambda i: frames[i], len(frames), (*SIZE, 3))
    flows = FlowCache(lazy, None, CONFIG).pair(2)
    expected = FlowCache(np.stack(frames), None, CONFIG).pair(2)
    np.testing.assert_array_equal(flows.forward, expected.forward)
    assert flows.forward.shape == (*SIZE, 2) and flows.forward.dtype == np.float32


def test_unusable_frames_are_refused(frames: list) -> None:
    with pytest.raises(FlowCacheError, match="at least 2 frames"):
        FlowCache(frames[:1])
    with pytest.raises(FlowCacheError, match="H x W x 3 uint8"):
        FlowCache([f[..., 0] for f in frames])
    mixed = [*frames[:3], frames[3][:-1]]
    with pytest.raises(FlowCacheError, match="frame 3"):
        FlowCache(mixed, fingerprint="x").pair(2)
    with pytest.raises(IndexError, match="0..4"):
        FlowCache(frames).pair(5)
