"""Optical flow and label propagation through a video (DESIGN section 2.11).

numpy + OpenCV only (no torch, no Qt). ``dense``: DIS flow and its forward-backward
confidence; ``cache``: consecutive flows of a frame source, computed lazily and cached on disk
or in memory; ``propagation``: reviewed label maps carried to the other frames. See each
module's docstring for shapes, dtypes and the direction conventions.
"""

from napari_cliprl.flow.cache import CacheStats, FlowCache, FlowCacheError, frames_fingerprint
from napari_cliprl.flow.dense import FlowConfig, FlowPair, compute_pair, consistency
from napari_cliprl.flow.propagation import (
    FlowSource,
    Propagated,
    PropagationConfig,
    Side,
    carry,
    flow_both,
    flow_nearest,
    iter_propagate,
    propagate,
)

__all__ = [
    "CacheStats",
    "FlowCache",
    "FlowCacheError",
    "FlowConfig",
    "FlowPair",
    "FlowSource",
    "PropagationConfig",
    "Propagated",
    "Side",
    "carry",
    "compute_pair",
    "consistency",
    "flow_both",
    "flow_nearest",
    "frames_fingerprint",
    "iter_propagate",
    "propagate",
]
