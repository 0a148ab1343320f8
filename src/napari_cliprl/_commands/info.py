"""``cliprl info``: versions, devices, schemas and architectures."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import platform

NAME = "info"
HELP = "Show package versions, available devices, schemas and model architectures."

PACKAGES = ("napari-cliprl", "napari", "torch", "open_clip_torch", "numpy", "av", "npe2", "zarr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def collect_info() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    from napari_cliprl.schemas import list_schemas

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "devices": available_devices(),
        "schemas": list_schemas(),
    }
    try:
        from napari_cliprl.model.build import list_architectures

        info["architectures"] = list_architectures()
    except ImportError:
        pass
    return info


def available_devices() -> list[str]:
    import torch

    devices = []
    if torch.cuda.is_available():
        devices += [
            f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
        ]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def run(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"napari-cliprl {info['versions']['napari-cliprl']} (Python {info['python']})")
    for name, version in info["versions"].items():
        print(f"  {name:<16} {version or 'not installed'}")
    print("devices:       " + ", ".join(info["devices"]))
    print("schemas:       " + ", ".join(info["schemas"]))
    if "architectures" in info:
        print("architectures: " + ", ".join(info["architectures"]))
    return 0
