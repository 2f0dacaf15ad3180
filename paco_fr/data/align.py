"""Face alignment: a similarity transform of 5 keypoints onto a canonical template.

Keypoint order everywhere: left eye centre, right eye centre, nose tip, left mouth corner, right
mouth corner, with "left" the smaller x in the image (see docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# InsightFace/ArcFace template for 112 x 112 crops, in pixels.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def canonical_template(crop_size: int, zoom: float = 1.0) -> np.ndarray:
    """The ArcFace template scaled to `crop_size`; `zoom` < 1 shrinks the face about the crop centre
    so that hair, ears and the face boundary stay in the crop. Returns (5, 2) float64."""
    if crop_size <= 0:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    if not 0.2 <= zoom <= 2.0:
        raise ValueError(f"zoom must be within [0.2, 2.0], got {zoom}")
    points = ARCFACE_112 * (crop_size / 112.0)
    centre = np.array([crop_size / 2.0, crop_size / 2.0])
    return centre + (points - centre) * zoom


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst
    (Umeyama 1991, no reflection). src, dst: (K, 2). Returns a (2, 3) float64 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"expected two (K>=2, 2) point sets of equal shape, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("keypoints contain NaN or inf")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-12:
        raise ValueError("degenerate keypoints: all source points coincide")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((s * sign).sum() / src_var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int, *, nearest: bool = False,
               border_value: int | tuple[int, ...] = 0) -> np.ndarray:
    """Warp `image` (H, W[, C]) by `matrix` into a (size, size[, C]) crop. `nearest` for label maps."""
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    # Downscaling by more than 2x aliases with bilinear sampling; area-filter first.
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not nearest and scale < 0.5:
        factor = max(1, int(np.floor(1.0 / scale / 1.5)))
        if factor > 1:
            h, w = image.shape[:2]
            image = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
            sx, sy = (w // factor) / w, (h // factor) / h
            # matrix maps original px -> crop; compose with the inverse of the downscale.
            matrix = matrix @ np.diag([1.0 / sx, 1.0 / sy, 1.0])
    return cv2.warpAffine(image, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border_value)


@dataclass
class AlignedFace:
    crop: np.ndarray        # (S, S, 3) uint8 RGB
    matrix: np.ndarray      # (2, 3) source pixels -> crop pixels
    keypoints5: np.ndarray  # (5, 2) keypoints in crop pixels


def align_face(image: np.ndarray, keypoints5: np.ndarray, crop_size: int, zoom: float = 1.0) -> AlignedFace:
    """Crop and align one face given its 5 keypoints in source pixels."""
    keypoints5 = np.asarray(keypoints5, dtype=np.float64)
    if keypoints5.shape != (5, 2):
        raise ValueError(f"expected (5, 2) keypoints, got {keypoints5.shape}")
    matrix = estimate_similarity(keypoints5, canonical_template(crop_size, zoom))
    crop = warp_image(image, matrix, crop_size)
    return AlignedFace(crop=crop, matrix=matrix, keypoints5=transform_points(keypoints5, matrix).astype(np.float32))
