"""Configuration of the region maps (section `regions`) and of mask sampling (section `masking`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from paco_fr.masks.regions_def import REGIONS


@dataclass
class CoverageRange:
    min: float = 0.0
    max: float = 1.0


@dataclass
class RegionsConfig:
    # auto: the source's ground truth when it has one, else landmarks stored by curation
    # (MediaPipe mesh or 68-point), running the mesh on the crop when none are stored.
    provider: Literal["auto", "mediapipe", "ground_truth", "ibug68"] = "auto"
    segment_head: bool = True
    # MediaPipe selfie segmentation model for head_other: 0 general (square input), 1 landscape;
    # 1 is closer to ground truth on procedural faces (docs/masks.md).
    selfie_model: Literal[0, 1] = 1
    person_threshold: float = 0.5
    # Polygons are filled at this many samples per pixel side; a pixel is in when half covered.
    supersample: int = 4
    # When no landmarks are stored and the mesh finds no face on the crop: coarse shapes from the
    # 5 alignment keypoints (provider `keypoints5`) instead of an error.
    keypoints5_fallback: bool = True
    preview_faces: int = 16
    preview_patch_size: int = 8
    # Allowed mean share of crop pixels per class, checked by the Great Expectations suite; a class
    # left out uses paco_fr.masks.validation.DEFAULT_COVERAGE.
    coverage: dict[str, CoverageRange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.supersample < 1 or self.supersample > 16:
            raise ValueError(f"supersample must be within 1..16, got {self.supersample}")
        if not 0.0 < self.person_threshold < 1.0:
            raise ValueError(f"person_threshold must be within (0, 1), got {self.person_threshold}")
        if self.preview_faces < 0 or self.preview_patch_size < 1:
            raise ValueError("preview_faces must be >= 0 and preview_patch_size >= 1")
        unknown = sorted(set(self.coverage) - set(REGIONS))
        if unknown:
            raise ValueError(f"coverage for unknown classes {unknown} (classes: {', '.join(REGIONS)})")
        for name, allowed in self.coverage.items():
            if not 0.0 <= allowed.min <= allowed.max <= 1.0:
                raise ValueError(f"coverage.{name}: need 0 <= min <= max <= 1, got [{allowed.min}, {allowed.max}]")


@dataclass
class MaskingConfig:
    strategy: Literal["random", "block", "structured"] = "structured"
    ratio: float = 0.75

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"masking ratio must be within [0, 1], got {self.ratio}")
