"""Preview images: crops overlaid with region colours and the patch grid, and sampled masks."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from paco_fr.masks.regions_def import REGION_COLOURS, REGIONS

_COLOURS = np.array(REGION_COLOURS, dtype=np.float32)


def overlay(crop: np.ndarray, labels: np.ndarray, *, alpha: float = 0.5, patch_size: int | None = None,
            scale: int = 2) -> np.ndarray:
    """Crop blended with its region colours, upscaled by `scale`, with the patch grid drawn. (H*s, W*s, 3)."""
    blend = (1 - alpha) * crop.astype(np.float32) + alpha * _COLOURS[labels]
    tile = np.repeat(np.repeat(blend.clip(0, 255).astype(np.uint8), scale, 0), scale, 1)
    if patch_size:
        step = patch_size * scale
        tile[::step, :] = (tile[::step, :] * 0.4 + 255 * 0.6).astype(np.uint8)
        tile[:, ::step] = (tile[:, ::step] * 0.4 + 255 * 0.6).astype(np.uint8)
    return tile


def region_grid(crops: Sequence[np.ndarray], label_maps: Sequence[np.ndarray], captions: Sequence[str],
                *, patch_size: int, columns: int = 4, scale: int = 2):
    """A PIL image: one overlay tile per face with a caption, and a colour legend underneath."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    if not crops:
        return _legend_only(scale)
    tiles = [overlay(c, l, patch_size=patch_size, scale=scale) for c, l in zip(crops, label_maps)]
    th, tw = tiles[0].shape[:2]
    caption_h, pad = 14, 4
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    legend_h = 16 * (-(-len(REGIONS) // 3)) + 8
    width = columns * (tw + pad) + pad
    canvas = Image.new("RGB", (max(width, 3 * 120 + 2 * pad), rows * (th + caption_h + pad) + pad + legend_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        x = pad + (i % columns) * (tw + pad)
        y = pad + (i // columns) * (th + caption_h + pad)
        canvas.paste(Image.fromarray(tile), (x, y))
        draw.text((x, y + th + 1), caption[: tw // 6], fill=(0, 0, 0))
    _draw_legend(draw, pad, rows * (th + caption_h + pad) + pad)
    return canvas


def mask_grid(crops: Sequence[np.ndarray], masks_by_strategy: dict[str, np.ndarray], patch_size: int,
              *, label_maps: Sequence[np.ndarray] | None = None,
              captions_by_strategy: dict[str, Sequence[str]] | None = None, scale: int = 2):
    """A PIL image with one row per strategy: each face with its masked patches greyed out, under an
    optional first row of region overlays. masks_by_strategy[s]: (n_faces, N) bool, True = masked."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    size = crops[0].shape[0]
    side = size // patch_size
    tile = size * scale
    label_w, pad, caption_h = 84, 4, 12
    rows: list[tuple[str, list[np.ndarray], Sequence[str]]] = []
    if label_maps is not None:
        rows.append(("regions", [overlay(c, l, patch_size=patch_size, scale=scale) for c, l in zip(crops, label_maps)],
                     [""] * len(crops)))
    for strategy, masks in masks_by_strategy.items():
        tiles = []
        for crop, mask in zip(crops, masks):
            grid = np.asarray(mask, dtype=bool).reshape(side, side)
            pixel_mask = np.repeat(np.repeat(grid, patch_size, 0), patch_size, 1)
            shown = crop.astype(np.float32).copy()
            shown[pixel_mask] = 0.1 * shown[pixel_mask] + 0.9 * 128
            up = np.repeat(np.repeat(shown.astype(np.uint8), scale, 0), scale, 1)
            up[:: patch_size * scale, :] = 255
            up[:, :: patch_size * scale] = 255
            tiles.append(up)
        captions = (captions_by_strategy or {}).get(strategy, [""] * len(crops))
        rows.append((strategy, tiles, captions))
    row_h = tile + caption_h + pad
    canvas = Image.new("RGB", (label_w + len(crops) * (tile + pad) + pad, len(rows) * row_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, tiles, captions) in enumerate(rows):
        y = pad + r * row_h
        draw.text((4, y + tile // 2 - 6), name, fill=(0, 0, 0))
        for c, (image, caption) in enumerate(zip(tiles, captions)):
            x = label_w + pad + c * (tile + pad)
            canvas.paste(Image.fromarray(image), (x, y))
            draw.text((x, y + tile + 1), caption, fill=(0, 0, 0))
    return canvas


def _draw_legend(draw, x0: int, y0: int) -> None:
    for i, (name, colour) in enumerate(zip(REGIONS, REGION_COLOURS)):
        x = x0 + (i % 3) * 120
        y = y0 + 4 + (i // 3) * 16
        draw.rectangle([x, y, x + 10, y + 10], fill=tuple(colour), outline=(0, 0, 0))
        draw.text((x + 14, y), name, fill=(0, 0, 0))


def _legend_only(scale: int):
    from PIL import Image, ImageDraw  # noqa: PLC0415

    canvas = Image.new("RGB", (3 * 120 + 8, 16 * 3 + 16), "white")
    _draw_legend(ImageDraw.Draw(canvas), 4, 4)
    return canvas
