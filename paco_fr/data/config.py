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

    def __post_init__(self) -> None:
        if self.min_brightness > self.max_brightness:
            raise ValueError(f"min_brightness ({self.min_brightness}) > max_brightness ({self.max_brightness})")


@dataclass
class NearDuplicateConfig:
    """Two 256-bit DCT perceptual hashes (imagehash.phash, hash_size 16) per face; a face is a near
    duplicate of an earlier accepted face when either is within its Hamming distance (see
    docs/curation.md for the measurements behind the defaults). -1 switches a check off."""

    # Centre of the aligned crop: undoes crops and resizes through the alignment.
    face_bits: int = 16
    # The whole decoded image (other images only): re-encodes, colour modes, resizes, exposure,
    # whatever the landmarks did.
    image_bits: int = 16

    def __post_init__(self) -> None:
        for name in ("face_bits", "image_bits"):
            if not -1 <= getattr(self, name) <= 256:
                raise ValueError(f"near_duplicate.{name} must be within [-1, 256], got {getattr(self, name)}")


@dataclass
class SplitConfig:
    """Held-out faces of the pre-training corpus, by whole split units (an identity when known, else
    a source image), chosen in salted-hash order: min(val_faces, round(val * faces)) faces for val
    (possibly a few more: the last unit is kept whole), likewise for test. Evaluation benchmarks are
    separate data, so the default holds out a small val split and no test split."""

    val_faces: int = 1000
    val: float = 0.1
    test_faces: int = 0
    test: float = 0.0
    salt: str = "paco-fr"

    def __post_init__(self) -> None:
        if self.val < 0 or self.test < 0 or self.val + self.test >= 1.0:
            raise ValueError(f"split fractions must be >= 0 and leave room for train (val={self.val}, test={self.test})")
        if self.val_faces < 0 or self.test_faces < 0:
            raise ValueError("split.val_faces and split.test_faces must be >= 0")


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
    # Faces per tar shard of the corpus.
    shard_size: int = 1000
    # false: ignore .gt.json / .pts landmarks and run MediaPipe on every image (benchmarks,
    # checking the detector against ground truth). Sidecar metadata (synthetic, identity) is kept.
    use_ground_truth: bool = True
    preview_faces: int = 64
    # Machine-level slices of the inputs (a stable hash of the path relative to the source): one
    # `paco-fr curate-part` per slice (dvc.yaml's foreach and Dagster's partitions iterate over the
    # list, so params.yaml writes it as [0, 1, ..., M-1]; a number M means the same). The corpus is
    # the same for any value.
    partitions: int | list[int] = 2
    # Inputs per chunk: the unit a worker process takes, writes atomically and a resumed run reuses.
    chunk_inputs: int = 128
    # Seed of the corpus's shard order (faces are shuffled across the whole source tree).
    order_seed: int = 0
    builtin: BuiltinSourceConfig = field(default_factory=BuiltinSourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    near_duplicate: NearDuplicateConfig = field(default_factory=NearDuplicateConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    @property
    def n_partitions(self) -> int:
        """M: how many slices the inputs are hashed into."""
        return len(self.partitions) if isinstance(self.partitions, list) else self.partitions

    def __post_init__(self) -> None:
        if self.crop_size < 16:
            raise ValueError(f"crop_size must be >= 16, got {self.crop_size}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if isinstance(self.partitions, list) and self.partitions != list(range(len(self.partitions))):
            raise ValueError(f"partitions must be [0, 1, ..., M-1] (or the number M), got {self.partitions}")
        if not 1 <= self.n_partitions <= 65536:
            raise ValueError(f"partitions must be within [1, 65536], got {self.partitions}")
        if self.chunk_inputs < 1:
            raise ValueError(f"chunk_inputs must be >= 1, got {self.chunk_inputs}")
        if self.max_image_pixels < 1 or self.max_file_bytes < 1:
            raise ValueError("max_image_pixels and max_file_bytes must be positive")
