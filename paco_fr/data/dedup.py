"""Duplicate indexes: exact (sha256 of bytes or pixels) and near (Hamming distance of 64-bit
perceptual hashes). Inputs are offered in sorted path order, so "the first kept" means the one
with the smallest path.
"""

from __future__ import annotations

import numpy as np


class ExactIndex:
    """sha256 hex digest -> the first source path that had it. Keys are stored as 16 raw bytes
    (collisions on 128 bits are not a practical concern), a few dozen bytes per entry."""

    def __init__(self) -> None:
        self._first: dict[bytes, str] = {}

    @staticmethod
    def _key(digest: str) -> bytes:
        return bytes.fromhex(digest[:32])

    def first(self, digest: str) -> str | None:
        return self._first.get(self._key(digest))

    def add(self, digest: str, path: str) -> None:
        self._first.setdefault(self._key(digest), path)

    def __len__(self) -> int:
        return len(self._first)


class NearDuplicateIndex:
    """Hashes of accepted faces and an integer key for each, in growing numpy arrays (16 bytes per
    face); a query is one vectorised XOR + popcount over all of them (~2 ms per million faces)."""

    def __init__(self, max_distance: int) -> None:
        if not 0 <= max_distance <= 64:
            raise ValueError(f"max_distance must be within [0, 64], got {max_distance}")
        self.max_distance = int(max_distance)
        self._hashes = np.empty(1024, dtype=np.uint64)
        self._keys = np.empty(1024, dtype=np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def nearest(self, value: int) -> tuple[int, int] | None:
        """(key, distance) of the earliest stored hash within max_distance, or None."""
        if self._n == 0:
            return None
        distances = np.bitwise_count(self._hashes[: self._n] ^ np.uint64(value))
        hits = np.flatnonzero(distances <= self.max_distance)
        if hits.size == 0:
            return None
        first = int(hits[0])
        return int(self._keys[first]), int(distances[first])

    def add(self, value: int, key: int) -> None:
        if self._n == self._hashes.size:
            self._hashes = np.concatenate([self._hashes, np.empty(self._n, dtype=np.uint64)])
            self._keys = np.concatenate([self._keys, np.empty(self._n, dtype=np.int64)])
        self._hashes[self._n] = np.uint64(value)
        self._keys[self._n] = key
        self._n += 1


def hamming(a: int, b: int) -> int:
    return (int(a) ^ int(b)).bit_count()
