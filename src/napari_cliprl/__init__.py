"""napari-cliprl: semi-automatic annotation of surgical video with CLIP-RL."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-cliprl")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

from napari_cliprl.schemas import LabelClass, LabelSchema, get_schema, list_schemas

__all__ = ["LabelClass", "LabelSchema", "__version__", "get_schema", "list_schemas"]
