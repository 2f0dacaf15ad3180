"""Projection, supersampled drawing, shading and compositing of a `Scene` into a `SyntheticFace`.

Pixel convention: the centre of pixel (column i, row j) is at (x, y) = (i, j); the image spans
[-0.5, S - 0.5] in both axes. Shapes are drawn on a canvas SUPERSAMPLE times larger and box-filtered
down (soft edges); the label of a pixel is the label drawn at its centre sample (exact: SUPERSAMPLE is
odd, so the centre sample sits exactly on the pixel centre).

Pose: every scene point (x, y, extra depth) gets a depth z = surface of a head ellipsoid + extra;
yaw is an orthographic rotation about the vertical axis (x' = x cos + z sin), so inner features
(deep) move further than the outline (shallow) and the far half of the face compresses; roll then
rotates the whole drawing about the eye-line centre.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .geometry import (MAT_CLOTH, MAT_GLASSES, MAT_HAIR, MAT_HAND, MAT_LIPS, MAT_SKIN, Scene, Shape,
                       light_in_face_frame)
from .params import FaceParams

SUPERSAMPLE = 3
FACE_UNIT = 0.29          # face half-width / image size at scale 1
EYE_LINE_Y = 0.44         # eye-line height / image size before the centre offset
# head ellipsoid used for depth under yaw (face units): semi-axes x, y, z and vertical centre
_DEPTH_AX, _DEPTH_AY, _DEPTH_AZ, _DEPTH_CY = 1.12, 1.62, 0.95, 0.05
# head ellipsoid used for shading normals
_SHADE_AX, _SHADE_AY, _SHADE_CY = 1.1, 1.6, -0.05

_ALPHA_LUT = [0] + [255] * 255
# per-material lookups, indexed by material id (code >> 4)
_IS_BODY = np.zeros(16, bool)
_IS_BODY[[MAT_CLOTH, MAT_HAND]] = True
_GLOSS = np.zeros(16, np.float64)
_GLOSS[MAT_SKIN], _GLOSS[MAT_LIPS] = 0.1 * 255.0, 0.22 * 255.0


class Projector:
    """Face units (x, y, extra depth) -> output pixel coordinates for one FaceParams and size."""

    def __init__(self, p: FaceParams, size: int):
        self.size = size
        self.unit = p.scale * FACE_UNIT * size                     # pixels per face unit
        self.cx = (0.5 + p.centre_dx) * size - 0.5
        self.cy = (EYE_LINE_Y + p.centre_dy) * size - 0.5
        self.sin_yaw = float(p.yaw)
        self.cos_yaw = math.sqrt(max(1.0 - p.yaw * p.yaw, 0.0))
        r = math.radians(p.roll_deg)
        self.cos_roll, self.sin_roll = math.cos(r), math.sin(r)

    @staticmethod
    def surface_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        q = 1.0 - (x / _DEPTH_AX) ** 2 - ((y - _DEPTH_CY) / _DEPTH_AY) ** 2
        return _DEPTH_AZ * np.sqrt(np.clip(q, 0.0, None))

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) face units -> (N, 2) pixels."""
        x, y, extra = pts[:, 0], pts[:, 1], pts[:, 2]
        z = self.surface_depth(x, y) + extra
        xp = x * self.cos_yaw + z * self.sin_yaw
        X = self.cos_roll * xp - self.sin_roll * y
        Y = self.sin_roll * xp + self.cos_roll * y
        return np.stack([self.cx + self.unit * X, self.cy + self.unit * Y], axis=1)

    def unrolled_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Projected face-frame coordinates (x', y) of every output pixel centre, (S, S) each."""
        gx, gy = _pixel_grid(self.size)
        X = (gx - self.cx) / self.unit
        Y = (gy - self.cy) / self.unit
        return self.cos_roll * X + self.sin_roll * Y, -self.sin_roll * X + self.cos_roll * Y


@lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(size, dtype=np.float64)
    gx, gy = np.meshgrid(g, g)
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


@lru_cache(maxsize=1)
def _strand_noise() -> np.ndarray:
    """A fixed 1-D noise loop for hair strands (deterministic, shared by all faces)."""
    rng = np.random.default_rng(20240607)
    n = rng.standard_normal(1024)
    smooth = np.convolve(np.r_[n[-3:], n, n[:3]], np.ones(3) / 3, mode="valid")[2:-2]
    return (smooth / smooth.std()).astype(np.float64)


def _project_all(shapes: list[Shape], proj: Projector, scale: float, offset: float) -> list[np.ndarray]:
    """Project every shape's points in one vectorised call (per-shape calls dominate otherwise)."""
    if not shapes:
        return []
    lengths = [len(sh.pts) for sh in shapes]
    xy = proj(np.concatenate([sh.pts for sh in shapes])) * scale + offset
    return np.split(xy, np.cumsum(lengths)[:-1])


def draw_scene(scene: Scene, proj: Projector) -> tuple[Image.Image, Image.Image]:
    """Supersampled albedo (RGB, premultiplied over black) and code canvases."""
    k = SUPERSAMPLE
    big = proj.size * k
    rgb = Image.new("RGB", (big, big), (0, 0, 0))
    codes = Image.new("L", (big, big), 0)
    d_rgb, d_rgba, d_code = ImageDraw.Draw(rgb), ImageDraw.Draw(rgb, "RGBA"), ImageDraw.Draw(codes)
    for sh, xy in zip(scene.shapes, _project_all(scene.shapes, proj, k, (k - 1) / 2)):
        d_colour = d_rgba if sh.rgb is not None and len(sh.rgb) == 4 else d_rgb
        if sh.width == 0:
            if len(xy) < 3:
                continue
            flat = xy.ravel().tolist()
            if sh.rgb is not None:
                d_colour.polygon(flat, fill=sh.rgb)
            if sh.code is not None:
                d_code.polygon(flat, fill=sh.code)
        else:
            if len(xy) < 2:
                continue
            if sh.closed:
                xy = np.concatenate([xy, xy[:2]])
            w = max(1, int(round(sh.width * proj.unit * k)))
            flat = xy.ravel().tolist()
            if sh.rgb is not None:
                d_colour.line(flat, fill=sh.rgb, width=w, joint="curve")
            if sh.code is not None:
                d_code.line(flat, fill=sh.code, width=w, joint="curve")
    return rgb, codes


DETAIL_SCALE = 2  # the shading layer is smooth: draw and blur it at half resolution


def draw_details(scene: Scene, proj: Projector) -> np.ndarray:
    """The soft shading layer at output size, as a multiplier (S, S, 3) float64 around 1."""
    f = DETAIL_SCALE
    small = (proj.size + f - 1) // f
    img = Image.new("RGB", (small, small), (128, 128, 128))
    d = ImageDraw.Draw(img)
    for sh, xy in zip(scene.details, _project_all(scene.details, proj, 1.0 / f, (1.0 / f - 1) / 2)):
        if sh.width == 0:
            d.polygon(xy.ravel().tolist(), fill=sh.rgb)
        else:
            d.line(xy.ravel().tolist(), fill=sh.rgb, width=max(1, int(round(sh.width * proj.unit / f))), joint="curve")
    img = img.filter(ImageFilter.GaussianBlur(max(0.5, 0.045 * proj.unit / f)))
    img = img.resize((small * f, small * f), Image.BILINEAR).crop((0, 0, proj.size, proj.size))
    return np.asarray(img, dtype=np.float64) * (1.0 / 128.0)


def render_background(p: FaceParams, size: int) -> np.ndarray:
    """(S, S, 3) float64 in 0..255."""
    bg = p.background
    c1 = np.asarray(bg.rgb1, np.float64)
    c2 = np.asarray(bg.rgb2, np.float64)
    rng = np.random.default_rng(bg.texture_seed)
    if bg.kind == "flat":
        return np.broadcast_to(c1, (size, size, 3))  # read-only view: callers never write into it
    if bg.kind == "gradient":
        gx, gy = _pixel_grid(size)
        a = math.radians(bg.angle_deg)
        t = (gx * math.cos(a) + gy * math.sin(a)) / size
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        return c1 + t[..., None] * (c2 - c1)
    if bg.kind == "noise":
        small = rng.uniform(0, 255, (6, 6)).astype(np.uint8)
        field = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), np.float64) / 255.0
        fine = rng.uniform(0, 255, (size // 6 + 1, size // 6 + 1)).astype(np.uint8)
        fine = np.asarray(Image.fromarray(fine).resize((size, size), Image.BILINEAR), np.float64) / 255.0
        t = np.clip(0.8 * field + 0.2 * fine, 0, 1)
        return c1 + t[..., None] * (c2 - c1)
    # "shapes": a wall with a few soft out-of-focus objects
    img = Image.new("RGB", (size, size), tuple(int(c) for c in c1))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.1, 0.5, 2) * size
        col = tuple(int(v) for v in np.clip(c2 + rng.normal(0, 25, 3), 0, 255))
        (d.ellipse if rng.uniform() < 0.5 else d.rectangle)([x0, y0, x0 + w, y0 + h], fill=col)
    soft = ImageFilter.BoxBlur(0.012 * size)  # two box passes: out of focus, at half a Gaussian's cost
    return np.asarray(img.filter(soft).filter(soft), np.float64)


def shade_and_compose(p: FaceParams, proj: Projector, albedo: Image.Image, codes_big: Image.Image,
                      details: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Light the foreground, put it over the background, add camera blur and noise.

    Returns (image (S, S, 3) uint8, centre-sampled codes (S, S) uint8). Everything is float64: sums and
    transcendental functions differ in their last bits between CPUs (SIMD width; SVML on AVX-512), and
    at float32 precision that moves a uint8 pixel across a rounding boundary about once in 10^4 values,
    at float64 about once in 10^12: the builtin folder's bytes are then the same on every machine.
    """
    k, size = SUPERSAMPLE, proj.size
    fg = np.asarray(albedo.reduce(k), dtype=np.float64)                        # premultiplied
    alpha = np.asarray(codes_big.point(_ALPHA_LUT).reduce(k), dtype=np.float64) * (1.0 / 255.0)
    codes = np.ascontiguousarray(np.asarray(codes_big)[k // 2::k, k // 2::k])
    material = codes >> 4

    xp, y = proj.unrolled_grid()
    lx, ly, lz = (float(v) for v in light_in_face_frame(p))
    # Lambert on the head ellipsoid, with a little wrap so the terminator is soft
    nx = xp * (1.0 / _SHADE_AX)
    ny = (y - _SHADE_CY) * (1.0 / _SHADE_AY)
    r2 = nx * nx + ny * ny
    nz = np.sqrt(np.maximum(1.0 - r2, 0.0))
    inv_norm = 1.0 / (np.sqrt(r2 + nz * nz) + 1e-6)
    nx *= inv_norm
    ny *= inv_norm
    nz *= inv_norm
    ndotl = nx * lx + ny * ly + nz * lz
    # normalised so that a surface facing the light straight on keeps its albedo x exposure
    gain0 = 1.0 * p.exposure / (p.ambient + p.light_intensity)
    shade = (p.ambient + p.light_intensity / 1.3 * np.maximum(ndotl + 0.3, 0.0)) * gain0
    is_body = _IS_BODY[material]
    if is_body.any():  # clothes and hands: a broad surface facing the camera
        body = (p.ambient + p.light_intensity * (0.55 + 0.35 * lz)) + (p.light_intensity * 0.12 * lx / 3.0) * np.clip(xp, -3.0, 3.0)
        shade = np.where(is_body, body * gain0, shade)

    is_hair = material == MAT_HAIR
    if is_hair.any():  # strands: streaks radiating from the crown
        theta = np.arctan2(xp[is_hair], y[is_hair] + 1.1)
        noise = _strand_noise()
        off = p.render_seed % 1024
        idx = (theta * (600.0 / math.pi) + off).astype(np.int64) % 1024
        idx2 = (theta * (90.0 / math.pi) + off * 3).astype(np.int64) % 1024
        shade[is_hair] *= 1.0 + 0.13 * noise[idx] + 0.08 * noise[idx2]

    # highlights on skin and lips (Blinn-Phong on the same ellipsoid, exponent 24 by squaring)
    hx, hy, hz = lx, ly, lz + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    ndoth = np.maximum(nx * (hx / hn) + ny * (hy / hn) + nz * (hz / hn), 0.0)
    n8 = ndoth * ndoth
    n8 *= n8
    n8 *= n8
    spec = n8 * n8
    spec *= n8
    spec *= _GLOSS[material]
    spec *= alpha * p.light_intensity

    flat = (material == MAT_HAND) | (material == MAT_CLOTH) | (material == MAT_GLASSES)
    if flat.any():
        details[flat] = 1.0
    light_rgb = np.asarray(p.light_rgb, np.float64)
    lit = fg * details
    lit *= shade[..., None] * light_rgb
    lit += spec[..., None]
    # + 0.5 rides along here so that the final cast to uint8 rounds instead of truncating
    cover = (1.0 - alpha)[..., None] * (light_rgb * (0.85 + 0.15 * p.exposure))
    lit += render_background(p, size) * cover + 0.5

    blur = p.blur_sigma * size / 192.0
    if blur > 0.15:
        # one box pass of the same variance as a Gaussian of sigma `blur` (a third of the cost)
        radius = (math.sqrt(12.0 * blur * blur + 1.0) - 1.0) / 2.0
        img8 = np.clip(lit, 0.0, 255.0).astype(np.uint8)
        lit = np.asarray(Image.fromarray(img8).filter(ImageFilter.BoxBlur(radius)), dtype=np.float64)
        lit += 0.5
    if p.noise_sigma > 0:
        lit += _sensor_noise(size, p.render_seed) * p.noise_sigma
    img = np.clip(lit, 0.0, 255.0, out=lit).astype(np.uint8)
    return img, codes


_BANKED_MAX_SIZE = 512  # above this a bank would cost > 12 MB per size: draw fresh noise instead


@lru_cache(maxsize=3)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed (2S, 2S, 3) float64 standard-normal field; each face reads a window of it."""
    return np.random.default_rng(7_000_000 + size).standard_normal((2 * size, 2 * size, 3), dtype=np.float32).astype(np.float64)


def _sensor_noise(size: int, seed: int) -> np.ndarray:
    """(S, S, 3) unit Gaussian noise: a window of the bank at a seed-chosen offset, flipped by the seed."""
    if size > _BANKED_MAX_SIZE:
        return np.random.default_rng(seed).standard_normal((size, size, 3), dtype=np.float32).astype(np.float64)
    bank = _noise_bank(size)
    oy, ox = (seed // 7) % size, (seed // (7 * size)) % size
    win = bank[oy:oy + size, ox:ox + size]
    if seed % 2:
        win = win[::-1]
    if (seed // 2) % 2:
        win = win[:, ::-1]
    return win
