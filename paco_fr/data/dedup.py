"""Duplicates: exact (sha256 of the file bytes or of the decoded pixels) and near (perceptual hashes).

Near duplicates use two 256-bit DCT perceptual hashes (imagehash.phash, hash_size 16) per face:

- the *face hash*, of the centre of the aligned crop (the central 5/7 of its side, so 80 of 112 px):
  alignment undoes a crop or a resize of the source, and the centre leaves out the border that
  appears where the crop reaches past the source image (a 2% crop moves that border);
- the *image hash*, of the whole decoded image: a re-encode, a colour-mode change, a resize or an
  exposure change keeps it close whatever the landmarks did (a detector's landmarks move by a pixel
  or two between two copies, which the face hash feels).

The merge of the curation stage asks, face by face in canonical order, whether an earlier accepted
face is within `near_duplicate.face_bits` (face hash) or an earlier accepted *other* image within
`near_duplicate.image_bits` (image hash). Both lookups go through :class:`BinaryHashIndex`, a
faiss multi-index hash: exact, and a query looks at the entries that share a substring with it
instead of every accepted face.
"""

from __future__ import annotations

from array import array

import numpy as np
from PIL import Image

HASH_BITS = 256
HASH_HEX = HASH_BITS // 4
_HASH_SIZE = 16           # imagehash: hash_size x hash_size low DCT frequencies of a 4x larger thumbnail
_THUMB = 4 * _HASH_SIZE   # what phash resizes to; larger images are box-reduced first (cheap, deterministic)


def _phash_hex(grey: np.ndarray) -> str:
    import imagehash  # noqa: PLC0415 - scipy import, only where hashes are made

    grey = np.ascontiguousarray(grey)
    # frombuffer on mode L wraps the array (Image.fromarray on RGB allocates and fills a new image).
    image = Image.frombuffer("L", (grey.shape[1], grey.shape[0]), grey, "raw", "L", 0, 1)
    factor = min(image.width, image.height) // (2 * _THUMB)
    if factor >= 2:  # LANCZOS on a 12-megapixel photo costs more than the hash: a box reduce first
        image = image.reduce(factor)
    return str(imagehash.phash(image, hash_size=_HASH_SIZE))


def _luma(rgb: np.ndarray) -> np.ndarray:
    import cv2  # noqa: PLC0415

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def face_hash(crop_rgb: np.ndarray) -> str:
    """64 hex digits: the perceptual hash of the centre of an aligned crop (S, S, 3) uint8."""
    size = crop_rgb.shape[0]
    margin = round(size / 7)
    return _phash_hex(_luma(crop_rgb[margin:size - margin, margin:size - margin]))


def image_hash(rgb: np.ndarray) -> str:
    """64 hex digits: the perceptual hash of a whole decoded image (H, W, 3) uint8."""
    return _phash_hex(_luma(rgb))


def hash_bytes(hex_digests: list[str] | np.ndarray) -> np.ndarray:
    """(n, 32) uint8 codes from 64-hex-digit hashes (faiss's binary layout)."""
    if len(hex_digests) == 0:
        return np.zeros((0, HASH_BITS // 8), np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hex_digests)), np.uint8).reshape(-1, HASH_BITS // 8).copy()


_HEX_VALUES = np.full(256, 255, np.uint8)
_HEX_VALUES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEX_VALUES[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def hex_codes(hex_digests: "pa.Array | pa.ChunkedArray") -> np.ndarray:
    """`hash_bytes` of an Arrow string array, read from its buffers: no Python string per hash."""
    import pyarrow as pa  # noqa: PLC0415

    if isinstance(hex_digests, pa.ChunkedArray):
        hex_digests = hex_digests.combine_chunks()
    n = len(hex_digests)
    if n == 0 or hex_digests.null_count or not pa.types.is_string(hex_digests.type):
        return hash_bytes(hex_digests.to_pylist())  # empty, or what hash_bytes rejects: its own error
    offsets = np.frombuffer(hex_digests.buffers()[1], np.int32)[hex_digests.offset:hex_digests.offset + n + 1]
    if np.any(np.diff(offsets) != HASH_HEX):
        return hash_bytes(hex_digests.to_pylist())
    text = np.frombuffer(hex_digests.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(n, HASH_HEX)
    nibbles = _HEX_VALUES[text]
    if np.any(nibbles == 255):
        return hash_bytes(hex_digests.to_pylist())
    return (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]


def hamming_hex(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class BinaryHashIndex:
    """Accepted hashes and a label for each; `nearest` returns the nearest stored label within
    `max_distance` bits, or None. A faiss IndexBinaryMultiHash: the 256 bits are cut into
    max_distance + 1 disjoint substrings, so a code within max_distance bits of a stored one matches
    it exactly on at least one substring (pigeonhole) and is found among that bucket's entries:
    exact, without comparing against every stored code. Beyond 31 bits (substrings under 8 bits)
    it falls back to faiss's exhaustive IndexBinaryFlat."""

    def __init__(self, max_distance: int) -> None:
        import faiss  # noqa: PLC0415

        faiss.omp_set_num_threads(1)
        self.max_distance = int(max_distance)
        n_hash = max(self.max_distance + 1, 4)
        bits = min(64, HASH_BITS // n_hash)
        self._index = (faiss.IndexBinaryMultiHash(HASH_BITS, n_hash, bits) if bits >= 8
                       else faiss.IndexBinaryFlat(HASH_BITS))
        self._labels = array("q")  # 8 bytes per entry, not a Python int each

    def __len__(self) -> int:
        return len(self._labels)

    def nearest(self, code: np.ndarray) -> tuple[int, int] | None:
        """(label, distance) of the nearest stored hash if within max_distance; `code`: (32,) uint8."""
        if not self._labels or self.max_distance < 0:
            return None
        distances, ids = self._index.search(code.reshape(1, -1), 1)
        distance, position = int(distances[0, 0]), int(ids[0, 0])
        if position < 0 or distance > self.max_distance:
            return None
        return self._labels[position], distance

    def add(self, code: np.ndarray, label: int) -> None:
        self._index.add(code.reshape(1, -1))
        self._labels.append(label)


def first_occurrences(keys: list[str | None]) -> list[int | None]:
    """For each position, the position of the first earlier equal non-null key (None when it is the
    first, or null): exact duplicates in canonical order."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for i, key in enumerate(keys):
        if key is None:
            out.append(None)
            continue
        earlier = first.setdefault(key, i)
        out.append(None if earlier == i else earlier)
    return out
