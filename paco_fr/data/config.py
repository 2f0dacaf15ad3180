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
    # The detector's own threshold: faces between it and min_score are reported as `low_score`
    # rather than not found at all.
    detection_floor: float = 0.2
    # Side of the square crop the face mesh sees, in detector-box sides (forehead and chin in view).
    mesh_context: float = 1.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.detection_floor <= self.min_score <= 1.0:
            raise ValueError(f"need 0 <= detection_floor ({self.detection_floor}) <= min_score "
                             f"({self.min_score}) <= 1")
        if self.model_selection not in (0, 1):
            raise ValueError(f"model_selection must be 0 or 1, got {self.model_selection}")
        if not 1 <= self.max_faces <= 1024:
            raise ValueError(f"max_faces must be within [1, 1024], got {self.max_faces}")


@dataclass
class QualityConfig:
    min_face_px: int = 32
    min_sharpness: float = 8.0
    min_brightness: float = 20.0
    max_brightness: float = 235.0
    min_contrast: float = 8.0
    # Hashes of aligned faces are alike (same template), and with 32 of 64 bits set distances are
    # even: 2 catches re-encodes, resizes and exposure changes (measured 0-2) while distinct
    # procedural identities already collide at 4 (7 pairs in 600 faces). See docs/curation.md.
    near_duplicate_hamming: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.near_duplicate_hamming <= 64:
            raise ValueError(f"near_duplicate_hamming must be within [0, 64], got {self.near_duplicate_hamming}")
        if self.min_brightness > self.max_brightness:
            raise ValueError(f"min_brightness ({self.min_brightness}) > max_brightness ({self.max_brightness})")


@dataclass
class SplitConfig:
    val: float = 0.1
    test: float = 0.1
    salt: str = "paco-fr"
    # The validation suite checks split proportions only with at least this many split units
    # (identities, or source images when the identity is unknown): fewer cannot be judged.
    check_min_units: int = 50

    def __post_init__(self) -> None:
        if self.val < 0 or self.test < 0 or self.val + self.test >= 1.0:
            raise ValueError(f"split fractions must be >= 0 and leave room for train (val={self.val}, test={self.test})")


@dataclass
class CurationConfig:
    source: str = "builtin"
    crop_size: int = 112
    # < 1 shrinks the ArcFace template about the crop centre so hair, ears and the face boundary
    # (all used by the structured masks) stay inside the crop.
    template_zoom: float = 0.8
    max_image_pixels: int = 64_000_000
    max_file_bytes: int = 100_000_000
    # Images whose shorter side is smaller are rejected (`too_small_image`) before detection.
    min_image_side: int = 32
    # Faces per tar shard (a shard may hold a few more so that one image's faces share a shard).
    shard_size: int = 1000
    # false: ignore .gt.json / .pts landmarks and run MediaPipe on every image (benchmarks,
    # checking the detector against ground truth). Sidecar metadata (synthetic, identity) is kept.
    use_ground_truth: bool = True
    preview_faces: int = 64
    builtin: BuiltinSourceConfig = field(default_factory=BuiltinSourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.crop_size < 16:
            raise ValueError(f"crop_size must be >= 16, got {self.crop_size}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.max_image_pixels < 1 or self.max_file_bytes < 1:
            raise ValueError("max_image_pixels and max_file_bytes must be positive")
