"""Configuration of the region maps (section `regions`) and of mask sampling (section `masking`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


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
    # Allowed mean share of crop pixels per class, checked by the Great Expectations suite.
    coverage: dict[str, CoverageRange] = field(default_factory=dict)


@dataclass
class MaskingConfig:
    strategy: Literal["random", "block", "structured"] = "structured"
    ratio: float = 0.75
