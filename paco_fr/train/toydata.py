"""A tiny face corpus and its region maps in the documented on-disk format, drawn from simple shapes.

For tests, benchmarks and smoke runs of the pre-training stage where the curated corpus is not at
hand: ``CORPUS/shards/shard-XXXXXX.tar`` with ``{face_id}.png`` crops, ``CORPUS/manifest.parquet``
(face_id, shard, split, synthetic) and ``REGIONS/regions-XXXXXX.tar`` with ``{face_id}.png`` label
maps. The faces are cartoons (ellipses and boxes with per-face colours and jitter), labelled
synthetic; they carry enough structure for losses to fall, nothing more.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np

from paco_fr.io import atomic_path


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return ((ys + 0.5 - cy) / ry) ** 2 + ((xs + 0.5 - cx) / rx) ** 2 <= 1.0


def toy_face(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One cartoon face: (RGB uint8 [S,S,3], labels uint8 [S,S]) with the 9 REGIONS classes."""
    s = size
    labels = np.zeros((s, s), dtype=np.uint8)
    j = lambda scale: rng.uniform(-scale, scale) * s  # noqa: E731 (jitter in pixels)
    cy, cx = s * 0.52 + j(0.03), s * 0.5 + j(0.03)
    labels[_ellipse(s, s, cy - 0.06 * s, cx, 0.46 * s, 0.40 * s)] = 1          # head_other (hair)
    labels[_ellipse(s, s, cy + 0.04 * s, cx, 0.38 * s + j(0.02), 0.30 * s + j(0.02))] = 2  # skin
    eye_dy, eye_dx = -0.06 * s + j(0.015), 0.13 * s + j(0.015)
    for label, side in ((5, -1), (6, 1)):                                       # eyes
        labels[_ellipse(s, s, cy + eye_dy, cx + side * eye_dx, 0.035 * s, 0.07 * s)] = label
    for label, side in ((3, -1), (4, 1)):                                       # brows
        labels[_ellipse(s, s, cy + eye_dy - 0.09 * s, cx + side * eye_dx, 0.02 * s, 0.08 * s)] = label
    labels[_ellipse(s, s, cy + 0.07 * s, cx, 0.10 * s, 0.04 * s)] = 7           # nose
    labels[_ellipse(s, s, cy + 0.22 * s + j(0.01), cx, 0.035 * s, 0.12 * s + j(0.01))] = 8  # mouth
    palette = np.array([
        rng.uniform(0, 255, 3),                      # background
        rng.uniform(10, 120, 3),                     # hair
        np.array([230, 180, 150]) * rng.uniform(0.5, 1.1),  # skin
        [60, 40, 30], [60, 40, 30],                  # brows
        [250, 250, 250], [250, 250, 250],            # eyes
        np.array([210, 150, 120]) * rng.uniform(0.5, 1.1),  # nose
        [170, 40, 50],                               # mouth
    ], dtype=np.float64)
    image = palette[labels]
    ys, xs = np.mgrid[0:s, 0:s] / s
    image += (rng.uniform(-40, 40) * (xs - 0.5) + rng.uniform(-40, 40) * (ys - 0.5))[..., None]
    for side in (-1, 1):  # pupils inside the eyes, to give the eye patches texture
        pupil = _ellipse(s, s, cy + eye_dy, cx + side * eye_dx + j(0.01), 0.025 * s, 0.025 * s)
        image[pupil & (labels >= 5) & (labels <= 6)] = [30, 30, 60]
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_toy_corpus(corpus_dir: str | os.PathLike[str], regions_dir: str | os.PathLike[str], *, n_faces: int = 64,
                     size: int = 32, shard_size: int = 32, seed: int = 0,
                     splits: tuple[float, float] = (0.1, 0.1)) -> tuple[Path, Path]:
    """Write `n_faces` cartoon faces (size x size) into a corpus and a regions folder; returns both.

    `splits` are the val and test fractions; faces are assigned in order (train first)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus_dir, regions_dir = Path(corpus_dir), Path(regions_dir)
    (corpus_dir / "shards").mkdir(parents=True, exist_ok=True)
    regions_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_val, n_test = round(splits[0] * n_faces), round(splits[1] * n_faces)
    rows: dict[str, list] = {"face_id": [], "shard": [], "split": [], "synthetic": []}
    for start in range(0, n_faces, shard_size):
        index = start // shard_size
        shard = f"shard-{index:06d}.tar"
        with atomic_path(corpus_dir / "shards" / shard) as c_tmp, atomic_path(
                regions_dir / f"regions-{index:06d}.tar") as r_tmp:
            with tarfile.open(c_tmp, "w", format=tarfile.USTAR_FORMAT) as c_tar, \
                    tarfile.open(r_tmp, "w", format=tarfile.USTAR_FORMAT) as r_tar:
                for i in range(start, min(start + shard_size, n_faces)):
                    face_id = f"toy{seed:03d}-{i:06d}"
                    image, labels = toy_face(size, rng)
                    _add(c_tar, f"{face_id}.png", _png(image))
                    _add(r_tar, f"{face_id}.png", _png(labels))
                    split = "train" if i < n_faces - n_val - n_test else ("val" if i < n_faces - n_test else "test")
                    rows["face_id"].append(face_id)
                    rows["shard"].append(shard)
                    rows["split"].append(split)
                    rows["synthetic"].append(True)
    with atomic_path(corpus_dir / "manifest.parquet") as tmp:
        pq.write_table(pa.table(rows), tmp)
    return corpus_dir, regions_dir
