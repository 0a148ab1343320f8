"""Where CLIP weights come from: an open_clip tag, an ``hf-hub:`` id, or a local file.

Offline (``HF_HUB_OFFLINE=1``), or when the hub cannot be reached within a few seconds, a weight
that is not already cached fails at once with a message saying how to pass a local file, instead
of open_clip's download retry loop (~46 s).  Weights are identified by a content hash of the
visual tower (format-independent: the same weights from a .pt or a .safetensors hash the same).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz")
HF_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_HOST = "huggingface.co"


class WeightsUnavailableError(RuntimeError):
    """CLIP weights that are neither cached nor downloadable right now."""


@dataclass(frozen=True)
class ResolvedWeights:
    path: str  # local file open_clip loads
    quick_gelu: bool  # the weights were trained with QuickGELU (OpenAI releases)


def hub_offline() -> bool:
    """True when huggingface_hub is in offline mode (HF_HUB_OFFLINE, checked live)."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def resolve_clip_weights(
    open_clip: ModuleType, arch: str, clip_weights: str | os.PathLike | None
) -> ResolvedWeights | None:
    """A local file for ``clip_weights`` (None -> None: random initialisation).

    Raises FileNotFoundError for a missing local path, ValueError for an unknown tag,
    WeightsUnavailableError when a download would be needed but cannot happen.
    """
    if clip_weights is None or str(clip_weights) == "":
        return None
    text = str(clip_weights)
    if text.startswith("hf-hub:"):
        return ResolvedWeights(_from_hf(text[len("hf-hub:") :], arch, text), quick_gelu=False)
    path = Path(text).expanduser()
    if path.exists():
        return ResolvedWeights(_local_file(path), quick_gelu="openai" in path.name.lower())
    if _looks_like_path(text):
        raise FileNotFoundError(f"CLIP weights file {text} does not exist")
    cfg = open_clip.get_pretrained_cfg(arch, text)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ValueError(
            f"unknown CLIP weights {text!r} for {arch}: not a file, not 'hf-hub:<repo>', "
            f"and not an open_clip tag ({', '.join(tags) or 'none'})"
        )
    return ResolvedWeights(_from_tag(open_clip, cfg, arch, text), bool(cfg.get("quick_gelu")))


def _looks_like_path(text: str) -> bool:
    return (
        os.sep in text
        or "/" in text
        or text.startswith((".", "~"))
        or text.lower().endswith(WEIGHT_SUFFIXES)
    )


def _local_file(path: Path) -> str:
    if path.is_file():
        return str(path)
    for name in (*HF_FILENAMES, "open_clip_pytorch_model.safetensors", "model.safetensors"):
        if (path / name).is_file():
            return str(path / name)
    found = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"CLIP weights folder {path} holds no weight file")
    return str(found[0])


def _hint(arch: str, what: str) -> str:
    return (
        f"CLIP weights {what} for {arch} are not in the local cache and cannot be downloaded "
        f"now ({_why_offline()}). Download them on a machine with internet (open_clip caches "
        "them), or pass a local file: --clip-weights /path/to/open_clip_pytorch_model.bin "
        "(Python: clip_weights='/path/to/file')"
    )


def _why_offline() -> str:
    return "HF_HUB_OFFLINE is set" if hub_offline() else f"{HUB_HOST} is unreachable"


def _can_download() -> bool:
    return not hub_offline() and _reachable(HUB_HOST, 443, timeout=3.0)


def _reachable(host: str, port: int, timeout: float) -> bool:
    """TCP connect within ``timeout`` seconds (DNS included, run in a daemon thread)."""
    import socket

    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _hf_cached(repo: str, filenames: tuple[str, ...]) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo_id=repo, filename=name)
        if isinstance(hit, str):
            return hit
    return None


def _split_hf(identifier: str) -> tuple[str, tuple[str, ...]]:
    parts = identifier.strip("/").split("/")
    if len(parts) > 2:
        return "/".join(parts[:2]), ("/".join(parts[2:]),)
    return "/".join(parts), HF_FILENAMES


def _from_hf(identifier: str, arch: str, label: str) -> str:
    repo, names = _split_hf(identifier)
    cached = _hf_cached(repo, names)
    if cached:
        return cached
    if not _can_download():
        raise WeightsUnavailableError(_hint(arch, repr(label)))
    from huggingface_hub import hf_hub_download

    errors = []
    for name in names:
        try:
            return hf_hub_download(repo_id=repo, filename=name)
        except Exception as e:  # noqa: BLE001 - try the next file name, report all
            errors.append(f"{name}: {e}")
    raise WeightsUnavailableError(f"could not download {label}: {'; '.join(errors)}")


def _from_tag(open_clip: ModuleType, cfg: dict, arch: str, tag: str) -> str:
    hub = cfg.get("hf_hub", "")
    if hub:
        if hub.endswith("/"):
            repo, names = hub.strip("/"), HF_FILENAMES
        else:
            repo, name = os.path.split(hub)
            names = (name, *HF_FILENAMES)
        cached = _hf_cached(repo, names)
        if cached:
            return cached
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local)
    if not _can_download():
        raise WeightsUnavailableError(_hint(arch, repr(tag)))
    try:
        return str(open_clip.download_pretrained(cfg))
    except Exception as e:
        raise WeightsUnavailableError(f"could not download CLIP weights {tag!r}: {e}") from e


def visual_sha256(visual: nn.Module) -> str:
    """Content hash of a vision tower's weights (positional embedding excluded: it is resized
    to the input size). The same weights hash the same whatever file format they came from."""
    h = hashlib.sha256()
    for name, tensor in sorted(visual.state_dict().items()):
        if name.endswith("positional_embedding"):
            continue
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
