"""Quality measures of one face and the thresholds that reject it.

All image measures are taken on the *aligned crop*, resampled to 112 x 112 so that thresholds
mean the same for every `crop_size`, and on its central half (pixels 28..84 of 112), which holds
eyes, nose and mouth for any sensible template zoom and never the black border that appears where
the crop leaves the source image.

- face_size_px: side, in source pixels, of the square that the un-zoomed 112 px ArcFace template
  would cover; it comes from all 5 keypoints, so it means the same for every landmark provider
  (about 1.3 x the MediaPipe detector box side; inter-ocular distance x 3.2).
- sharpness: variance of the Laplacian (3 x 3 aperture) of the luma.
- brightness: mean luma (ITU-R 601, 0..255); contrast: standard deviation of the luma.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from paco_fr.data.align import canonical_template, estimate_similarity
from paco_fr.data.config import QualityConfig
from paco_fr.data.reasons import Reason

REFERENCE_SIZE = 112
_CENTRE = slice(REFERENCE_SIZE // 4, REFERENCE_SIZE * 3 // 4)


@dataclass(frozen=True)
class FaceQuality:
    face_size_px: float
    sharpness: float
    brightness: float
    contrast: float


def face_size_px(keypoints5: np.ndarray) -> float:
    """Side in source pixels of the square the 112 px ArcFace template covers for this face."""
    matrix = estimate_similarity(keypoints5, canonical_template(REFERENCE_SIZE, 1.0))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # crop px per source px
    # Rounded to a thousandth of a pixel: the similarity's SVD and determinant (LAPACK, BLAS) take other
    # kernels on CPUs with AVX-512 and move the last bits (~1e-14 px), which made the manifest, and so
    # the corpus, differ between machines. A rounding boundary falls within those bits about once in
    # 10^10 faces.
    return round(REFERENCE_SIZE / scale, 3)


def _reference_luma(crop_rgb: np.ndarray) -> np.ndarray:
    """(112, 112) float64 luma of the crop at the reference size."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2GRAY)
    if grey.shape != (REFERENCE_SIZE, REFERENCE_SIZE):
        shrink = grey.shape[0] > REFERENCE_SIZE
        grey = cv2.resize(grey, (REFERENCE_SIZE, REFERENCE_SIZE),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return grey.astype(np.float64)


def crop_measures(crop_rgb: np.ndarray) -> tuple[float, float, float]:
    """(sharpness, brightness, contrast) of an aligned crop (S, S, 3) uint8."""
    luma = _reference_luma(crop_rgb)
    # Laplacian over the whole reference crop, then the centre: no edge effects from the window.
    laplacian = cv2.Laplacian(luma, cv2.CV_64F, ksize=1)[_CENTRE, _CENTRE]
    centre = luma[_CENTRE, _CENTRE]
    return float(laplacian.var()), float(centre.mean()), float(centre.std())


def measure(crop_rgb: np.ndarray, keypoints5_source: np.ndarray) -> FaceQuality:
    sharpness, brightness, contrast = crop_measures(crop_rgb)
    return FaceQuality(face_size_px=face_size_px(keypoints5_source), sharpness=sharpness,
                       brightness=brightness, contrast=contrast)


def quality_failures(quality: FaceQuality, cfg: QualityConfig) -> list[tuple[Reason, str]]:
    """Every threshold the face fails, most fundamental first (the first is the reason): size,
    then exposure, then sharpness, because a dark or flat face has a low Laplacian variance too."""
    failures = []
    if quality.face_size_px < cfg.min_face_px:
        failures.append((Reason.FACE_TOO_SMALL, f"face_size_px={quality.face_size_px:.1f} < {cfg.min_face_px}"))
    if quality.brightness < cfg.min_brightness:
        failures.append((Reason.TOO_DARK, f"brightness={quality.brightness:.1f} < {cfg.min_brightness}"))
    if quality.brightness > cfg.max_brightness:
        failures.append((Reason.TOO_BRIGHT, f"brightness={quality.brightness:.1f} > {cfg.max_brightness}"))
    if quality.contrast < cfg.min_contrast:
        failures.append((Reason.LOW_CONTRAST, f"contrast={quality.contrast:.2f} < {cfg.min_contrast}"))
    if quality.sharpness < cfg.min_sharpness:
        failures.append((Reason.BLURRY, f"sharpness={quality.sharpness:.2f} < {cfg.min_sharpness}"))
    return failures


def phash64(crop_rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash: luma at 32 x 32, the 8 x 8 lowest frequencies, one bit per
    coefficient above their median. Bit 63 is coefficient (0, 0), row-major."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].reshape(-1)
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def phash_hex(value: int) -> str:
    return f"{value:016x}"
