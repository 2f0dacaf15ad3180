"""Accuracy of derived region maps against ground truth: per-class intersection over union."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from paco_fr.masks.regions_def import REGIONS


def class_iou(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of each class between two (H, W) label maps. (R,) float64; NaN where the class is in neither."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"label maps differ in shape: {predicted.shape} vs {truth.shape}")
    n = len(REGIONS)
    # joint histogram: confusion[t, p] = pixels with truth t and prediction p
    confusion = np.bincount(truth.ravel().astype(np.int64) * n + predicted.ravel(), minlength=n * n).reshape(n, n)
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


def mean_class_iou(ious: Iterable[np.ndarray]) -> dict[str, float | None]:
    """Mean over faces of each class's IoU (faces where the class is in neither map are left out),
    plus `mean` = the mean over classes (mIoU)."""
    stacked = np.array(list(ious), dtype=np.float64).reshape(-1, len(REGIONS))
    out: dict[str, float | None] = {}
    for i, name in enumerate(REGIONS):
        column = stacked[:, i][~np.isnan(stacked[:, i])]
        out[name] = float(column.mean()) if len(column) else None
    values = [v for v in out.values() if v is not None]
    out["mean"] = float(np.mean(values)) if values else None
    return out
