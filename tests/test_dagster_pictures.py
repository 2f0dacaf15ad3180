"""Pictures in asset metadata: what `image_md` stores for the UI (dagster_project/metadata.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dagster_project.metadata import MAX_BYTES, image_md, pictures_root


def _write(path, width, height, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_a_png_that_fits_is_stored_as_written(tmp_path):
    picture = _write(tmp_path / "grid.png", 200, 100)
    value = image_md(picture, "grid", root=tmp_path, version="abc.dir")
    stored = pictures_root(tmp_path) / "abc" / "grid.png"
    assert stored.read_bytes() == picture.read_bytes()
    assert "grid: 200x100 px" in value.value and "/abc/grid.png" in value.value


def test_a_wide_or_large_picture_is_scaled_down_to_fit(tmp_path):
    picture = _write(tmp_path / "wide.png", 1200, 400)  # random pixels: ~1.4 MB as PNG
    value = image_md(picture, "wide", root=tmp_path, version="v1")
    stored = next((pictures_root(tmp_path) / "v1").iterdir())
    with Image.open(stored) as shown:
        assert shown.size[0] <= 900
    assert stored.stat().st_size <= MAX_BYTES
    assert "wide: 1200x400 px" in value.value  # the caption names the original's size
