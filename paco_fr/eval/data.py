"""A materialised benchmark: aligned crops, targets, fixed splits, and its on-disk cache.

Every benchmark, embedded or read from an official layout, is turned into one `BenchmarkData`:
images aligned to the encoder's crop size, a split per item (train/val/test), and task targets.
It is written once per (name, build parameters) into `<cache_dir>/<name>/<key>/` and its data
version is a sha256 over the arrays and metadata (independent of the file format's timestamps).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from paco_fr.io import atomic_dir, read_json, write_json_atomic

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = 0, 1, 2
CACHE_FORMAT = 1

# Target arrays each task carries (besides `images` and `split`).
TASK_TARGETS: dict[str, tuple[str, ...]] = {
    "attributes": ("attributes",),           # (N, A) bool
    "expression": ("label",),                # (N,) int64
    "classification": ("label",),            # (N,) int64
    "landmarks": ("landmarks",),             # (N, K, 2) float32, crop pixels
    "parsing": ("label_map",),               # (N, S, S) uint8, class indices
    "verification": ("identity", "pairs", "pair_same", "pair_split"),  # (N,), (P, 2), (P,), (P,)
}


class BenchmarkDataError(ValueError):
    """A benchmark's files are missing or do not have the expected content."""


@dataclass
class BenchmarkData:
    task: str
    images: np.ndarray                # (N, S, S, 3) uint8 RGB
    split: np.ndarray                 # (N,) int8 in {TRAIN, VAL, TEST}
    targets: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.task not in TASK_TARGETS:
            raise BenchmarkDataError(f"unknown task {self.task!r}")
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise BenchmarkDataError(f"images must be (N, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        n = len(self.images)
        if self.split.shape != (n,):
            raise BenchmarkDataError(f"split must have shape ({n},), got {self.split.shape}")
        missing = [k for k in TASK_TARGETS[self.task] if k not in self.targets]
        if missing:
            raise BenchmarkDataError(f"task {self.task!r} needs targets {missing}")
        for key in TASK_TARGETS[self.task]:
            if key in ("pairs", "pair_same", "pair_split"):
                continue
            if len(self.targets[key]) != n:
                raise BenchmarkDataError(f"target {key!r} has {len(self.targets[key])} items, images {n}")
        if self.task == "verification":
            pairs = self.targets["pairs"]
            if pairs.ndim != 2 or pairs.shape[1] != 2 or (pairs.size and (pairs.min() < 0 or pairs.max() >= n)):
                raise BenchmarkDataError("pairs must be (P, 2) indices into the images")
            if not (len(self.targets["pair_same"]) == len(self.targets["pair_split"]) == len(pairs)):
                raise BenchmarkDataError("pairs, pair_same and pair_split must have equal length")

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[1])

    def indices(self, split: int) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def counts(self) -> dict[str, int]:
        out = {name: int((self.split == i).sum()) for i, name in enumerate(SPLITS)}
        if self.task == "verification":
            ps = self.targets["pair_split"]
            out.update({f"{name}_pairs": int((ps == i).sum()) for i, name in enumerate(SPLITS)})
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"images": self.images, "split": self.split, **{f"t_{k}": v for k, v in self.targets.items()}}

    def version(self) -> str:
        """sha256 over every array's name, dtype, shape and bytes, and the metadata."""
        digest = hashlib.sha256()
        for name, arr in sorted(self.arrays().items()):
            arr = np.ascontiguousarray(arr)
            digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
            digest.update(arr.tobytes())
        digest.update(json.dumps({"task": self.task, "meta": self.meta}, sort_keys=True, default=str).encode())
        return digest.hexdigest()


# Parsing protocols that score on the original image keep each test item's label map at its own
# size (ragged, so packed flat) and the affine map from its pixels to the crop's.
ORIGINAL_LABEL_KEYS = ("orig_label_flat", "orig_label_shape", "orig_label_offset", "orig_to_crop")


