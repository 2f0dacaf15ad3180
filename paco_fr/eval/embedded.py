"""Embedded benchmarks: built offline from the procedural face generator (synthetic) and from the
real labelled images that installed packages ship (scikit-image's lfw_subset).

Synthetic faces use `identity_offset=SYNTHETIC_IDENTITY_OFFSET`, so their identities are disjoint
from the pre-training corpus (which starts at 0), and seeds derived from the eval seed. Attributes,
expression, landmarks and parsing share one pool of faces (POOL_NAME); verification has its own
faces, several per identity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from paco_fr.data.align import transform_points, warp_image
from paco_fr.eval.build import BuildContext, align_with_points, jittered_matrix, resize_square
from paco_fr.eval.data import BenchmarkData, TEST, TRAIN, VAL, cache_key, seeded_split, stratified_split
from paco_fr.io import atomic_dir
from paco_fr.eval.metrics import IBUG68_OUTER_EYE_CORNERS

SYNTHETIC_IDENTITY_OFFSET = 1_000_000
RENDER_SIZE = 192

# generate_faces(n, *, seed, size, n_identities, identity_offset) -> Iterator[SyntheticFace]
FaceGenerator = Callable[..., Iterator[Any]]


def _default_generator() -> FaceGenerator:
    from paco_fr.data.synthetic import generate_faces

    return generate_faces


def _synthetic_module_constants() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from paco_fr.data import synthetic

    return tuple(synthetic.ATTRIBUTES), tuple(synthetic.EXPRESSIONS)


def benchmark_seed(base_seed: int, name: str) -> int:
    """A seed per benchmark, stable across runs and Python versions."""
    return (base_seed * 1_000_003 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)) % (2**31 - 1)


def _aligned_faces(ctx: BuildContext, name: str, n: int, *, n_identities: int | None = None,
                   generator: FaceGenerator | None = None, want_labels: bool = False):
    """Generate and align n synthetic faces. Yields (face, crop, landmarks68 in crop px, label map)."""
    generate = generator or _default_generator()
    faces = generate(n, seed=benchmark_seed(ctx.seed, name), size=RENDER_SIZE, n_identities=n_identities,
                     identity_offset=SYNTHETIC_IDENTITY_OFFSET)
    for face in tqdm(faces, total=n, desc=f"materialise {name}", unit="face", leave=False):
        crop, lm, labels = align_with_points(
            np.asarray(face.image), np.asarray(face.keypoints5), ctx,
            extra_points=np.asarray(face.landmarks68),
            label_map=np.asarray(face.label_map) if want_labels else None)
        yield face, crop, lm, labels


def _n_total(ctx: BuildContext) -> int:
    return ctx.n_train + ctx.n_val + ctx.n_test


# Attributes, expression, landmarks and parsing are four label sets of one pool of faces (same
# images, same split), so an encoder's features of the pool are extracted once and serve all four.
# The pool's crops are the pre-training alignment plus the landmark jitter (ctx.landmark_jitter):
# without it the eye corners would sit at the template's positions in every crop.
POOL_NAME = "synthetic_faces"


@dataclass
class FacePool:
    images: np.ndarray          # (N, S, S, 3) uint8, aligned
    attributes: np.ndarray      # (N, A) bool
    expression: np.ndarray      # (N,) int64 index into expressions
    label_map: np.ndarray       # (N, S, S) uint8 REGIONS labels
    landmarks: np.ndarray       # (N, 68, 2) float32, crop pixels
    split: np.ndarray           # (N,) int8
    attribute_names: tuple[str, ...]
    expressions: tuple[str, ...]


_POOLS: dict[tuple, FacePool] = {}


def synthetic_face_pool(ctx: BuildContext, generator: FaceGenerator | None = None,
                        attribute_names: tuple[str, ...] | None = None,
                        expressions: tuple[str, ...] | None = None) -> FacePool:
    """The shared pool: memoised per build parameters in this process, and kept on disk under
    `<cache_dir>/synthetic_faces/<key>/` when the context names a cache folder."""
    if attribute_names is None or expressions is None:
        default_attrs, default_expr = _synthetic_module_constants()
        attribute_names = attribute_names or default_attrs
        expressions = expressions or default_expr
    if generator is not None:  # a caller's own generator (tests): nothing is cached
        return _build_pool(ctx, generator, tuple(attribute_names), tuple(expressions))
    key = (repr(sorted(ctx.cache_params().items())), tuple(attribute_names), tuple(expressions))
    if key in _POOLS:
        return _POOLS[key]
    disk = None
    if ctx.cache_dir:
        disk = Path(ctx.cache_dir) / POOL_NAME / cache_key(POOL_NAME, {**ctx.cache_params(),
                                                                     "attributes": attribute_names,
                                                                     "expressions": expressions})
    if disk is not None and (disk / "pool.npz").exists():
        with np.load(disk / "pool.npz", allow_pickle=False) as z:
            pool = FacePool(images=z["images"], attributes=z["attributes"], expression=z["expression"],
                            label_map=z["label_map"], landmarks=z["landmarks"], split=z["split"],
                            attribute_names=tuple(attribute_names), expressions=tuple(expressions))
    else:
        pool = _build_pool(ctx, generator, tuple(attribute_names), tuple(expressions))
        if disk is not None:
            with atomic_dir(disk) as tmp:
                np.savez(tmp / "pool.npz", images=pool.images, attributes=pool.attributes,
                         expression=pool.expression, label_map=pool.label_map, landmarks=pool.landmarks,
                         split=pool.split)
    _POOLS.clear()  # keep one pool in memory: they are tens of MB
    _POOLS[key] = pool
    return pool


def _build_pool(ctx: BuildContext, generator: FaceGenerator | None, attribute_names: tuple[str, ...],
                expressions: tuple[str, ...]) -> FacePool:
    generate = generator or _default_generator()
    index = {e: i for i, e in enumerate(expressions)}
    rng = np.random.default_rng(benchmark_seed(ctx.seed, POOL_NAME + "/jitter"))
    n = _n_total(ctx)
    images, attrs, expr, maps, lms = [], [], [], [], []
    faces = generate(n, seed=benchmark_seed(ctx.seed, POOL_NAME), size=RENDER_SIZE, n_identities=None,
                     identity_offset=SYNTHETIC_IDENTITY_OFFSET)
    for face in tqdm(faces, total=n, desc=f"materialise {POOL_NAME}", unit="face", leave=False):
        matrix = jittered_matrix(np.asarray(face.keypoints5), ctx, rng)
        images.append(warp_image(np.asarray(face.image), matrix, ctx.crop_size))
        maps.append(warp_image(np.asarray(face.label_map), matrix, ctx.crop_size, nearest=True, border_value=0))
        lms.append(transform_points(np.asarray(face.landmarks68), matrix).astype(np.float32))
        attrs.append([bool(face.attributes[a]) for a in attribute_names])
        expr.append(index[face.expression])
    return FacePool(
        images=np.stack(images), attributes=np.asarray(attrs, dtype=bool), expression=np.asarray(expr, dtype=np.int64),
        label_map=np.stack(maps).astype(np.uint8), landmarks=np.stack(lms),
        split=seeded_split(len(images), ctx.n_train, ctx.n_val, ctx.n_test, benchmark_seed(ctx.seed, POOL_NAME + "/split")),
        attribute_names=attribute_names, expressions=expressions)


def _pool_meta(ctx: BuildContext) -> dict[str, Any]:
    return {"source": "paco_fr.data.synthetic", "identity_offset": SYNTHETIC_IDENTITY_OFFSET,
            "face_pool": POOL_NAME, "alignment": "5-point (ground-truth keypoints) + jitter",
            "landmark_jitter": list(ctx.landmark_jitter)}


def build_synthetic_attributes(ctx: BuildContext, generator: FaceGenerator | None = None,
                               attribute_names: tuple[str, ...] | None = None) -> BenchmarkData:
    pool = synthetic_face_pool(ctx, generator, attribute_names=attribute_names)
    return BenchmarkData(task="attributes", images=pool.images, split=pool.split,
                         targets={"attributes": pool.attributes},
                         meta={"attribute_names": list(pool.attribute_names), **_pool_meta(ctx)})


def build_synthetic_expression(ctx: BuildContext, generator: FaceGenerator | None = None,
                               expressions: tuple[str, ...] | None = None) -> BenchmarkData:
    pool = synthetic_face_pool(ctx, generator, expressions=expressions)
    return BenchmarkData(task="expression", images=pool.images, split=pool.split,
                         targets={"label": pool.expression},
                         meta={"class_names": list(pool.expressions), **_pool_meta(ctx)})


def build_synthetic_parsing(ctx: BuildContext, generator: FaceGenerator | None = None) -> BenchmarkData:
    from paco_fr.masks.regions_def import REGIONS

    pool = synthetic_face_pool(ctx, generator)
    return BenchmarkData(task="parsing", images=pool.images, split=pool.split,
                         targets={"label_map": pool.label_map},
                         meta={"class_names": list(REGIONS), "ignore_in_mean": [0], **_pool_meta(ctx)})


def build_synthetic_landmarks(ctx: BuildContext, generator: FaceGenerator | None = None) -> BenchmarkData:
    pool = synthetic_face_pool(ctx, generator)
    return BenchmarkData(task="landmarks", images=pool.images, split=pool.split,
                         targets={"landmarks": pool.landmarks},
                         meta={"scheme": "ibug68", "norm_indices": list(IBUG68_OUTER_EYE_CORNERS),
                               "norm": "inter-ocular (outer eye corners 36, 45)", **_pool_meta(ctx)})


def build_synthetic_verification(ctx: BuildContext, generator: FaceGenerator | None = None) -> BenchmarkData:
    name = "synthetic_verification"
    per_id = max(2, ctx.verification_images_per_identity)
    n_ids = max(3, _n_total(ctx) // per_id)
    images, identity = [], []
    for face, crop, _, _ in _aligned_faces(ctx, name, n_ids * per_id, n_identities=n_ids, generator=generator):
        images.append(crop)
        identity.append(int(face.identity))
    identity_arr = np.asarray(identity, dtype=np.int64)
    split = identity_split(identity_arr, ctx, benchmark_seed(ctx.seed, name + "/split"))
    pairs, same, pair_split = make_pairs(identity_arr, split, benchmark_seed(ctx.seed, name + "/pairs"))
    return BenchmarkData(
        task="verification", images=np.stack(images), split=split,
        targets={"identity": identity_arr, "pairs": pairs, "pair_same": same, "pair_split": pair_split},
        meta={"source": "paco_fr.data.synthetic", "identity_offset": SYNTHETIC_IDENTITY_OFFSET,
              "pairs": "all same-identity pairs of a split and as many different-identity pairs"},
    )


def identity_split(identity: np.ndarray, ctx: BuildContext, seed: int) -> np.ndarray:
    """Identities (not images) go to train/val/test, so no identity crosses splits."""
    ids = np.unique(identity)
    id_split = seeded_split(len(ids), ctx.n_train, ctx.n_val, ctx.n_test, seed)
    lookup = dict(zip(ids.tolist(), id_split.tolist()))
    return np.asarray([lookup[i] for i in identity.tolist()], dtype=np.int8)


def make_pairs(identity: np.ndarray, split: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per split: every same-identity pair, and an equal number of distinct different-identity
    pairs drawn without replacement."""
    rng = np.random.default_rng(seed)
    all_pairs, all_same, all_split = [], [], []
    for s in (TRAIN, VAL, TEST):
        idx = np.flatnonzero(split == s)
        if len(idx) < 2:
            continue
        positives = [(a, b) for a, b in combinations(idx.tolist(), 2) if identity[a] == identity[b]]
        n_neg_possible = len(idx) * (len(idx) - 1) // 2 - len(positives)
        n_neg = min(len(positives), n_neg_possible)
        negatives: set[tuple[int, int]] = set()
        while len(negatives) < n_neg:
            a, b = rng.choice(idx, size=2, replace=False)
            if identity[a] != identity[b]:
                negatives.add((int(min(a, b)), int(max(a, b))))
        chosen = positives + sorted(negatives)
        all_pairs += chosen
        all_same += [True] * len(positives) + [False] * len(negatives)
        all_split += [s] * len(chosen)
    return (np.asarray(all_pairs, dtype=np.int64).reshape(-1, 2), np.asarray(all_same, dtype=bool),
            np.asarray(all_split, dtype=np.int8))


