"""One device resolver for the model, training and the widget.

``"auto"`` picks cuda, then mps, then cpu; a named device is checked, and one that is not
available here raises :class:`DeviceError` with one sentence that says what to choose instead.
torch is imported when a device is resolved, so that parsing options stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cuda", "mps", "cpu")  # what the widget offers; "cuda:N" is accepted too


class DeviceError(ValueError):
    """A device that is unknown or not available on this machine."""


def _has_mps() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``/None -> cuda (GPU ``local_rank`` under torchrun), mps or cpu; others checked.

    DeviceError for an unknown name or a device this machine lacks.
    """
    import torch

    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if _has_mps() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(
            f"Unknown device {name!r}; choose one of {', '.join(DEVICES)} or cuda:N."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"Device {name!r} is not available here (no CUDA); choose auto or cpu."
            )
        if dev.index is None:
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"Device {name!r} is not available here ({torch.cuda.device_count()} GPUs); "
                "choose auto or cpu."
            )
        return dev
    if dev.type == "mps" and not _has_mps():
        raise DeviceError(f"Device {name!r} is not available here; choose auto or cpu.")
    if dev.type not in ("cpu", "mps"):
        raise DeviceError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)} or cuda:N.")
    return dev
