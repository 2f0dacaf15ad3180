"""Loading one input: everything about it that does not depend on any other input.

Reading, hashing, decoding and parsing sidecars are independent per input, so curation runs them
ahead of time on worker threads (file I/O, zlib and the image codecs release the GIL). Failures are
recorded per step rather than raised, so that the main thread can raise them in exactly the order
a plain sequential pass would, after its own (order-dependent) duplicate checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from paco_fr.data.config import CurationConfig
from paco_fr.data.decode import DecodedImage, decode_image, read_image_bytes
from paco_fr.data.landmarks import GroundTruthLandmarks, Ibug68Landmarks
from paco_fr.data.reasons import Reason, Rejection
from paco_fr.data.sources import SourceItem
from paco_fr.io import sha256_bytes

N_REGIONS = 9  # len(paco_fr.masks.REGIONS); labels at or above it are not region classes


@dataclass
class LoadedInput:
    """One input prepared ahead of time; each step's failure is kept for the main thread."""

    file_sha: str | None = None
    image: DecodedImage | None = None
    truth: GroundTruthLandmarks | None = None
    pts: Ibug68Landmarks | None = None
    labels: np.ndarray | None = None
    read_error: Rejection | None = None
    decode_error: Rejection | None = None
    annotation_error: Rejection | None = None


def load_input(item: SourceItem, cfg: CurationConfig) -> LoadedInput:
    """Read, hash and decode one input and parse its sidecars; failures are recorded, not raised."""
    loaded = LoadedInput()
    if item.rejection is not None:
        return loaded
    try:
        data = read_image_bytes(item.path, cfg.max_file_bytes)
    except Rejection as rej:
        loaded.read_error = rej
        return loaded
    loaded.file_sha = sha256_bytes(data)
    try:
        loaded.image = decode_image(data, max_image_pixels=cfg.max_image_pixels, min_image_side=cfg.min_image_side)
    except Rejection as rej:
        loaded.decode_error = rej
        return loaded
    try:
        if "gt" in item.sidecars:
            loaded.truth = GroundTruthLandmarks.from_sidecar(item.sidecars["gt"])
        if "labels" in item.sidecars:
            loaded.labels = read_label_map(item.sidecars["labels"], loaded.image)
        if cfg.use_ground_truth and loaded.truth is None and "pts" in item.sidecars:
            loaded.pts = Ibug68Landmarks.from_pts(item.sidecars["pts"])
    except Rejection as rej:
        loaded.annotation_error = rej
    return loaded


def read_label_map(path: str | os.PathLike[str], image: DecodedImage) -> np.ndarray:
    """A region label map sidecar: mode L or P class indices, the image's size, labels < 9."""
    path = Path(path)
    try:
        with Image.open(path) as label_image:
            if label_image.mode not in ("L", "P"):
                raise Rejection(Reason.BAD_ANNOTATION,
                                f"{path.name}: label map mode {label_image.mode}, expected L or P (class indices)")
            labels = np.array(label_image, dtype=np.uint8)
    except Rejection:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejection(Reason.BAD_ANNOTATION, f"{path.name}: unreadable label map ({exc})") from exc
    if labels.shape != (image.height, image.width):
        raise Rejection(Reason.BAD_ANNOTATION,
                        f"{path.name}: label map is {labels.shape[1]}x{labels.shape[0]}, image is {image.width}x{image.height}")
    if labels.max(initial=0) >= N_REGIONS:
        raise Rejection(Reason.BAD_ANNOTATION, f"{path.name}: label {int(labels.max())} is not a region class (0..{N_REGIONS - 1})")
    return labels
