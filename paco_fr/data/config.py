"""Configuration of the curation stage (params.yaml section `curation`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class BuiltinSourceConfig:
    """The embedded default corpus: public-domain photos shipped by installed packages plus
    procedurally generated faces (labelled synthetic everywhere)."""

    photos: bool = True
    n_synthetic: int = 600
    n_identities: int = 200
    render_size: int = 192
    seed: int = 0


@dataclass
class DetectorConfig:
    min_score: float = 0.5
    # MediaPipe face detection model: 0 = short range (faces within ~2 m), 1 = full range.
    model_selection: int = 1
    keep: Literal["all", "largest"] = "all"
    max_faces: int = 16


@dataclass
class QualityConfig:
    min_face_px: int = 32
    min_sharpness: float = 8.0
    min_brightness: float = 20.0
    max_brightness: float = 235.0
    min_contrast: float = 8.0
    near_duplicate_hamming: int = 4


@dataclass
class SplitConfig:
    val: float = 0.1
    test: float = 0.1
    salt: str = "paco-fr"


@dataclass
class CurationConfig:
    source: str = "builtin"
    crop_size: int = 112
    # < 1 shrinks the ArcFace template about the crop centre so hair, ears and the face boundary
    # (all used by the structured masks) stay inside the crop.
    template_zoom: float = 0.8
    max_image_pixels: int = 64_000_000
    max_file_bytes: int = 100_000_000
    shard_size: int = 1000
    builtin: BuiltinSourceConfig = field(default_factory=BuiltinSourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