def pack_original_labels(labels: list[np.ndarray | None], orig_to_crop: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Targets holding `labels[i]` ((H_i, W_i) uint8, or None for items not scored there) and the
    (2, 3) matrices mapping original pixels to crop pixels."""
    shapes = np.asarray([lab.shape if lab is not None else (0, 0) for lab in labels], dtype=np.int64).reshape(-1, 2)
    sizes = shapes.prod(axis=1)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    flat = [lab.reshape(-1) for lab in labels if lab is not None]
    return {"orig_label_flat": np.concatenate(flat).astype(np.uint8) if flat else np.zeros(0, np.uint8),
            "orig_label_shape": shapes, "orig_label_offset": offsets,
            "orig_to_crop": np.asarray(orig_to_crop, dtype=np.float64).reshape(-1, 2, 3)}


def original_label(data: "BenchmarkData", i: int) -> np.ndarray:
    """The original-resolution label map of item i (see :func:`pack_original_labels`)."""
    h, w = (int(v) for v in data.targets["orig_label_shape"][i])
    if h * w == 0:
        raise BenchmarkDataError(f"item {i} has no original-resolution label map")
    start = int(data.targets["orig_label_offset"][i])
    return data.targets["orig_label_flat"][start:start + h * w].reshape(h, w)


def cache_key(name: str, build_params: Mapping[str, Any]) -> str:
    blob = json.dumps({"name": name, "format": CACHE_FORMAT, **build_params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save(data: BenchmarkData, directory: str | os.PathLike[str], build_params: Mapping[str, Any]) -> str:
    """Write `data` into `directory` atomically; returns its data version."""
    version = data.version()
    with atomic_dir(directory) as tmp:
        np.savez(tmp / "data.npz", **data.arrays())
        write_json_atomic(tmp / "meta.json", {
            "format": CACHE_FORMAT, "task": data.task, "data_version": version,
            "build_params": dict(build_params), "counts": data.counts(), "meta": data.meta,
        })
    return version


def load(directory: str | os.PathLike[str]) -> tuple[BenchmarkData, str]:
    directory = Path(directory)
    meta_path, npz_path = directory / "meta.json", directory / "data.npz"
    if not meta_path.exists() or not npz_path.exists():
        raise BenchmarkDataError(f"{directory}: not a materialised benchmark (meta.json or data.npz missing)")
    info = read_json(meta_path)
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    targets = {k[2:]: v for k, v in arrays.items() if k.startswith("t_")}
    data = BenchmarkData(task=info["task"], images=arrays["images"], split=arrays["split"],
                         targets=targets, meta=info.get("meta", {}))
    return data, info["data_version"]


def seeded_split(n: int, n_train: int, n_val: int, n_test: int, seed: int) -> np.ndarray:
    """Assign n items to train/val/test in the proportions given (exact counts when they sum to
    n), with a fixed permutation."""
    if n_train + n_val + n_test != n:
        total = n_train + n_val + n_test
        n_val = int(round(n * n_val / total))
        n_test = int(round(n * n_test / total))
        n_train = n - n_val - n_test
    order = np.random.default_rng(seed).permutation(n)
    split = np.empty(n, dtype=np.int8)
    split[order[:n_train]] = TRAIN
    split[order[n_train:n_train + n_val]] = VAL
    split[order[n_train + n_val:]] = TEST
    return split


def stratified_split(labels: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Per class, the same train/val/test fractions, with a fixed permutation."""
    labels = np.asarray(labels)
    split = np.empty(len(labels), dtype=np.int8)
    rng = np.random.default_rng(seed)
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(len(idx) * fractions[1]))
        n_test = int(round(len(idx) * fractions[2]))
        n_train = len(idx) - n_val - n_test
        split[idx[:n_train]] = TRAIN
        split[idx[n_train:n_train + n_val]] = VAL
        split[idx[n_train + n_val:]] = TEST
    return split


def whole_split_kept(split: np.ndarray, keep: np.ndarray, which: int = TEST) -> bool:
    """Whether the subsample `keep` (indices into `split`) holds every item of split `which`: a
    published number is comparable only with a score on the whole official test split."""
    return int((split[keep] == which).sum()) == int((split == which).sum())


def subsample_per_split(split: np.ndarray, caps: Mapping[int, int], seed: int) -> np.ndarray:
    """Indices keeping at most caps[s] items of each split s (0 = no cap), in original order."""
    rng = np.random.default_rng(seed)
    keep = []
    for s in (TRAIN, VAL, TEST):
        idx = np.flatnonzero(split == s)
        cap = caps.get(s, 0)
        if cap and len(idx) > cap:
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
        keep.append(idx)
    return np.sort(np.concatenate(keep))
