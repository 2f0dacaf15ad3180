"""Landmark providers: where a face's box, score, 5 keypoints and dense landmarks come from.

All providers share one interface (:class:`LandmarkProvider`): ``detect(image_rgb)`` returns the
faces of one image as :class:`DetectedFace`, sorted by decreasing score. Keypoint order
everywhere: left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner,
"left" being the smaller x in an upright face (the subject's right; docs/architecture.md).

- :class:`MediaPipeLandmarks`: MediaPipe 0.10.21's bundled face detector for boxes and scores,
  then the 478-point face mesh (``refine_landmarks=True``) on an enlarged square crop around each
  box. Keypoints from the mesh: iris centres 468 (subject's right, image left) and 473, nose tip
  1, mouth corners 61 (image left) and 291. The mesh points are anatomical, so this order stays
  correct for rolled faces, where sorting by x would swap the eyes.
- :class:`GroundTruthLandmarks`: a ``{stem}.gt.json`` sidecar (the procedural generator's record).
- :class:`Ibug68Landmarks`: a ``{stem}.pts`` sidecar in the iBUG 68-point (300-W) format: eye
  centres are the means of points 36-41 and 42-47, nose tip 30, mouth corners 48 and 54.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from paco_fr.data.reasons import Reason, Rejection

LandmarkScheme = Literal["mediapipe478", "ibug68"]

# MediaPipe 478-point mesh indices of the 5 keypoints, in keypoint order.
MESH_KEYPOINTS5 = (468, 473, 1, 61, 291)
# iBUG 68: (indices averaged) per keypoint.
IBUG68_KEYPOINTS5: tuple[tuple[int, ...], ...] = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))
# ArcFace template: distance between the mouth corners / distance between the eyes. Used to place
# mouth corners when only the detector's mouth centre is known (mesh failed).
_MOUTH_TO_EYE_WIDTH = (70.7299 - 41.5493) / (73.5318 - 38.2946)


@dataclass
class DetectedFace:
    box: tuple[float, float, float, float]     # x0, y0, x1, y1 in source pixels
    score: float                               # detector confidence in [0, 1]; 1.0 for ground truth
    keypoints5: np.ndarray                     # (5, 2) float64, source pixels
    landmarks: np.ndarray | None = None        # (N, 2) float64 dense landmarks, source pixels
    scheme: LandmarkScheme | None = None       # what `landmarks` index
    # Ground truth carried along (identity, attributes, expression, synthetic, landmarks68, ...).
    annotations: dict[str, Any] = field(default_factory=dict)

    @property
    def box_area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@runtime_checkable
class LandmarkProvider(Protocol):
    name: str

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        ...


# --------------------------------------------------------------------------------------------- #
# MediaPipe


class MediaPipeLandmarks:
    """MediaPipe face detection + 478-point face mesh. Create once per process and reuse (the
    graphs take a while to build); call :meth:`close` (or use ``with``) at the end.

    `min_score`: faces scoring below it are returned (so that curation can say ``low_score``) but
    get no mesh. `detection_floor`: the detector's own threshold, below which nothing is returned.
    `context`: side of the square crop given to the mesh, in units of the detector box side; the
    mesh needs forehead and chin in view to fit.
    """

    name = "mediapipe"

    def __init__(self, *, min_score: float = 0.5, model_selection: int = 1, max_faces: int = 16,
                 detection_floor: float = 0.2, context: float = 1.8, mesh_input: int = 256) -> None:
        import mediapipe as mp  # noqa: PLC0415 - heavy import, only when this provider is used

        if not 0.0 <= detection_floor <= min_score <= 1.0:
            raise ValueError(f"need 0 <= detection_floor ({detection_floor}) <= min_score ({min_score}) <= 1")
        if model_selection not in (0, 1):
            raise ValueError(f"model_selection must be 0 (short range) or 1 (full range), got {model_selection}")
        self.min_score = float(min_score)
        self.max_faces = int(max_faces)
        self.context = float(context)
        self.mesh_input = int(mesh_input)
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=detection_floor)
        # static_image_mode: every call is an independent photo (no tracking between calls).
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3)
        self.mesh_failures = 0

    def __enter__(self) -> "MediaPipeLandmarks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for graph in (getattr(self, "_detector", None), getattr(self, "_mesh", None)):
            if graph is not None:
                graph.close()
        self._detector = self._mesh = None

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        if self._detector is None:
            raise RuntimeError("MediaPipeLandmarks was closed")
        image_rgb = _as_rgb_uint8(image_rgb)
        height, width = image_rgb.shape[:2]
        result = self._detector.process(image_rgb)
        detections = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = (rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width,
                   (rel.ymin + rel.height) * height)
            # 6 detector keypoints: image-left eye, image-right eye, nose tip, mouth centre, 2 ears.
            points = np.array([[kp.x * width, kp.y * height] for kp in det.location_data.relative_keypoints],
                              dtype=np.float64)
            detections.append((float(det.score[0]), box, points))
        # Highest score first; box position breaks ties so the order never depends on the runtime.
        detections.sort(key=lambda d: (-d[0], d[1][0], d[1][1]))
        faces = []
        for rank, (score, box, points) in enumerate(detections[: self.max_faces]):
            face = DetectedFace(box=tuple(float(v) for v in box), score=score,
                                keypoints5=_keypoints_from_detector(points))
            if score >= self.min_score:
                mesh = self._mesh_in_box(image_rgb, box)
                if mesh is not None:
                    face.keypoints5 = mesh[list(MESH_KEYPOINTS5)].copy()
                    face.landmarks = mesh
                    face.scheme = "mediapipe478"
                else:
                    self.mesh_failures += 1
            faces.append(face)
        return faces

    def _mesh_in_box(self, image_rgb: np.ndarray, box: Sequence[float]) -> np.ndarray | None:
        """The (478, 2) mesh of the face in `box`, in source pixels, or None when the mesh finds
        no face there (or finds a neighbour's face instead)."""
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * self.context
        if not math.isfinite(side) or side < 2:
            return None
        scale = self.mesh_input / side
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # source -> crop: uniform scale about the box centre, crop centre at mesh_input / 2.
        matrix = np.array([[scale, 0.0, self.mesh_input / 2 - scale * cx],
                           [0.0, scale, self.mesh_input / 2 - scale * cy]])
        crop = cv2.warpAffine(image_rgb, matrix, (self.mesh_input, self.mesh_input),
                              flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        if len(marks) != 478:
            return None
        crop_points = np.array([[m.x * self.mesh_input, m.y * self.mesh_input] for m in marks], dtype=np.float64)
        points = (crop_points - matrix[:, 2]) / scale
        # The mesh must have fitted the face we asked about: its nose tip inside the detector box.
        nose = points[MESH_KEYPOINTS5[2]]
        margin = 0.15 * (x1 - x0)
        if not (x0 - margin <= nose[0] <= x1 + margin and y0 - margin <= nose[1] <= y1 + margin):
            return None
        return points


def _keypoints_from_detector(points: np.ndarray) -> np.ndarray:
    """5 keypoints from the detector's 6 (no mouth corners): the corners are placed on the line
    through the mouth centre parallel to the eyes, as far apart as in the ArcFace template."""
    left_eye, right_eye, nose, mouth = points[0], points[1], points[2], points[3]
    half = (right_eye - left_eye) * (_MOUTH_TO_EYE_WIDTH / 2)
    return np.stack([left_eye, right_eye, nose, mouth - half, mouth + half]).astype(np.float64)


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------------------------- #
# Ground truth from sidecars


class GroundTruthLandmarks:
    """Faces from a generator record (``{stem}.gt.json``): one record, or ``{"faces": [records]}``.
    A record needs ``keypoints5`` (5 x 2); ``landmarks68`` (68 x 2, iBUG order), ``identity``,
    ``attributes``, ``expression`` and ``synthetic`` are carried along when present."""

    name = "ground_truth"

    def __init__(self, records: Sequence[dict[str, Any]], origin: str = "ground truth") -> None:
        self.origin = origin
        self.records = [dict(r) for r in records]

    @classmethod
    def from_sidecar(cls, path: str | os.PathLike[str]) -> "GroundTruthLandmarks":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejection(Reason.BAD_ANNOTATION, f"{path.name}: not readable JSON ({exc})") from exc
        if isinstance(data, dict) and "faces" in data:
            records = data["faces"]
        else:
            records = [data]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise Rejection(Reason.BAD_ANNOTATION, f"{path.name}: expected an object or {{'faces': [objects]}}")
        return cls(records, origin=path.name)

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        height, width = np.asarray(image_rgb).shape[:2]
        faces = []
        for i, record in enumerate(self.records):
            where = f"{self.origin} face {i}"
            keypoints5 = _points(record.get("keypoints5"), 5, where, "keypoints5")
            landmarks68 = (_points(record["landmarks68"], 68, where, "landmarks68")
                           if record.get("landmarks68") is not None else None)
            _check_inside(keypoints5, width, height, where)
            box = _box_of(landmarks68 if landmarks68 is not None else keypoints5)
            annotations = {k: v for k, v in record.items() if k not in ("keypoints5",)}
            faces.append(DetectedFace(box=box, score=1.0, keypoints5=keypoints5, landmarks=landmarks68,
                                      scheme="ibug68" if landmarks68 is not None else None,
                                      annotations=annotations))
        return faces


class PtsFormatError(ValueError):
    """A .pts file that is not in the iBUG/300-W format."""


def read_pts(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an iBUG/300-W ``.pts`` file: ``version: 1``, ``n_points: N``, ``{``, N lines ``x y``, ``}``.
    Returns (N, 2) float64, coordinates as written. Raises :class:`PtsFormatError` naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtsFormatError(f"{path}: cannot read ({exc})") from exc
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line]
    header: dict[str, str] = {}
    idx = 0
    while idx < len(lines) and lines[idx][1] != "{":
        n, line = lines[idx]
        key, sep, value = line.partition(":")
        if not sep:
            raise PtsFormatError(f"{path}:{n}: expected 'key: value' header or '{{', got {line!r}")
        header[key.strip().lower()] = value.strip()
        idx += 1
    if idx == len(lines):
        raise PtsFormatError(f"{path}: no '{{' opening the point list")
    if "n_points" not in header:
        raise PtsFormatError(f"{path}: header has no 'n_points'")
    try:
        n_points = int(header["n_points"])
    except ValueError as exc:
        raise PtsFormatError(f"{path}: n_points {header['n_points']!r} is not an integer") from exc
    if "version" in header and header["version"] not in ("1", "1.0"):
        raise PtsFormatError(f"{path}: unsupported version {header['version']!r}")
    points = []
    idx += 1
    while idx < len(lines) and lines[idx][1] != "}":
        n, line = lines[idx]
        parts = line.split()
        if len(parts) != 2:
            raise PtsFormatError(f"{path}:{n}: expected 'x y', got {line!r}")
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError as exc:
            raise PtsFormatError(f"{path}:{n}: not numbers: {line!r}") from exc
        if not (math.isfinite(x) and math.isfinite(y)):
            raise PtsFormatError(f"{path}:{n}: non-finite coordinate: {line!r}")
        points.append((x, y))
        idx += 1
    if idx == len(lines):
        raise PtsFormatError(f"{path}: no '}}' closing the point list")
    if len(points) != n_points:
        raise PtsFormatError(f"{path}: header says n_points={n_points} but {len(points)} points are listed")
    return np.array(points, dtype=np.float64).reshape(-1, 2)


class Ibug68Landmarks:
    """One face from iBUG 68-point landmarks (a ``.pts`` sidecar)."""

    name = "ibug68"

    def __init__(self, points: np.ndarray, origin: str = "pts") -> None:
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (68, 2):
            raise ValueError(f"{origin}: expected 68 points, got {points.shape[0] if points.ndim == 2 else points.shape}")
        self.points = points
        self.origin = origin

    @classmethod
    def from_pts(cls, path: str | os.PathLike[str]) -> "Ibug68Landmarks":
        try:
            points = read_pts(path)
            return cls(points, origin=Path(path).name)
        except (PtsFormatError, ValueError) as exc:
            raise Rejection(Reason.BAD_ANNOTATION, str(exc)) from exc

    def detect(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        height, width = np.asarray(image_rgb).shape[:2]
        keypoints5 = keypoints5_from_ibug68(self.points)
        _check_inside(keypoints5, width, height, self.origin)
        return [DetectedFace(box=_box_of(self.points), score=1.0, keypoints5=keypoints5,
                             landmarks=self.points.copy(), scheme="ibug68")]


def keypoints5_from_ibug68(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[list(group)].mean(axis=0) for group in IBUG68_KEYPOINTS5])


def _points(value: Any, n: int, where: str, key: str) -> np.ndarray:
    if value is None:
        raise Rejection(Reason.BAD_ANNOTATION, f"{where}: missing {key!r}")
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise Rejection(Reason.BAD_ANNOTATION, f"{where}: {key} is not numeric") from exc
    if points.shape != (n, 2):
        raise Rejection(Reason.BAD_ANNOTATION, f"{where}: {key} has shape {points.shape}, expected ({n}, 2)")
    if not np.isfinite(points).all():
        raise Rejection(Reason.BAD_ANNOTATION, f"{where}: {key} has NaN or inf")
    return points


def _check_inside(keypoints5: np.ndarray, width: int, height: int, where: str) -> None:
    inside = ((keypoints5 >= -1.0) & (keypoints5 <= np.array([width + 1.0, height + 1.0]))).all()
    if not inside:
        raise Rejection(Reason.BAD_ANNOTATION,
                        f"{where}: keypoints5 outside the {width}x{height} image: {np.round(keypoints5, 1).tolist()}")


def _box_of(points: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)
