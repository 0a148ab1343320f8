"""Where CLIP weights come from (an open_clip tag, an ``hf-hub:`` id, or a local file), and
how they are read: never unpickled.

Every source ends as one local file, read here: ``.safetensors`` (preferred), or a plain state
dict of tensors in ``.bin``/``.pt``/``.pth`` read with ``torch.load(weights_only=True)``.
Anything else (a pickled model or object, a ``.pkl``, a damaged file, another architecture's
weights) is a :class:`ClipWeightsError`: one line naming the file and what is accepted.

Offline (``HF_HUB_OFFLINE=1``), or when the hub cannot be reached within a few seconds, a weight
that is not already cached fails at once with a message saying how to pass a local file, instead
of open_clip's download retry loop (~46 s).  Weights are identified by a content hash of the
visual tower (format-independent: the same weights from a .pt or a .safetensors hash the same).
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from napari_cliprl.files import check_regular_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")  # the formats read
PATH_SUFFIXES = (*WEIGHT_SUFFIXES, ".pkl", ".pickle", ".ckpt", ".npz")  # "this is a file name"
ACCEPTED = (
    "accepted: a .safetensors file (preferred) or a plain state dict of tensors saved as "
    ".bin, .pt or .pth"
)
HF_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_HOST = "huggingface.co"


class WeightsUnavailableError(RuntimeError):
    """CLIP weights that are neither cached nor downloadable right now."""


class ClipWeightsError(ValueError):
    """A CLIP weight file that cannot be used (one line starting with its path)."""


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
        or text.lower().endswith(PATH_SUFFIXES)
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


def read_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a CLIP weight file on the CPU, without unpickling anything.

    Accepts an open_clip/OpenAI state dict, also wrapped as ``{"state_dict": ...}`` or with the
    ``module.`` prefix of DataParallel.  ClipWeightsError (one line naming the file) otherwise.
    """
    path = Path(path)
    try:
        check_regular_file(path)
    except ValueError as e:
        raise ClipWeightsError(f"{e}; {ACCEPTED}") from None
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise _refused(path, f"'{suffix or path.name}' files are not read (they may run code)")
    if suffix == ".safetensors":
        try:
            loaded: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise _refused(path, f"not a readable safetensors file ({_first_line(e)})") from None
    else:
        loaded = _torch_load(path)
    return _tensors_of(loaded, path)


def _torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers (weights_only=True)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4 ..."
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure; torch's text is never shown
        if type(e).__name__ == "UnpicklingError":  # pickle.UnpicklingError: objects, not tensors
            why = "it holds Python objects besides tensors (refused: loading them could run code)"
        else:
            why = "not a readable PyTorch tensor file"
        raise _refused(path, why) from None


def _tensors_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise _refused(path, "it does not hold a state dict")
    bad = [k for k, v in loaded.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise _refused(path, f"entry {bad[0]!r} is not a tensor, so this is not a state dict")
    if all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module.") :]: v for k, v in loaded.items()}
    return loaded


def _refused(path: Path, why: str) -> ClipWeightsError:
    return ClipWeightsError(f"{path}: not usable as CLIP weights: {why}; {ACCEPTED}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_clip_weights(open_clip: ModuleType, clip: nn.Module, path: str, name: str) -> None:
    """Load the weight file ``path`` into the open_clip model ``clip`` (config ``name``).

    As open_clip's own loader: the image positional embedding is resized to the input size
    (and the text one to the context length). A tensor of another shape, a missing or an
    unknown one raises ClipWeightsError naming the first such key.
    """
    state = read_clip_state_dict(path)
    if "logit_scale" in state and state["logit_scale"].ndim != clip.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(clip.logit_scale.shape)
    state.pop("text.transformer.embeddings.position_ids", None)
    for key in ("visual.positional_embedding", "positional_embedding"):
        if key in state:
            state[key] = state[key].float()
    try:
        open_clip.model.resize_pos_embed(state, clip)
        open_clip.model.resize_text_pos_embed(state, clip)
    except (RuntimeError, ValueError) as e:
        raise ClipWeightsError(f"{path}: weights do not fit {name}: {_first_line(e)}") from None
    _check_fit(state, clip.state_dict(), Path(path), name)
    clip.load_state_dict(state, strict=True)


def _check_fit(state: dict, own: dict, path: Path, name: str) -> None:
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong:
        k = wrong[0]
        detail = f"{k} has shape {tuple(state[k].shape)}, the model needs {tuple(own[k].shape)}"
    elif missing:
        detail = f"{missing[0]} is missing"
    elif unexpected:
        detail = f"{unexpected[0]} is not part of the model"
    else:
        return
    more = len(wrong) + len(missing) + len(unexpected) - 1
    raise ClipWeightsError(
        f"{path}: weights do not fit {name}: {detail}"
        + (f" (and {more} more)" if more else "")
        + "; pass weights of this architecture"
    )


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
