"""What a benchmark loader is given, and the image helpers loaders share (reading, aligning,
resizing), so that every benchmark's crops look like the pre-training crops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from paco_fr.data.align import align_face, canonical_template, estimate_similarity, transform_points, warp_image
from paco_fr.eval.data import BenchmarkDataError, TEST, TRAIN, VAL


@dataclass(frozen=True)
class BuildContext:
    """Everything that determines a materialised benchmark (it is hashed into the cache key)."""

    crop_size: int                 # the encoder's img_size
    zoom: float                    # curation.template_zoom of the pre-training crops
    n_train: int
    n_val: int
    n_test: int
    seed: int
    data_root: str | None = None   # folder with an official dataset layout (standard adapters)
    real_subsample: bool = True    # cap official splits at n_train/n_val/n_test
    verification_images_per_identity: int = 4
    # Landmark benchmarks: random similarity on top of the 5-point alignment, (max rotation in
    # degrees, max |log scale|, max shift as a fraction of the crop). Without it the eye corners
    # sit at the template's positions in every crop and NME would measure little beyond the mean
    # shape; detector-based crops are never that exact either.
    landmark_jitter: tuple[float, float, float] = (10.0, 0.1, 0.05)
    # Where intermediate builds shared by several benchmarks are kept (not part of the key).
    cache_dir: str | None = None

    def cache_params(self) -> dict[str, Any]:
        params = {"crop_size": self.crop_size, "zoom": round(self.zoom, 6), "n_train": self.n_train,
                  "n_val": self.n_val, "n_test": self.n_test, "seed": self.seed,
                  "real_subsample": self.real_subsample,
                  "verification_images_per_identity": self.verification_images_per_identity,
                  "landmark_jitter": list(self.landmark_jitter)}
        if self.data_root is not None:
            params["data_root"] = str(Path(self.data_root).resolve())
        return params

    @property
    def caps(self) -> dict[int, int]:
        if not self.real_subsample:
            return {}
        return {TRAIN: self.n_train, VAL: self.n_val, TEST: self.n_test}

    def require_root(self, benchmark: str) -> Path:
        if not self.data_root:
            raise BenchmarkDataError(f"benchmark {benchmark!r} reads an official dataset layout: "
                                     f"pass --data-root DIR (the dataset's folder)")
        root = Path(self.data_root)
        if not root.is_dir():
            raise BenchmarkDataError(f"{benchmark}: data root {root} is not a directory")
        return root


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a missing or undecodable file raises BenchmarkDataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: image file not found")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkDataError(f"{path}: cannot decode image ({exc})") from exc


def read_label_png(path: str | Path) -> np.ndarray:
    """(H, W) uint8 label image (mode L or P; RGB masks are reduced to their first channel)."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: label image not found")
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkDataError(f"{path}: cannot decode label image ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(np.uint8)


def five_points_from_68(landmarks: np.ndarray) -> np.ndarray:
    """iBUG 68 -> (eye centres, nose tip, mouth corners), left = smaller x."""
    lm = np.asarray(landmarks, dtype=np.float64)
    pts = np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])
    return order_left_right(pts)


def five_points_from_98(landmarks: np.ndarray) -> np.ndarray:
    """WFLW 98 -> pupils (96, 97), nose tip (54), mouth corners (76, 82), left = smaller x."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return order_left_right(np.stack([lm[96], lm[97], lm[54], lm[76], lm[82]]))


def order_left_right(pts: np.ndarray) -> np.ndarray:
    """Swap the eye pair and the mouth-corner pair where needed so that left has the smaller x."""
    pts = np.array(pts, dtype=np.float64)
    if pts[0, 0] > pts[1, 0]:
        pts[[0, 1]] = pts[[1, 0]]
    if pts[3, 0] > pts[4, 0]:
        pts[[3, 4]] = pts[[4, 3]]
    return pts


def align_with_points(image: np.ndarray, keypoints5: np.ndarray, ctx: BuildContext,
                      extra_points: np.ndarray | None = None,
                      label_map: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Align like the pre-training crops; returns (crop, transformed extra points, warped labels)."""
    aligned = align_face(image, keypoints5, ctx.crop_size, ctx.zoom)
    pts = transform_points(extra_points, aligned.matrix).astype(np.float32) if extra_points is not None else None
    labels = (warp_image(label_map, aligned.matrix, ctx.crop_size, nearest=True, border_value=0)
              if label_map is not None else None)
    return aligned.crop, pts, labels


