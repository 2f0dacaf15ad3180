"""Helpers the dataset adapters share: finding annotation files, reading text lists, carving a
val split, and resolving left/right classes of parsing maps by geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from paco_fr.eval.data import BenchmarkDataError, TRAIN, VAL
from paco_fr.masks.regions_def import REGION_INDEX


def _find(root: Path, name: str, subdirs: Sequence[str], what: str, directory: bool) -> Path:
    """`name` in root or one of `subdirs` of root; the error lists every place looked."""
    tried = []
    for sub in subdirs:
        candidate = root / sub / name if sub else root / name
        tried.append(str(candidate))
        if candidate.is_dir() if directory else candidate.is_file():
            return candidate
    label = f"{name}/: directory not found" if directory else f"{name}: not found"
    raise BenchmarkDataError(f"{label} ({what}); looked in: {', '.join(tried)}")


def find_file(root: Path, name: str, subdirs: Sequence[str] = ("",), what: str = "") -> Path:
    return _find(root, name, subdirs, what, directory=False)


def find_dir(root: Path, name: str, subdirs: Sequence[str] = ("",), what: str = "") -> Path:
    return _find(root, name, subdirs, what, directory=True)


def text_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split tokens) of each non-empty line."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BenchmarkDataError(f"{path}: not a UTF-8 text file ({exc})") from exc
    return [(i + 1, line.split()) for i, line in enumerate(text.splitlines()) if line.strip()]


def carve_val(split: np.ndarray, labels: np.ndarray | None, fraction: float, seed: int) -> np.ndarray:
    """Move round(fraction * n_train) train items to val, stratified by label when labels are
    given: each item gets a key (its shuffled rank within its class + U(0,1)) / class size and
    the smallest keys go to val, so every class gives up about the same share."""
    split = split.copy()
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(split == TRAIN)
    n_val = int(round(len(train) * fraction))
    if n_val <= 0:
        return split
    groups = np.zeros(len(train), dtype=np.int64) if labels is None else np.unique(labels[train], return_inverse=True)[1]
    keys = np.empty(len(train))
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        ranks = rng.permutation(len(members))
        keys[members] = (ranks + rng.random(len(members))) / len(members)
    split[train[np.argsort(keys, kind="stable")[:n_val]]] = VAL
    return split


LR_PAIRS = (("left_brow", "right_brow"), ("left_eye", "right_eye"))


def resolve_left_right(label_map: np.ndarray) -> np.ndarray:
    """Enforce our convention (left = smaller x in the image) on one of our label maps: where both
    classes of a pair are present and `left_*` lies right of `right_*`, swap them; where only one
    is present, it is `left_*` when its centroid is left of the face centre (skin centroid)."""
    out = label_map.copy()
    skin = np.flatnonzero((label_map == REGION_INDEX["skin"]).any(axis=0))
    face_cx = float(np.mean(np.nonzero(label_map == REGION_INDEX["skin"])[1])) if skin.size else label_map.shape[1] / 2
    for left_name, right_name in LR_PAIRS:
        left, right = REGION_INDEX[left_name], REGION_INDEX[right_name]
        lx = np.nonzero(label_map == left)[1]
        rx = np.nonzero(label_map == right)[1]
        if lx.size and rx.size:
            swap = lx.mean() > rx.mean()
            if swap:
                out[label_map == left], out[label_map == right] = right, left
        elif lx.size and lx.mean() > face_cx:
            out[label_map == left] = right
        elif rx.size and rx.mean() < face_cx:
            out[label_map == right] = left
    return out
