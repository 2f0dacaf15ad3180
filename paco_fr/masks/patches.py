"""Patch membership: which facial regions each ViT patch touches. Torch only."""

from __future__ import annotations

import math

import torch

from paco_fr.masks.regions_def import REGIONS


def patch_membership(label_maps: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Region membership of every patch of a batch of label maps.

    label_maps: (B, H, W) integer labels in [0, len(REGIONS)) (uint8 or int64), H and W multiples of
    `patch_size`. Returns a BoolTensor (B, N, R), N = (H / p) * (W / p) in row-major patch order (the
    order of timm's patch embedding), R = len(REGIONS); [b, n, r] is True when any pixel of patch n
    has label r, so a patch on a boundary belongs to every region it touches.
    """
    if not isinstance(label_maps, torch.Tensor):
        raise TypeError(f"label_maps must be a torch.Tensor, got {type(label_maps).__name__}")
    if label_maps.ndim != 3:
        raise ValueError(f"label_maps must be (B, H, W), got shape {tuple(label_maps.shape)}")
    if label_maps.dtype.is_floating_point or label_maps.dtype.is_complex or label_maps.dtype == torch.bool:
        raise TypeError(f"label_maps must hold integer labels, got {label_maps.dtype}")
    p = int(patch_size)
    batch, height, width = label_maps.shape
    if p <= 0 or height % p or width % p:
        raise ValueError(f"patch_size {patch_size} must be positive and divide the label map size {height}x{width}")
    n_regions = len(REGIONS)
    if label_maps.numel():
        low, high = int(label_maps.min()), int(label_maps.max())
        if low < 0 or high >= n_regions:
            raise ValueError(f"labels must lie in [0, {n_regions}), found values in [{low}, {high}]")
    rows, cols = height // p, width // p
    # (B, N, p*p): the pixels of each patch, then a scatter marks each label a patch contains
    # (about 4x faster than reducing a (B, H, W, R) one-hot).
    pixels = label_maps.reshape(batch, rows, p, cols, p).permute(0, 1, 3, 2, 4).reshape(batch, rows * cols, p * p)
    membership = torch.zeros(batch, rows * cols, n_regions, dtype=torch.bool, device=label_maps.device)
    return membership.scatter_(2, pixels.long(), True)

def grid_side(n_patches: int) -> int:
    """Side of a square patch grid with `n_patches` patches; a ValueError when it is not square."""
    side = math.isqrt(n_patches)
    if side * side != n_patches or side == 0:
        raise ValueError(f"{n_patches} patches do not form a square grid")
    return side
