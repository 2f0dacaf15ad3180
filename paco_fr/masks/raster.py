"""Polygon rasterisation for region maps: filled at supersampled resolution (an exact scanline fill
of sample-point centres), kept where a pixel is at least half covered, painted in a fixed priority order.

Coordinates are continuous crop pixels: pixel (i, j) covers [j, j+1) x [i, i+1), so its centre is at
(j + 0.5, i + 0.5) (MediaPipe's normalised landmarks times the crop size follow this convention).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import cv2
import numpy as np

from paco_fr.masks.regions_def import REGION_INDEX

# Later entries overwrite earlier ones: small facial parts win over the skin they sit on, and the face
# oval wins over the person mask it cuts out of head_other.
PAINT_ORDER: tuple[str, ...] = ("head_other", "skin", "nose", "mouth", "left_brow", "right_brow",
                                "left_eye", "right_eye")

def polygon_coverage(polygon: np.ndarray, size: int, supersample: int = 4) -> np.ndarray:
    """Fraction of each pixel of a (size, size) grid covered by the polygon, counted on a
    supersample x supersample grid of sample points per pixel. (size, size) float32."""
    polygon = np.asarray(polygon, dtype=np.float64)
    if polygon.ndim != 2 or polygon.shape[1] != 2:
        raise ValueError(f"a polygon is an (K, 2) array of points, got shape {polygon.shape}")
    coverage = np.zeros((size, size), dtype=np.float32)
    if len(polygon) < 3 or not np.isfinite(polygon).all():
        return coverage
    # Only the pixels under the polygon's bounding box are sampled.
    (x_min, y_min), (x_max, y_max) = polygon.min(0), polygon.max(0)
    col0, row0 = max(0, int(np.floor(x_min))), max(0, int(np.floor(y_min)))
    col1, row1 = min(size, int(np.ceil(x_max)) + 1), min(size, int(np.ceil(y_max)) + 1)
    if col1 <= col0 or row1 <= row0:
        return coverage
    local = (polygon - [col0, row0]) * supersample
    height, width = row1 - row0, col1 - col0
    inside = _scanline_fill(local, height * supersample, width * supersample).view(np.uint8)
    counts = inside.reshape(height, supersample, width * supersample).sum(axis=1, dtype=np.uint16)
    counts = counts.reshape(height, width, supersample).sum(axis=2, dtype=np.uint16)
    coverage[row0:row1, col0:col1] = counts / np.float32(supersample * supersample)
    return coverage


def _scanline_fill(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sample points (j + 0.5, i + 0.5) inside the polygon (even-odd rule, half-open edges so that a
    point on a shared edge is counted once). Exact, and vectorised over rows and edges. (height, width) bool."""
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    centres = np.arange(height) + 0.5                                      # (H,)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    crosses = (centres[:, None] >= lo) & (centres[:, None] < hi)           # (H, E)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (centres[:, None] - y0) / (y1 - y0)
    xs = np.where(crosses, x0 + t * (x1 - x0), np.inf)
    xs.sort(axis=1)                                                        # crossings left to right
    if xs.shape[1] % 2:
        xs = np.concatenate([xs, np.full((height, 1), np.inf)], axis=1)
    starts, ends = xs[:, 0::2], xs[:, 1::2]
    valid = np.isfinite(starts) & np.isfinite(ends)
    rows = np.broadcast_to(np.arange(height)[:, None], starts.shape)[valid]
    # columns whose centre lies in [start, end)
    first = np.clip(np.ceil(starts[valid] - 0.5), 0, width).astype(np.int64)
    stop = np.clip(np.ceil(ends[valid] - 0.5), 0, width).astype(np.int64)
    edges = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(edges, (rows, first), 1)
    np.add.at(edges, (rows, stop), -1)
    return np.cumsum(edges, axis=1)[:, :width] > 0


def polygon_mask(polygon: np.ndarray, size: int, supersample: int = 4) -> np.ndarray:
    """Pixels at least half covered by the polygon. (size, size) bool."""
    return polygon_coverage(polygon, size, supersample) >= 0.5


def paint_regions(masks: Mapping[str, np.ndarray], size: int) -> np.ndarray:
    """Compose per-class boolean masks into one label map by PAINT_ORDER. (size, size) uint8; pixels in
    no mask are background."""
    unknown = set(masks) - set(PAINT_ORDER)
    if unknown:
        raise ValueError(f"cannot paint classes {sorted(unknown)}: not in {PAINT_ORDER}")
    labels = np.full((size, size), REGION_INDEX["background"], dtype=np.uint8)
    for name in PAINT_ORDER:
        if name in masks:
            labels[np.asarray(masks[name], dtype=bool)] = REGION_INDEX[name]
    return labels


def rasterise(polygons: Mapping[str, np.ndarray], size: int, *, person: np.ndarray | None = None,
              supersample: int = 4) -> np.ndarray:
    """Label map from region polygons (keys: 'face_oval' and any of the feature classes) and an
    optional person mask; head_other = person minus the face oval. (size, size) uint8."""
    masks: dict[str, np.ndarray] = {}
    oval = polygon_mask(polygons["face_oval"], size, supersample)
    if person is not None:
        if person.shape != (size, size):
            raise ValueError(f"person mask shape {person.shape} does not match the crop size {size}")
        masks["head_other"] = person.astype(bool) & ~oval
    masks["skin"] = oval
    for name, polygon in polygons.items():
        if name != "face_oval":
            masks[name] = polygon_mask(polygon, size, supersample)
    return paint_regions(masks, size)


def edges_to_loop(edges: Iterable[tuple[int, int]]) -> list[int] | None:
    """Order the vertices of a closed contour given as undirected edges. None when the edges are not one
    simple cycle (then callers use the convex hull)."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    if not neighbours or any(len(v) != 2 for v in neighbours.values()):
        return None
    start = min(neighbours)
    loop, previous, current = [start], None, start
    while True:
        a, b = neighbours[current]
        nxt = b if a == previous else a
        if nxt == start:
            break
        loop.append(nxt)
        previous, current = current, nxt
        if len(loop) > len(neighbours):
            return None
    return loop if len(loop) == len(neighbours) else None


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of (K, 2) points, counter-clockwise. (H, 2) float64."""
    hull = cv2.convexHull(np.asarray(points, dtype=np.float32).reshape(-1, 1, 2))
    return hull.reshape(-1, 2).astype(np.float64)


def polygon_area(polygon: np.ndarray) -> float:
    x, y = np.asarray(polygon, dtype=np.float64).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
