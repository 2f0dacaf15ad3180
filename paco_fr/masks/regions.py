"""Region maps for aligned corpus faces, from one of several providers behind one interface.

A provider turns a :class:`CorpusFace` (crop, its corpus JSON, the ground-truth label map when the
source has one) into a :class:`RegionMap`, or returns None when it has nothing to work with:

- ``ground_truth``: the label map stored in the shard (procedural faces), used as is;
- ``mediapipe``: MediaPipe 478-point landmarks stored by curation, else the face mesh run on the
  crop itself; polygons from the mesh's own index sets;
- ``ibug68``: 68-point landmarks stored by curation (a `.pts` sidecar or the generator's landmarks68);
- ``keypoints5``: the fallback when the mesh finds no face: coarse shapes placed from the 5 alignment
  keypoints.

Landmark providers fill polygons at supersampled resolution (paco_fr.masks.raster) and take
``head_other`` from MediaPipe selfie segmentation: the person mask minus the face oval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from paco_fr.masks.config import RegionsConfig
from paco_fr.masks.landmark_polygons import (Polygons, polygons_from_ibug68, polygons_from_keypoints5,
                                             polygons_from_mediapipe478)
from paco_fr.masks.raster import rasterise
from paco_fr.masks.regions_def import REGIONS

PROVIDERS: tuple[str, ...] = ("ground_truth", "mediapipe", "ibug68", "keypoints5")


class FaceInputError(ValueError):
    """A corpus face that cannot be turned into a region map (the message says why)."""


@dataclass
class CorpusFace:
    face_id: str
    crop: np.ndarray                      # (S, S, 3) uint8 RGB
    meta: dict[str, Any] = field(default_factory=dict)  # the corpus `{face_id}.json`
    labels: np.ndarray | None = None      # (S, S) uint8 ground-truth label map, synthetic faces only

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])

    def stored_landmarks(self, scheme: str) -> np.ndarray | None:
        """Landmarks of the given scheme from the JSON, if curation stored them."""
        if self.meta.get("landmark_scheme") == scheme and self.meta.get("landmarks") is not None:
            return _points(self.meta["landmarks"], f"{self.face_id}.json landmarks")
        if scheme == "ibug68" and self.meta.get("landmarks68") is not None:
            return _points(self.meta["landmarks68"], f"{self.face_id}.json landmarks68")
        return None

    def keypoints5(self) -> np.ndarray | None:
        if self.meta.get("keypoints5") is None:
            return None
        return _points(self.meta["keypoints5"], f"{self.face_id}.json keypoints5")


@dataclass
class RegionMap:
    labels: np.ndarray   # (S, S) uint8, REGIONS labels
    provider: str        # one of PROVIDERS
    source: str          # label_map | stored_landmarks | mesh_on_crop | keypoints5


class RegionProvider(Protocol):
    name: str

    def region_map(self, face: CorpusFace) -> RegionMap | None:
        """The face's region map, or None when this provider has nothing to build it from."""
        ...


class GroundTruthRegions:
    name = "ground_truth"

    def region_map(self, face: CorpusFace) -> RegionMap | None:
        if face.labels is None:
            return None
        labels = np.asarray(face.labels)
        if labels.shape != face.crop.shape[:2]:
            raise FaceInputError(f"{face.face_id}: label map {labels.shape} does not match "
                                 f"the crop {face.crop.shape[:2]}")
        if labels.dtype != np.uint8 or int(labels.max(initial=0)) >= len(REGIONS):
            raise FaceInputError(f"{face.face_id}: label map holds values outside 0..{len(REGIONS) - 1}")
        return RegionMap(labels.copy(), self.name, "label_map")


class _LandmarkRegions:
    """Shared part of the landmark providers: polygons -> label map, head_other from the segmenter."""

    name = ""

    def __init__(self, person: Callable[[np.ndarray], np.ndarray] | None, supersample: int) -> None:
        self.person = person
        self.supersample = int(supersample)

    def _render(self, face: CorpusFace, polygons: Polygons, source: str) -> RegionMap:
        person = self.person(face.crop) if self.person is not None else None
        return RegionMap(rasterise(polygons, face.size, person=person, supersample=self.supersample),
                         self.name, source)


class MediaPipeRegions(_LandmarkRegions):
    name = "mediapipe"

    def __init__(self, person, supersample: int, mesh: Callable[[np.ndarray], np.ndarray | None] | None,
                 use_stored: bool = True) -> None:
        super().__init__(person, supersample)
        self.mesh = mesh
        self.use_stored = use_stored

    def region_map(self, face: CorpusFace) -> RegionMap | None:
        points = face.stored_landmarks("mediapipe478") if self.use_stored else None
        source = "stored_landmarks"
        if points is None and self.mesh is not None:
            points, source = self.mesh(face.crop), "mesh_on_crop"
        if points is None:
            return None
        return self._render(face, _polygons(polygons_from_mediapipe478, points, face.face_id), source)


