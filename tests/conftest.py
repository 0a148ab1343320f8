"""Test-wide settings: offline hub, one thread, shared fixtures."""

import os

# Before anything imports open_clip / huggingface_hub: never try the network (a blocked
# download otherwise retries for ~46 s), and never oversubscribe the two shared cores.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHOLEC_SEQ = SHARED_DATA / "cholecseg8k_seq"


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture
def cholec_seq() -> Path:
    """The real CholecSeg8k frames of ../shared/data, or a skip where they are absent."""
    if not CHOLEC_SEQ.is_dir():
        pytest.skip(f"real data not available: {CHOLEC_SEQ} is absent (development data only)")
    return CHOLEC_SEQ
