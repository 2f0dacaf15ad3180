"""Preview images of the generator: a grid of faces, and faces beside their coloured label maps.

    python -m paco_fr.data.synthetic.preview docs/img   # writes synthetic_grid.png, synthetic_labels.png
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from paco_fr.io import atomic_path

from .api import SyntheticFace, generate_faces

try:
    from paco_fr.masks.regions_def import REGION_COLOURS as _COLOURS
except ImportError:  # pragma: no cover
    _COLOURS = ((0, 0, 0), (140, 90, 40), (250, 200, 160), (200, 0, 200), (120, 0, 255),
                (0, 120, 255), (0, 220, 220), (0, 200, 0), (230, 20, 40))
REGION_PALETTE = np.array(_COLOURS, dtype=np.uint8)

_KP_COLOURS = ((255, 40, 40), (40, 255, 40), (255, 255, 40), (40, 160, 255), (255, 40, 255))


def colour_labels(label_map: np.ndarray) -> np.ndarray:
    """(S, S) labels -> (S, S, 3) uint8 RGB with the project's region colours."""
    return REGION_PALETTE[label_map]


def draw_points(img: Image.Image, face: SyntheticFace, landmarks: bool = True) -> Image.Image:
    d = ImageDraw.Draw(img)
    if landmarks:
        for x, y in face.landmarks68:
            d.point((float(x), float(y)), fill=(255, 255, 255))
    for (x, y), c in zip(face.keypoints5, _KP_COLOURS):
        d.ellipse([x - 2, y - 2, x + 2, y + 2], outline=c)
    return img


def grid(faces: Sequence[SyntheticFace], cols: int) -> np.ndarray:
    s = faces[0].image.shape[0]
    rows = (len(faces) + cols - 1) // cols
    out = np.zeros((rows * s, cols * s, 3), np.uint8)
    for i, f in enumerate(faces):
        r, c = divmod(i, cols)
        out[r * s:(r + 1) * s, c * s:(c + 1) * s] = f.image
    return out


def label_sheet(faces: Sequence[SyntheticFace], cols: int = 3) -> np.ndarray:
    """Pairs of (face with keypoints and landmarks, coloured label map), `cols` pairs per row."""
    tiles = []
    for f in faces:
        face_img = draw_points(Image.fromarray(f.image.copy()), f)
        lab_img = draw_points(Image.fromarray(colour_labels(f.label_map)), f, landmarks=False)
        tiles.append(np.concatenate([np.asarray(face_img), np.asarray(lab_img)], axis=1))
    s = faces[0].image.shape[0]
    rows = (len(tiles) + cols - 1) // cols
    out = np.full((rows * s, cols * 2 * s + (cols - 1) * 4, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        x0 = c * (2 * s + 4)
        out[r * s:(r + 1) * s, x0:x0 + 2 * s] = t
    return out


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=True)
        os.chmod(tmp, 0o644)  # the temporary file is private; a preview is for everyone
    return Path(path)


def write_previews(out_dir: str | Path, seed: int = 0, grid_size: int = 128, label_size: int = 160) -> list[Path]:
    """6 x 6 faces, and 12 faces beside their label maps (keypoints as circles: red = left eye,
    green = right eye, yellow = nose tip, blue / magenta = left / right mouth corner; white dots =
    the 68 landmarks)."""
    out_dir = Path(out_dir)
    faces = list(generate_faces(36, seed=seed, size=grid_size, n_identities=30))
    labelled = list(generate_faces(12, seed=seed, size=label_size, n_identities=30))
    return [save_png(out_dir / "synthetic_grid.png", grid(faces, 6)),
            save_png(out_dir / "synthetic_labels.png", label_sheet(labelled, 3))]


if __name__ == "__main__":
    for p in write_previews(sys.argv[1] if len(sys.argv) > 1 else "docs/img"):
        print(p)
