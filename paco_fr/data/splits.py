"""Held-out splits of the pre-training corpus: fixed-size, by whole split units, in salted-hash order.

A split unit is an identity when the ground truth names one, else a source image (all faces of one
person, and all faces of one photo, share a split). Units are ranked by a salted sha256 of their
key; test takes units from the front of that ranking until it holds at least
min(test_faces, round(test * faces)) faces, val the next ones until min(val_faces, round(val *
faces)), train the rest. The ranking depends only on the unit keys and the salt, so the same
corpus gets the same splits whatever order, machine or partitioning produced it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from paco_fr.data.config import SplitConfig

SPLITS = ("train", "val", "test")


def unit_keys(identity: pd.Series, source_sha256: pd.Series) -> pd.Series:
    """The key each face is split by: ``identity:<id>`` when known, else ``source:<file sha256>``."""
    return ("identity:" + identity.astype("string")).fillna("source:" + source_sha256.astype("string")).astype(str)


def unit_rank(key: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\0{key}".encode()).digest()[:8], "big")


def split_targets(n_faces: int, cfg: SplitConfig) -> tuple[int, int]:
    """(val, test) face counts the splits must reach (each may exceed it by less than one unit)."""
    return (min(cfg.val_faces, round(cfg.val * n_faces)), min(cfg.test_faces, round(cfg.test * n_faces)))


def assign_splits(keys: pd.Series, cfg: SplitConfig) -> np.ndarray:
    """One split name per face (object array aligned with `keys`)."""
    counts = keys.value_counts(sort=False)
    units = counts.index.to_numpy()
    ranks = np.array([unit_rank(str(u), cfg.salt) for u in units], dtype=np.uint64)
    order = np.lexsort((units.astype(str), ranks))  # rank, then the key: no tie is left to chance
    sizes = counts.to_numpy()[order]
    val_target, test_target = split_targets(len(keys), cfg)
    unit_split = np.full(len(units), "train", dtype=object)
    position = 0
    for name, target in (("test", test_target), ("val", val_target)):
        taken = 0
        while taken < target and position < len(order):
            unit_split[order[position]] = name
            taken += int(sizes[position])
            position += 1
    by_unit = dict(zip(units, unit_split))
    return keys.map(by_unit).to_numpy(dtype=object)