class Ibug68Regions(_LandmarkRegions):
    name = "ibug68"

    def region_map(self, face: CorpusFace) -> RegionMap | None:
        points = face.stored_landmarks("ibug68")
        if points is None:
            return None
        return self._render(face, _polygons(polygons_from_ibug68, points, face.face_id), "stored_landmarks")


class Keypoints5Regions(_LandmarkRegions):
    name = "keypoints5"

    def region_map(self, face: CorpusFace) -> RegionMap | None:
        keypoints = face.keypoints5()
        if keypoints is None:
            return None
        return self._render(face, _polygons(polygons_from_keypoints5, keypoints, face.face_id), "keypoints5")


class RegionMapBuilder:
    """Tries providers in the order `cfg.provider` implies and returns the first region map:

    - auto: ground truth, stored MediaPipe landmarks, stored 68 points, the mesh on the crop, keypoints5;
    - mediapipe: stored MediaPipe landmarks, else the mesh on the crop, then keypoints5;
    - ibug68 / ground_truth: that provider only.
    keypoints5 is tried only when `cfg.keypoints5_fallback`. MediaPipe graphs are built on first use
    and reused; close the builder (or use `with`) at the end.
    """

    def __init__(self, cfg: RegionsConfig) -> None:
        self.cfg = cfg
        self._mesh_model = None
        self._segmenter = None
        person = self._person_mask if cfg.segment_head else None
        ss = cfg.supersample
        chains: dict[str, list[RegionProvider]] = {
            "auto": [GroundTruthRegions(), MediaPipeRegions(person, ss, mesh=None), Ibug68Regions(person, ss),
                     MediaPipeRegions(person, ss, mesh=self._mesh, use_stored=False)],
            "mediapipe": [MediaPipeRegions(person, ss, mesh=self._mesh)],
            "ibug68": [Ibug68Regions(person, ss)],
            "ground_truth": [GroundTruthRegions()],
        }
        if cfg.provider not in chains:
            raise ValueError(f"unknown region provider {cfg.provider!r} (known: {', '.join(chains)})")
        self.providers = chains[cfg.provider]
        if cfg.keypoints5_fallback and cfg.provider in ("auto", "mediapipe"):
            self.providers.append(Keypoints5Regions(person, ss))

    def __enter__(self) -> "RegionMapBuilder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for model in (self._mesh_model, self._segmenter):
            if model is not None:
                model.close()
        self._mesh_model = self._segmenter = None

    def build(self, face: CorpusFace) -> RegionMap:
        _check_crop(face)
        for provider in self.providers:
            result = provider.region_map(face)
            if result is not None:
                return result
        wanted = {"ground_truth": f"a ground-truth label map ({face.face_id}.labels.png)",
                  "ibug68": "68-point landmarks in its JSON (landmark_scheme ibug68 or landmarks68)"}
        raise FaceInputError(f"{face.face_id}: provider {self.cfg.provider!r} needs "
                             f"{wanted.get(self.cfg.provider, 'landmarks, a face the mesh can find, or keypoints5')}")

    def _mesh(self, crop: np.ndarray) -> np.ndarray | None:
        if self._mesh_model is None:
            from paco_fr.masks.mediapipe_models import FaceMeshOnCrop  # noqa: PLC0415

            self._mesh_model = FaceMeshOnCrop()
        return self._mesh_model.landmarks(crop)

    def _person_mask(self, crop: np.ndarray) -> np.ndarray:
        if self._segmenter is None:
            from paco_fr.masks.mediapipe_models import PersonSegmenter  # noqa: PLC0415

            self._segmenter = PersonSegmenter(model_selection=self.cfg.selfie_model,
                                              threshold=self.cfg.person_threshold)
        return self._segmenter.person_mask(crop)


def _points(value: Any, where: str) -> np.ndarray:
    try:
        points = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FaceInputError(f"{where}: not a list of [x, y] points ({exc})") from exc
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise FaceInputError(f"{where}: expected finite [x, y] points, got shape {points.shape}")
    return points


def _polygons(fn: Callable[[np.ndarray], Polygons], points: np.ndarray, face_id: str) -> Polygons:
    try:
        return fn(points)
    except ValueError as exc:
        raise FaceInputError(f"{face_id}: {exc}") from exc


def _check_crop(face: CorpusFace) -> None:
    crop = face.crop
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
        raise FaceInputError(f"{face.face_id}: expected a square (S, S, 3) uint8 crop, got {crop.dtype} {crop.shape}")