# Fixed stratified fractions for the 200-image lfw_subset (documented in docs/evaluation.md).
LFW_SUBSET_FRACTIONS = (0.5, 0.2, 0.3)


def build_lfw_subset_faces(ctx: BuildContext) -> BenchmarkData:
    """scikit-image's lfw_subset: 100 LFW faces then 100 non-faces, 25x25 grayscale in [0, 1].
    Upsampled (bilinear) to the crop size, replicated to RGB; a fixed stratified split."""
    from skimage.data import lfw_subset

    gray = np.asarray(lfw_subset(), dtype=np.float64)  # (200, 25, 25)
    labels = np.r_[np.ones(100, dtype=np.int64), np.zeros(100, dtype=np.int64)]
    if gray.shape[0] != 200:
        raise ValueError(f"skimage lfw_subset changed shape: {gray.shape}")
    images = np.stack([
        np.repeat(resize_square((g * 255.0).round().astype(np.uint8), ctx.crop_size)[..., None], 3, axis=2)
        for g in gray])
    split = stratified_split(labels, LFW_SUBSET_FRACTIONS, benchmark_seed(ctx.seed, "lfw_subset_faces/split"))
    return BenchmarkData(
        task="classification", images=images, split=split, targets={"label": labels},
        meta={"class_names": ["non_face", "face"], "source": "skimage.data.lfw_subset",
              "split_fractions": list(LFW_SUBSET_FRACTIONS), "note": "real images, not aligned (25x25 upsampled)"},
    )
