"""Facial-region maps and region-aligned masking.

This package imports with torch and numpy alone (GPU training machines have no MediaPipe, Great
Expectations or pandas): the region-map building code (`paco_fr.masks.regions`, `.stage`,
`.validation`) imports those lazily.
"""

from paco_fr.masks.patches import grid_side, patch_membership
from paco_fr.masks.regions_def import FLIP_PERMUTATION, REGION_COLOURS, REGION_INDEX, REGIONS
from paco_fr.masks.sampling import (REGION_GROUPS, STRATEGIES, block_masks, num_masked, random_masks,
                                    region_groups, sample_masks, structured_masks)

__all__ = [
    "REGIONS", "REGION_INDEX", "REGION_COLOURS", "FLIP_PERMUTATION", "REGION_GROUPS", "STRATEGIES",
    "patch_membership", "grid_side", "sample_masks", "num_masked", "random_masks", "block_masks",
    "structured_masks", "region_groups",
]
