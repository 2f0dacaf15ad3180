"""MediaPipe's bundled models, run on aligned crops: the 478-point face mesh and selfie segmentation.

Imported only by the region-map builder: MediaPipe is not installed on GPU training machines. Each
class builds its graph once; reuse one instance for a whole corpus and close it at the end.
"""

from __future__ import annotations

import os

import numpy as np


def _mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")  # the graphs log a line per build otherwise
    import mediapipe as mp  # noqa: PLC0415 - heavy, optional at import time of paco_fr.masks

    return mp


class FaceMeshOnCrop:
    """478-point face mesh (iris refinement on) of the single face of an aligned crop.

    `retry_scale`: when the mesh finds no face, it runs again on the crop upscaled by this factor
    (small crops give the mesh's internal detector little to work with)."""

    def __init__(self, *, min_detection_confidence: float = 0.3, retry_scale: int = 2) -> None:
        mp = _mediapipe()
        self.retry_scale = int(retry_scale)
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=True,
                                                     min_detection_confidence=min_detection_confidence)

    def __enter__(self) -> "FaceMeshOnCrop":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def landmarks(self, crop: np.ndarray) -> np.ndarray | None:
        """(478, 2) float64 crop pixels, or None when the mesh finds no face."""
        if self._mesh is None:
            raise RuntimeError("FaceMeshOnCrop was closed")
        crop = _rgb_uint8(crop)
        height, width = crop.shape[:2]
        for scale in (1, self.retry_scale) if self.retry_scale > 1 else (1,):
            image = crop if scale == 1 else _upscale(crop, scale)
            result = self._mesh.process(np.ascontiguousarray(image))
            if result.multi_face_landmarks:
                marks = result.multi_face_landmarks[0].landmark
                # normalised coordinates do not depend on the upscaling
                return np.array([[p.x * width, p.y * height] for p in marks], dtype=np.float64)
        return None


class PersonSegmenter:
    """MediaPipe selfie segmentation: the person (head, hair, ears, neck, body) as a boolean mask.

    model_selection 0 is the general model (square 256x256 input), 1 the landscape one (144x256).
    Both work on 112 px crops; 1 agrees better with the procedural faces' ground truth (docs/masks.md)."""

    def __init__(self, *, model_selection: int = 1, threshold: float = 0.5) -> None:
        if model_selection not in (0, 1):
            raise ValueError(f"selfie segmentation model_selection must be 0 or 1, got {model_selection}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"person threshold must be within (0, 1), got {threshold}")
        mp = _mediapipe()
        self.threshold = float(threshold)
        self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def probability(self, crop: np.ndarray) -> np.ndarray:
        """(H, W) float32 person probability."""
        if self._segmenter is None:
            raise RuntimeError("PersonSegmenter was closed")
        result = self._segmenter.process(np.ascontiguousarray(_rgb_uint8(crop)))
        return np.asarray(result.segmentation_mask, dtype=np.float32)

    def person_mask(self, crop: np.ndarray) -> np.ndarray:
        """(H, W) bool."""
        return self.probability(crop) > self.threshold


def _rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB crop, got {image.dtype} {image.shape}")
    return image


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    import cv2  # noqa: PLC0415

    height, width = image.shape[:2]
    return cv2.resize(image, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
