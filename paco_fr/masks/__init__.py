"""Facial-region maps and region-aligned masking.

This package imports with torch and numpy alone (GPU training machines have no MediaPipe, Great
Expectations or pandas): the region-map building code (`paco_fr.masks.regions`, `.stage`,
`.validation`) imports those lazily. Names are resolved on first use, so that reading the
configuration (`paco_fr.masks.config`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from paco_fr.masks.regions_def import FLIP_PERMUTATION, REGION_COLOURS, REGION_INDEX, REGIONS

_EXPORTS = {
    "grid_side": "paco_fr.masks.patches", "patch_membership": "paco_fr.masks.patches",
    **{name: "paco_fr.masks.sampling" for name in (
        "REGION_GROUPS", "STRATEGIES", "block_masks", "num_masked", "random_masks", "region_groups",
        "sample_masks", "structured_masks")},
}

__all__ = ["REGIONS", "REGION_INDEX", "REGION_COLOURS", "FLIP_PERMUTATION", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'paco_fr.masks' has no attribute {name!r}")