def jittered_matrix(keypoints5: np.ndarray, ctx: BuildContext, rng: np.random.Generator) -> np.ndarray:
    """The 5-point alignment followed by a random similarity about the crop centre
    (ctx.landmark_jitter: max rotation in degrees, max |log scale|, max shift / crop). (2, 3)."""
    matrix = estimate_similarity(np.asarray(keypoints5, dtype=np.float64), canonical_template(ctx.crop_size, ctx.zoom))
    max_rot, max_log_scale, max_shift = ctx.landmark_jitter
    angle = np.deg2rad(rng.uniform(-max_rot, max_rot))
    scale = float(np.exp(rng.uniform(-max_log_scale, max_log_scale)))
    shift = rng.uniform(-max_shift, max_shift, size=2) * ctx.crop_size
    centre = np.array([ctx.crop_size / 2.0, ctx.crop_size / 2.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    jitter = np.eye(3)
    jitter[:2, :2] = rot
    jitter[:2, 2] = centre - rot @ centre + shift
    return (jitter @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]


# HRNet's face box: the annotation's square box (scale = side / 200) enlarged 1.25 times.
BOX_ENLARGE = 1.25


def box_crop_matrix(points: np.ndarray, crop_size: int, enlarge: float = BOX_ENLARGE) -> np.ndarray:
    """(2, 3) scale-and-shift (no rotation) mapping the square box around `points` onto the crop: the
    centre of their bounding box, side = its longer side x `enlarge`. The face keeps its roll, as in
    the standard 300W / WFLW protocols; only where the box is comes from the ground truth."""
    pts = np.asarray(points, dtype=np.float64)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float((hi - lo).max()) * enlarge
    if side <= 0:
        raise ValueError("degenerate landmarks: their bounding box is empty")
    scale = crop_size / side
    corner = (lo + hi) / 2.0 - side / 2.0
    # Pixel centres at integers: the crop's outer edge is at -0.5, where the box's edge lands.
    shift = -corner * scale - 0.5
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])


def box_crop(image: np.ndarray, points: np.ndarray, ctx: BuildContext) -> tuple[np.ndarray, np.ndarray]:
    """The box crop of :func:`box_crop_matrix` and the points in crop pixels."""
    matrix = box_crop_matrix(points, ctx.crop_size)
    return warp_image(image, matrix, ctx.crop_size), transform_points(points, matrix).astype(np.float32)


def align_with_jitter(image: np.ndarray, keypoints5: np.ndarray, ctx: BuildContext, rng: np.random.Generator,
                      extra_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jittered alignment (:func:`jittered_matrix`). Returns (crop, transformed points)."""
    full = jittered_matrix(keypoints5, ctx, rng)
    crop = warp_image(image, full, ctx.crop_size)
    return crop, transform_points(extra_points, full).astype(np.float32)


def resize_square(image: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Resize (H, W[, C]) to (size, size[, C]); area filter when shrinking."""
    h, w = image.shape[:2]
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def centre_square(image: np.ndarray, top_offset: int | None = None) -> np.ndarray:
    """The largest centred square (optionally starting `top_offset` rows down)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y0 = (h - side) // 2 if top_offset is None else min(max(top_offset, 0), h - side)
    x0 = (w - side) // 2
    return image[y0:y0 + side, x0:x0 + side]


def parse_float_tokens(tokens: list[str], path: Path, line_no: int, what: str) -> np.ndarray:
    try:
        return np.asarray([float(t) for t in tokens], dtype=np.float64)
    except ValueError as exc:
        raise BenchmarkDataError(f"{path}:{line_no}: expected {what}, got {' '.join(tokens)[:80]!r}") from exc


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: missing ({what})")
    return path
