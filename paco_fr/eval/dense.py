"""Dense (per-pixel) predictions: the sub-cell grid of the parsing probe, class-score maps, and
warping those maps from the aligned crop back onto the original image, where the standard parsing
protocols (LaPa, CelebAMask-HQ as FaRL scores them) compare them with the dataset's own labels.

Shared by the linear and fine-tune protocols (which predict score maps) and by scoring (which
warps them back), so that neither imports the other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Least-squares class scores approximate p(class | pixel) and may dip below zero; they are floored
# before the prior correction divides them by p(class)^power.
SCORE_FLOOR = 1e-4


def subgrid_for(patch: int, wanted: int) -> int:
    """Largest divisor of the patch size not above `wanted` (sub-cells must tile a patch)."""
    return max(d for d in range(1, max(1, min(wanted, patch)) + 1) if patch % d == 0)


def parsing_targets(label_maps: np.ndarray, n_classes: int, patch: int, sub: int) -> np.ndarray:
    """(n, S, S) labels -> (n * g * g, sub * sub * C) class fractions of each sub-cell, patch-major
    in the row-major grid order of the patch tokens."""
    n, size, _ = label_maps.shape
    g, cell = size // patch, patch // sub
    onehot = np.eye(n_classes, dtype=np.float32)[label_maps[:, : g * patch, : g * patch]]  # (n,S,S,C)
    frac = onehot.reshape(n, g, sub, cell, g, sub, cell, n_classes).mean(axis=(3, 6))  # (n,g,sub,g,sub,C)
    return frac.transpose(0, 1, 3, 2, 4, 5).reshape(n * g * g, sub * sub * n_classes)


def token_scores_to_maps(scores: np.ndarray, n: int, g: int, sub: int, n_classes: int) -> np.ndarray:
    """(n * g * g, sub * sub * C) per-token sub-cell scores -> (n, C, g * sub, g * sub) score maps."""
    return (scores.reshape(n, g, g, sub, sub, n_classes).transpose(0, 5, 1, 3, 2, 4)
            .reshape(n, n_classes, g * sub, g * sub))


def _scale_tensor(class_scale: np.ndarray | None) -> torch.Tensor | None:
    if class_scale is None:
        return None
    return torch.as_tensor(np.asarray(class_scale), dtype=torch.float32).view(-1, 1, 1)


def maps_to_labels(maps: np.ndarray, size: int, class_scale: np.ndarray | None = None,
                   batch: int = 32) -> np.ndarray:
    """(n, C, h, w) score maps -> (n, size, size) uint8 labels: bilinear upsampling to the crop, then
    the arg-max. `class_scale` (C,) multiplies the scores (floored at SCORE_FLOOR) first: the prior
    correction of the linear parsing probe."""
    scale = _scale_tensor(class_scale)
    out = np.empty((len(maps), size, size), dtype=np.uint8)
    for start in range(0, len(maps), batch):
        t = torch.from_numpy(np.ascontiguousarray(maps[start:start + batch], dtype=np.float32))
        up = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        if scale is not None:
            up = up.clamp_min(SCORE_FLOOR) * scale
        out[start:start + batch] = up.max(dim=1).indices.numpy().astype(np.uint8)  # 4x faster than argmax here
    return out


def warp_back_labels(score_map: np.ndarray, crop_size: int, orig_to_crop: np.ndarray, shape: tuple[int, int],
                     class_scale: np.ndarray | None = None, background: int = 0, rows: int = 256) -> np.ndarray:
    """One (C, h, w) score map of an aligned crop -> (H, W) uint8 labels on the original image.

    `orig_to_crop` (2, 3) maps original pixel coordinates to crop pixel coordinates (OpenCV's
    convention: pixel centres at integers). Each original pixel samples the score map bilinearly
    at its crop position, exactly where upsampling to the crop (:func:`maps_to_labels`) would, so
    no second interpolation is added; pixels outside the crop were never seen and are labelled
    `background`."""
    h, w = shape
    maps = torch.from_numpy(np.ascontiguousarray(score_map, dtype=np.float32))[None]  # [1, C, h', w']
    scale = _scale_tensor(class_scale)
    a = np.asarray(orig_to_crop, dtype=np.float64)
    out = np.empty((h, w), dtype=np.uint8)
    u = np.arange(w, dtype=np.float64)[None, :]
    for y0 in range(0, h, rows):  # row blocks keep C x rows x W floats in memory, not C x H x W
        v = np.arange(y0, min(h, y0 + rows), dtype=np.float64)[:, None]
        cx = a[0, 0] * u + a[0, 1] * v + a[0, 2]
        cy = a[1, 0] * u + a[1, 1] * v + a[1, 2]
        # Normalised coordinates of F.grid_sample with align_corners=False: -1 and 1 are the crop's
        # outer pixel edges.
        gx, gy = (2 * cx + 1) / crop_size - 1, (2 * cy + 1) / crop_size - 1
        grid = torch.from_numpy(np.stack([gx, gy], axis=-1).astype(np.float32))[None]  # [1, r, W, 2]
        up = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        if scale is not None:
            up = up.clamp_min(SCORE_FLOOR) * scale
        labels = up.max(dim=0).indices.numpy().astype(np.uint8)
        labels[(np.abs(gx) > 1) | (np.abs(gy) > 1)] = background
        out[y0:y0 + len(labels)] = labels
    return out
