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
import pyarrow as pa
import pyarrow.compute as pc

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
    encoded = pa.array(keys.astype(str).to_numpy(dtype=object), pa.string()).dictionary_encode()
    codes = split_codes(encoded.indices.to_numpy(), encoded.dictionary, cfg)
    return np.array(SPLITS, dtype=object)[codes]


def split_codes(unit_of_face: np.ndarray, units: pa.Array, cfg: SplitConfig) -> np.ndarray:
    """One split per face as an index into SPLITS (int8), from each face's unit (an index into the
    distinct unit keys `units`): narrow arrays, so that the merge holds no Python string per face."""
    counts = np.bincount(unit_of_face, minlength=len(units))
    ranks = np.empty(len(units), dtype=np.uint64)
    for start in range(0, len(units), _RANK_BATCH):  # a Python string per unit, one batch at a time
        batch = units.slice(start, _RANK_BATCH).to_pylist()
        ranks[start:start + len(batch)] = [unit_rank(key, cfg.salt) for key in batch]
    # Rank, then the key (byte order of UTF-8 = code-point order): no tie is left to chance.
    key_order = np.empty(len(units), dtype=np.int64)
    key_order[pc.sort_indices(units).to_numpy()] = np.arange(len(units))
    order = np.lexsort((key_order, ranks))
    sizes = counts[order]
    val_target, test_target = split_targets(len(unit_of_face), cfg)
    unit_split = np.zeros(len(units), dtype=np.int8)  # train
    position = 0
    for name, target in (("test", test_target), ("val", val_target)):
        taken = 0
        while taken < target and position < len(order):
            unit_split[order[position]] = SPLITS.index(name)
            taken += int(sizes[position])
            position += 1
    return unit_split[unit_of_face]


_RANK_BATCH = 65536
