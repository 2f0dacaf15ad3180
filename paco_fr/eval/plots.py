"""Report figures (matplotlib, Agg backend), each written atomically as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paco_fr.io import atomic_path  # noqa: E402

DPI = 110


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def ced_plot(path: Path, thresholds: list[float], fraction: list[float], title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.step(np.asarray(thresholds) * 100, fraction, where="post")
    ax.set_xlabel("NME (% of inter-ocular distance)")
    ax.set_ylabel("fraction of test images")
    ax.set_xlim(0, thresholds[-1] * 100)
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def confusion_plot(path: Path, cm: list[list[int]], names: list[str], title: str) -> Path:
    cm_arr = np.asarray(cm, dtype=np.float64)
    rows = cm_arr / np.maximum(cm_arr.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, int(cm_arr[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row-normalised")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def roc_plot(path: Path, far: list[float], tar: list[float], title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    far_arr = np.clip(np.asarray(far), 1e-4, 1.0)
    ax.plot(far_arr, tar, drawstyle="steps-post")
    ax.axvline(1e-2, color="grey", ls="--", lw=0.8, label="FAR = 1e-2")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def parsing_examples_plot(path: Path, images: np.ndarray, gt: np.ndarray, pred: np.ndarray,
                          colours: list[tuple[int, int, int]], title: str) -> Path:
    """Rows of (image, ground truth, prediction) for a few test faces."""
    palette = np.asarray(colours, dtype=np.uint8)
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for r in range(n):
        for c, (arr, name) in enumerate(((images[r], "image"), (palette[gt[r]], "ground truth"),
                                          (palette[pred[r]], "prediction"))):
            axes[r, c].imshow(arr)
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def landmark_examples_plot(path: Path, images: np.ndarray, gt: np.ndarray, pred: np.ndarray, title: str) -> Path:
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
    for i in range(n):
        ax = axes[0, i]
        ax.imshow(images[i])
        ax.scatter(gt[i, :, 0], gt[i, :, 1], s=4, c="lime", label="ground truth")
        ax.scatter(pred[i, :, 0], pred[i, :, 1], s=4, c="red", label="prediction")
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def attribute_plot(path: Path, names: list[str], values: list[float], lows: list[float], highs: list[float],
                   title: str) -> Path:
    y = np.arange(len(names))
    vals = np.asarray(values)
    err = np.vstack([vals - np.asarray(lows, dtype=float), np.asarray(highs, dtype=float) - vals])
    fig, ax = plt.subplots(figsize=(5, 0.8 + 0.28 * len(names)))
    ax.barh(y, vals, xerr=np.nan_to_num(err), color="tab:blue", alpha=0.8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test accuracy (95 % CI)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
