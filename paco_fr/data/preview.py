"""`preview.png`: a grid of accepted crops with their 5 keypoints drawn, read back from the shards.

Real photos come first, then synthetic faces, each group in manifest order. A synthetic face has
an orange frame and an "S" tag, a real photo a green frame, so that nobody mistakes one for the
other; the legend under the grid says so.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from paco_fr.data.shards import iter_samples
from paco_fr.io import atomic_path

KEYPOINT_COLOURS = ((0, 120, 255), (0, 220, 220), (0, 200, 0), (230, 20, 40), (200, 0, 200))
REAL_FRAME = (40, 170, 60)
SYNTHETIC_FRAME = (245, 140, 20)
_LEGEND_HEIGHT = 18


def choose_faces(manifest: pd.DataFrame, limit: int) -> pd.DataFrame:
    real = manifest[~manifest["synthetic"].astype(bool)]
    synthetic = manifest[manifest["synthetic"].astype(bool)]
    return pd.concat([real, synthetic]).head(limit)


def write_preview(corpus_dir: str | os.PathLike[str], manifest: pd.DataFrame, out_path: str | os.PathLike[str],
                  *, limit: int = 64, cell: int = 112) -> Path:
    corpus_dir = Path(corpus_dir)
    chosen = choose_faces(manifest, limit)
    wanted = {row.face_id: bool(row.synthetic) for row in chosen.itertuples()}
    crops: dict[str, Image.Image] = {}
    for shard in sorted(set(chosen["shard"])):
        remaining = {fid for fid in wanted if fid not in crops}
        for key, sample in iter_samples(corpus_dir / shard):
            if key in remaining:
                crops[key] = _draw_face(sample, cell, synthetic=wanted[key])
                remaining.discard(key)
                if not remaining:
                    break
    order = [fid for fid in chosen["face_id"] if fid in crops]
    columns = max(1, min(8, len(order)))
    rows = max(1, math.ceil(len(order) / columns))
    grid = Image.new("RGB", (columns * cell, rows * cell + _LEGEND_HEIGHT), (255, 255, 255))
    for i, fid in enumerate(order):
        grid.paste(crops[fid], ((i % columns) * cell, (i // columns) * cell))
    n_synthetic = sum(wanted[f] for f in order)
    draw = ImageDraw.Draw(grid)
    legend = (f"{len(order)} faces: {len(order) - n_synthetic} real (green), "
              f"{n_synthetic} synthetic (orange, S)" if order else "no accepted faces")
    draw.text((4, rows * cell + 3), legend, fill=(0, 0, 0))
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        grid.save(tmp, format="PNG", compress_level=1)  # a picture to look at: speed over size
    return out_path


def _draw_face(sample: dict[str, bytes], cell: int, *, synthetic: bool) -> Image.Image:
    crop = Image.open(io.BytesIO(sample["png"])).convert("RGB")
    meta = json.loads(sample["json"])
    scale = cell / crop.width
    crop = crop.resize((cell, cell), Image.Resampling.BILINEAR) if crop.width != cell else crop
    draw = ImageDraw.Draw(crop)
    radius = max(1.5, cell / 56)
    for (x, y), colour in zip(meta["keypoints5"], KEYPOINT_COLOURS):
        x, y = x * scale, y * scale
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    frame = SYNTHETIC_FRAME if synthetic else REAL_FRAME
    draw.rectangle((0, 0, cell - 1, cell - 1), outline=frame, width=2)
    if synthetic:
        draw.rectangle((2, 2, 12, 13), fill=SYNTHETIC_FRAME)
        draw.text((4, 2), "S", fill=(0, 0, 0))
    return crop
