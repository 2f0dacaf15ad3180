"""The face as an ordered list of shapes in face units, plus its exact landmarks.

Nothing here touches pixels: `build_scene` turns `FaceParams` into a painter's-order list of filled
polygons and polylines (each with an albedo colour and a label code), a list of soft shading
shapes (shadows, highlights, blush) and the 68 landmarks, all as (N, 3) arrays of
(x, y, extra depth) in face units. `raster.py` projects and draws them.

Left/right are as seen in the image: `sign = -1` is the image-left feature (smaller x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .params import REGIONS, FaceParams

LABEL = {name: i for i, name in enumerate(REGIONS)}

# Materials decide texture and shading after rasterisation. A pixel's code is material * 16 + label.
MAT_SKIN, MAT_HAIR, MAT_CLOTH, MAT_EYE, MAT_LIPS, MAT_GLASSES, MAT_HAND = 1, 2, 3, 4, 5, 6, 7


def code(material: int, label: str) -> int:
    return material * 16 + LABEL[label]


@dataclass(slots=True)
class Shape:
    pts: np.ndarray                     # (N, 3): x, y, extra depth (face units)
    rgb: tuple | None                   # RGB or RGBA (alpha-blended), None = label only
    code: int | None = None             # material * 16 + label, None = colour only
    width: float = 0.0                  # 0: filled polygon; > 0: polyline of this width (face units)
    closed: bool = False                # polyline only


@dataclass
class Scene:
    shapes: list[Shape] = field(default_factory=list)
    details: list[Shape] = field(default_factory=list)   # shading layer: 128 = no change
    landmarks68: np.ndarray | None = None                # (68, 3) iBUG order
    eye_centres: np.ndarray | None = None                # (2, 2) image-left, image-right


# ----------------------------------------------------------------------------------------- curves

def catmull_rom(ctrl: np.ndarray, n: int = 8, closed: bool = False) -> np.ndarray:
    """Smooth curve through the control points (uniform Catmull-Rom spline).

    ctrl: (M, D); returns (M*n, D) when closed, else ((M-1)*n + 1, D), passing through every point.
    """
    p = np.asarray(ctrl, dtype=np.float64)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    # (segments, 4 control points, D) combined with the (n, 4) cubic basis -> (segments, n, D)
    window = np.stack([ext[:-3], ext[1:-2], ext[2:-1], ext[3:]], axis=1)
    out = np.einsum("tk,skd->std", _cr_basis(n), window).reshape(-1, p.shape[1])
    return out if closed else np.concatenate([out, p[-1:]])


@lru_cache(maxsize=32)
def _cr_basis(n: int) -> np.ndarray:
    t = np.linspace(0, 1, n, endpoint=False)
    t2, t3 = t * t, t * t * t
    return 0.5 * np.stack([-t + 2 * t2 - t3, 2 - 5 * t2 + 3 * t3, t + 4 * t2 - 3 * t3, -t2 + t3], axis=1)


@lru_cache(maxsize=32)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)


def resample(curve: np.ndarray, n: int) -> np.ndarray:
    """n points equally spaced by arc length along an open polyline (first and last kept)."""
    d = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(curve[:, :2], axis=0), axis=1))]
    s = np.linspace(0, d[-1], n)
    return np.stack([np.interp(s, d, curve[:, j]) for j in range(curve.shape[1])], axis=1)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28, angle_deg: float = 0.0,
            depth: float = 0.0) -> np.ndarray:
    cos_t, sin_t = _unit_circle(n)
    x, y = rx * cos_t, ry * sin_t
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    return _xyz(cx + ca * x - sa * y, cy + sa * x + ca * y, depth)


def capsule(a: np.ndarray, b: np.ndarray, r: float, n: int = 10, depth: float = 0.0) -> np.ndarray:
    """A stadium from point a to point b (2-vectors) with radius r, as a closed polygon."""
    d = b - a
    ang = math.atan2(d[1], d[0])
    t1 = np.linspace(ang - np.pi / 2, ang + np.pi / 2, n)
    t2 = t1 + np.pi
    pts = np.concatenate([b + r * np.stack([np.cos(t1), np.sin(t1)], 1),
                          a + r * np.stack([np.cos(t2), np.sin(t2)], 1)])
    return _xyz(pts[:, 0], pts[:, 1], depth)


def _xyz(x, y, depth=0.0) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], 3))
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = depth
    return out


def _mirror(pts: np.ndarray) -> np.ndarray:
    out = pts.copy()
    out[:, 0] *= -1
    return out


def _shade(rgb, f: float, add=(0, 0, 0)) -> tuple[int, int, int]:
    return tuple(int(min(max(round(c * f + a), 0), 255)) for c, a in zip(rgb, add))


# ------------------------------------------------------------------------------------ face parts

def face_contour_half(p: FaceParams) -> np.ndarray:
    """Image-right half of the lower face outline, temple to chin: (N, 2)."""
    ident = p.identity
    L, jw, cw = ident.face_length, ident.jaw_width, ident.chin_width
    ctrl = np.array([(0.97, -0.42), (1.0, -0.08), (0.985, 0.28), ((0.985 + jw) / 2 + 0.04, 0.54 * L),
                     (jw, 0.76 * L), ((jw + cw) / 2 + 0.02, 0.92 * L), (cw, 0.985 * L), (0.0, L)])
    return catmull_rom(ctrl, 6)


def lower_contour(p: FaceParams) -> np.ndarray:
    """Temple (image-left) -> chin -> temple (image-right), (N, 2)."""
    right = face_contour_half(p)
    return np.concatenate([_mirror(right)[:-1], right[::-1]])


def face_oval(p: FaceParams) -> np.ndarray:
    lower = lower_contour(p)
    top = -p.identity.hairline - 0.42 + 0.1  # half-height of the forehead arc above the temples
    t = np.linspace(0, np.pi, 20)[1:-1]
    arc = np.stack([0.97 * np.cos(t), -0.42 - top * np.sin(t)], 1)  # right temple -> over -> left
    return np.concatenate([lower, arc])


def jaw_landmarks(p: FaceParams) -> np.ndarray:
    """iBUG points 0-16 along the lower outline, from the level just below the eyes through the chin."""
    lower = lower_contour(p)
    keep = lower[:, 1] >= 0.04 + p.identity.eye_y
    return resample(lower[keep], 17)


@dataclass
class EyeGeometry:
    upper: np.ndarray      # (n, 2) upper lid, outer -> inner corner (face units)
    lower: np.ndarray      # (n, 2) lower lid, outer -> inner corner
    centre: np.ndarray     # (2,)
    landmarks: np.ndarray  # (6, 2) in iBUG order for this eye
    iris: np.ndarray       # (m, 2) polygon (iris clipped by the lids), may be empty
    iris_inner: np.ndarray
    pupil: np.ndarray
    catchlight: np.ndarray
    lid_shadow: np.ndarray
    crease: np.ndarray
    closed: bool


def _lid_curves(p: FaceParams, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid heights (local y, down positive) at local positions s in [-1 outer, 1 inner]."""
    ident = p.identity
    h = ident.eye_height * ident.eye_width
    base = np.clip(1 - s * s, 0, None)
    closed = 0.16 * h * base
    up_open = -h * base ** 0.85 * (1 + 0.18 * s)
    lo_open = 0.55 * h * base ** 1.1 * (1 - 0.15 * s)
    e = p.eye_open
    if e <= 1.0:
        upper = closed + (up_open - closed) * e
        lower = closed + (lo_open - closed) * e
    else:
        upper = up_open * (1 + 1.3 * (e - 1))
        lower = lo_open * (1 + 0.5 * (e - 1))
    return upper, lower


def eye_geometry(p: FaceParams, sign: int, light_dir: np.ndarray) -> EyeGeometry:
    ident = p.identity
    w = ident.eye_width
    cx, cy = sign * ident.eye_spacing, ident.eye_y
    tilt = math.tan(math.radians(ident.eye_tilt_deg))

    def to_face(s, y):  # local (s, y) -> face (x, y); outer corner (s = -1) lies away from the nose
        s = np.asarray(s, dtype=np.float64)
        return np.stack([cx - sign * s * w, cy + y + s * tilt * w], axis=-1)

    s = np.linspace(-1, 1, 25)
    up, lo = _lid_curves(p, s)
    ctr_y = 0.5 * (up[12] + lo[12])
    closed = p.eye_open <= 0.05

    ls = np.array([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3])
    lu, ll = _lid_curves(p, ls)
    ly = np.array([lu[0], lu[1], lu[2], lu[3], ll[4], ll[5]])
    lm = to_face(ls, ly)
    if sign > 0:  # image-right eye: iBUG 42 inner, 43-44 upper going outwards, 45 outer, 46-47 lower
        lm = to_face(ls[[3, 2, 1, 0, 5, 4]], ly[[3, 2, 1, 0, 5, 4]])

    def clipped_disc(r: float, ox: float = 0.0, oy: float = 0.0, n: int = 17) -> np.ndarray:
        """A disc of radius r (face units) centred at the eye centre + offset, cut by the lids."""
        if closed or r <= 0:
            return np.zeros((0, 2))
        x = np.linspace(-r, r, n)
        ss = np.clip(-sign * (x + ox) / w, -1, 1)  # inverse of to_face's x mapping
        lu_, ll_ = _lid_curves(p, ss)
        half = np.sqrt(np.clip(r * r - x * x, 0, None))
        top = np.maximum(ctr_y + oy - half, lu_)
        bot = np.minimum(ctr_y + oy + half, ll_)
        ok = bot > top
        if ok.sum() < 2:
            return np.zeros((0, 2))
        s_ok = ss[ok]
        return np.concatenate([to_face(s_ok, top[ok]), to_face(s_ok[::-1], bot[ok][::-1])])

    r = ident.iris_ratio * w
    pupil_r = r * (0.36 + 0.14 * (p.lighting == "dim"))
    # the catchlight sits towards the light; in face-local s the x axis is mirrored per eye side
    lx, ly_ = float(light_dir[0]), float(light_dir[1])
    cl = clipped_disc(0.13 * r, ox=0.42 * r * lx, oy=0.42 * r * ly_, n=9)
    # lid shadow: a band under the upper lid, stronger in the middle
    band = _lid_curves(p, s)[0] + 0.32 * ident.eye_height * w * np.clip(1 - s * s, 0, None) ** 0.5
    band = np.minimum(band, lo)
    lid_shadow = np.concatenate([to_face(s, up), to_face(s[::-1], band[::-1])]) if not closed else np.zeros((0, 2))
    h = ident.eye_height * w
    sc = np.linspace(-0.95, 0.9, 15)
    crease_y = -(1.0 + 0.35 * max(p.eye_open - 1, 0)) * 1.05 * h * np.clip(1 - sc * sc, 0, None) ** 0.6 - 0.035
    crease_y = np.minimum(crease_y, _lid_curves(p, sc)[0] - 0.02)
    return EyeGeometry(
        upper=to_face(s, up), lower=to_face(s, lo), centre=to_face(0.0, ctr_y), landmarks=lm,
        iris=clipped_disc(r), iris_inner=clipped_disc(0.82 * r), pupil=clipped_disc(pupil_r),
        catchlight=cl, lid_shadow=lid_shadow, crease=to_face(sc, crease_y), closed=closed)


def brow_geometry(p: FaceParams, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """(polygon (N, 2), five upper-edge landmarks outer -> inner (5, 2))."""
    ident = p.identity
    raise_, furrow = p.brow_raise, p.brow_furrow
    t = np.linspace(0, 1, 16)  # 0 = inner end, 1 = tail
    x_in = ident.brow_inner - 0.035 * furrow
    x_out = ident.eye_spacing + ident.eye_width + ident.brow_extent
    x = sign * (x_in + (x_out - x_in) * t)
    arch = ident.brow_arch + 0.035 * max(raise_, 0.0)
    base = ident.eye_y - ident.brow_gap - (0.09 if raise_ > 0 else 0.07) * raise_
    y = (base - arch * np.sin(np.pi * np.clip(t, 0, 1) ** 0.75) + 0.05 * t ** 3
         + 0.1 * furrow * (1 - t) ** 2 - 0.03 * max(raise_, 0) * (1 - t))
    th = ident.brow_thickness * (1.05 - 0.6 * t ** 1.6)
    # the inner end is blunt; round it slightly
    top = np.stack([x, y - th / 2], 1)
    bot = np.stack([x, y + th / 2], 1)
    poly = np.concatenate([top, bot[::-1]])
    idx = np.array([15, 11, 8, 4, 0])  # tail ... inner end, ~equally spaced along the brow
    lm = top[idx]
    return poly, lm


@dataclass
class NoseGeometry:
    outline: np.ndarray     # (N, 3)
    landmarks: np.ndarray   # (9, 3): iBUG 27-35
    nostrils: list[np.ndarray]
    alar_creases: list[np.ndarray]


def nose_geometry(p: FaceParams) -> NoseGeometry:
    ident = p.identity
    nb, nw, pr = ident.nose_length, ident.nose_width, ident.nose_protrusion
    top_y = ident.eye_y - 0.02
    half = np.array([(0.07, top_y), (0.085, 0.2), (0.1, nb - 0.22), (0.55 * nw + 0.05, nb - 0.13),
                     (nw, nb - 0.06), (0.93 * nw, nb - 0.01), (0.45 * nw, nb + 0.012), (0.0, nb + 0.018)])
    right = catmull_rom(half, 5)
    outline2 = np.concatenate([right, _mirror(right)[::-1][1:-1]])

    def depth(xy: np.ndarray) -> np.ndarray:
        ty = np.clip((xy[:, 1] - top_y) / (nb - top_y), 0, 1)
        return pr * (0.3 + 0.7 * ty ** 1.4) * np.clip(1 - 0.75 * np.abs(xy[:, 0]) / nw, 0.1, 1)

    outline = _xyz(outline2[:, 0], outline2[:, 1], depth(outline2))
    tip_y = nb - 0.075
    lm = np.array([(0, top_y), (0, top_y + (tip_y - top_y) / 3), (0, top_y + 2 * (tip_y - top_y) / 3),
                   (0, tip_y), (-0.55 * nw, nb - 0.015), (-0.27 * nw, nb + 0.006), (0, nb + 0.018),
                   (0.27 * nw, nb + 0.006), (0.55 * nw, nb - 0.015)])
    lm_d = depth(lm)
    lm_d[3] = pr  # the tip is the most forward point
    nostrils = [ellipse(sg * 0.48 * nw, nb - 0.018, 0.25 * nw, 0.1 * nw, n=14, angle_deg=sg * 18,
                        depth=0.6 * pr) for sg in (-1, 1)]
    creases = []
    for sg in (-1, 1):
        c = catmull_rom(np.array([(0.55 * nw, nb - 0.12), (0.92 * nw, nb - 0.085), (1.02 * nw, nb - 0.04),
                                  (0.88 * nw, nb - 0.0)]), 4)
        c[:, 0] *= sg
        creases.append(_xyz(c[:, 0], c[:, 1], 0.45 * pr))
    return NoseGeometry(outline=outline, landmarks=_xyz(lm[:, 0], lm[:, 1], lm_d), nostrils=nostrils,
                        alar_creases=creases)


@dataclass
class MouthGeometry:
    outer: np.ndarray            # (N, 2) closed outline of both lips
    upper_lip: np.ndarray        # (N, 2) polygon
    lower_lip: np.ndarray
    opening: np.ndarray          # (N, 2) polygon or empty
    teeth: np.ndarray            # (N, 2) polygon or empty
    landmarks: np.ndarray        # (20, 2): iBUG 48-67
    corners: np.ndarray          # (2, 2)


def mouth_geometry(p: FaceParams) -> MouthGeometry:
    ident = p.identity
    smile, open_ = p.smile, p.mouth_open
    round_open = open_ if smile < 0.3 else 0.0  # an open mouth without a smile rounds into an "O"
    mw = ident.mouth_width * (1 + 0.22 * max(smile, 0) - 0.05 * max(-smile, 0) - 0.3 * round_open)
    mi = mw * 0.86
    my = ident.mouth_y
    lift = -0.2 * smile if smile > 0 else -0.12 * smile  # corner height vs the centre (negative = up)
    ul = ident.upper_lip * (1 - 0.25 * max(smile, 0))
    ll = ident.lower_lip * (1 - 0.2 * max(smile, 0))
    gap = 0.3 * open_

    def line(x):
        xn = np.clip(np.abs(x) / mw, 0, 1)
        return my + lift * xn ** 1.8 - 0.012 * (1 - xn ** 2) * (1 - 0.5 * open_)

    def inner_profile(x):
        return np.clip(1 - (x / mi) ** 2, 0, None) ** 0.7

    def inner_upper(x):
        return line(x) - gap * (0.28 + 0.1 * (smile > 0.3)) * inner_profile(x)

    def inner_lower(x):
        return line(x) + gap * 0.72 * inner_profile(x)

    def outer_upper(x):
        xn = np.clip(x / mw, -1, 1)
        bow = 1 + 0.18 * np.exp(-((np.abs(xn) - 0.3) / 0.16) ** 2) - 0.14 * np.exp(-(xn / 0.1) ** 2)
        base = np.where(np.abs(x) < mi, inner_upper(x), line(x))
        return base - ul * np.clip(1 - xn * xn, 0, None) ** 0.55 * bow

    def outer_lower(x):
        xn = np.clip(x / mw, -1, 1)
        base = np.where(np.abs(x) < mi, inner_lower(x), line(x))
        return base + ll * np.clip(1 - xn * xn, 0, None) ** 0.6

    xs = np.linspace(-mw, mw, 29)
    xi = np.linspace(-mi, mi, 21)
    up_out = np.stack([xs, outer_upper(xs)], 1)
    lo_out = np.stack([xs, outer_lower(xs)], 1)
    # the lip line between the corners: inner edges inside the opening, the closed line beyond it
    mid_u = np.stack([xs, np.where(np.abs(xs) < mi, inner_upper(xs), line(xs))], 1)
    mid_l = np.stack([xs, np.where(np.abs(xs) < mi, inner_lower(xs), line(xs))], 1)
    outer = np.concatenate([up_out, lo_out[::-1][1:-1]])
    upper_lip = np.concatenate([up_out, mid_u[::-1][1:-1]])
    lower_lip = np.concatenate([mid_l, lo_out[::-1][1:-1]])
    if gap > 0.01:
        opening = np.concatenate([np.stack([xi, inner_upper(xi)], 1), np.stack([xi, inner_lower(xi)], 1)[::-1][1:-1]])
        tooth_h = min(0.55 * gap, 0.07) if smile > 0.3 else min(0.25 * gap, 0.045)
        tu = inner_upper(xi)
        tl = np.minimum(tu + tooth_h * np.clip(1 - (xi / mi) ** 2, 0, None) ** 0.4, inner_lower(xi))
        teeth = np.concatenate([np.stack([xi, tu], 1), np.stack([xi, tl], 1)[::-1]])
    else:
        opening = np.zeros((0, 2))
        teeth = np.zeros((0, 2))
    ox = mw * np.array([-0.62, -0.3, 0.0, 0.3, 0.62])
    ix = mi * np.array([-0.45, 0.0, 0.45])
    lm = np.concatenate([
        [(-mw, float(line(-mw)))],
        np.stack([ox, outer_upper(ox)], 1),
        [(mw, float(line(mw)))],
        np.stack([ox[::-1], outer_lower(ox[::-1])], 1),
        [(-mi, float(line(-mi)))],
        np.stack([ix, inner_upper(ix)], 1),
        [(mi, float(line(mi)))],
        np.stack([ix[::-1], inner_lower(ix[::-1])], 1),
    ])
    return MouthGeometry(outer=outer, upper_lip=upper_lip, lower_lip=lower_lip, opening=opening,
                         teeth=teeth, landmarks=lm, corners=lm[[0, 6]])


# ------------------------------------------------------------------------------------------ hair

def _arc(cx, cy, rx, ry, a0, a1, n) -> np.ndarray:
    """Points on an ellipse from angle a0 to a1 (radians, y down: -pi/2 is the top)."""
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def hairline_curve(p: FaceParams, fringe_y: float | None) -> np.ndarray:
    """The inner edge of the hair, image-right side bottom -> over the forehead -> image-left side."""
    ident = p.identity
    hl = ident.hairline
    side_bottom = 0.15 if ident.hair_style == "short" else 0.3
    if fringe_y is None:
        ctrl = [(0.95, side_bottom), (0.93, -0.3), (0.8, hl + 0.2), (0.45, hl + 0.03), (0.0, hl)]
        right = np.array(ctrl)
        left = _mirror(right)[::-1][1:]
        return catmull_rom(np.concatenate([right, left]), 5)
    # a fringe swept from the parting side: lower on the side it falls to
    pt = ident.hair_parting
    xs = np.linspace(0.82, -0.82, 9)
    ys = fringe_y + 0.07 * np.tanh(2 * (xs * np.sign(pt or 1))) * abs(pt) + 0.025 * np.sin(xs * 9)
    ctrl = np.concatenate([[(0.95, side_bottom), (0.93, -0.25)], np.stack([xs, ys], 1), [(-0.93, -0.25), (-0.95, side_bottom)]])
    return catmull_rom(ctrl, 4)


def hair_shapes(p: FaceParams, rgb, c_hair: int) -> tuple[list[Shape], list[Shape]]:
    """(shapes behind the head, shapes in front of the face) for the identity's hair style."""
    ident = p.identity
    style, vol = ident.hair_style, ident.hair_volume
    back: list[Shape] = []
    front: list[Shape] = []
    if style == "bald":
        return back, front
    L = ident.face_length
    dark = _shade(rgb, 0.8)
    if style == "long":
        vol = max(vol, 0.12)
        end = L + 0.7 + 0.5 * abs(ident.hair_parting)
        right = np.array([(0.0, -1.5 - vol), (0.75, -1.3 - vol * 0.8), (1.08 + vol, -0.55), (1.18 + vol, 0.3),
                          (1.22 + vol, L * 0.8), (1.3 + vol, end - 0.15), (1.1, end)])
        outline = catmull_rom(np.concatenate([right, _mirror(right)[::-1][:-1]]), 5, closed=True)
        back.append(Shape(_xyz(outline[:, 0], outline[:, 1], -0.35), rgb, c_hair))
    fringe_y = None
    if ident.fringe and style in ("medium", "long", "curly"):
        fringe_y = min(ident.hairline + 0.45, ident.eye_y - ident.brow_gap - 0.2)
    inner = hairline_curve(p, fringe_y)  # right bottom -> left bottom
    side_bottom = inner[0, 1]
    if style == "curly":
        vol = max(vol, 0.18) + 0.1
    t = np.linspace(np.pi + 0.25, 2 * np.pi - 0.25, 40)  # left side -> top -> right side
    rx, ry, cy = 1.03 + vol, 1.13 + vol, -0.35
    outer = np.stack([rx * np.cos(t), cy + ry * np.sin(t)], 1)
    if style == "curly":
        bumps = 1 + 0.05 * np.abs(np.sin(t * 9.0 + ident.hair_parting * 3))
        outer = np.stack([rx * bumps * np.cos(t), cy + ry * bumps * np.sin(t)], 1)
    # close the sides down to the sideburns / ear level
    left_side = np.array([(-1.0 - 0.4 * vol, side_bottom), (-1.02 - 0.7 * vol, (cy + side_bottom) / 2)])
    right_side = _mirror(left_side)[::-1]
    outer_full = np.concatenate([left_side, outer, right_side])
    cap = np.concatenate([outer_full, inner])
    front.append(Shape(_xyz(cap[:, 0], cap[:, 1], 0.0), rgb, c_hair))
    # a darker parting line / crown shadow to give the cap some structure
    part_x = 0.35 * ident.hair_parting
    crown = catmull_rom(np.array([(part_x, ident.hairline - 0.05), (part_x * 1.1, cy - ry * 0.75),
                                  (part_x * 0.6, cy - ry - vol * 0.2)]), 5)
    front.append(Shape(_xyz(crown[:, 0], crown[:, 1], 0.0), dark, None, width=0.03))
    if style == "long":
        # locks falling in front of the shoulders, covering the sides of the face a little
        for sg in (-1, 1):
            lock = np.array([(0.95, -0.5), (0.93, 0.2), (0.94, 0.7 * L), (1.0, L + 0.1), (1.05, end - 0.2),
                             (1.3 + vol, end - 0.3), (1.25 + vol, L * 0.7), (1.15 + vol * 0.8, 0.0),
                             (1.05 + vol * 0.5, -0.5)])
            lock = catmull_rom(lock, 4, closed=True)
            lock[:, 0] *= sg
            front.append(Shape(_xyz(lock[:, 0], lock[:, 1], 0.0), rgb, c_hair))
    return back, front


def beard_shapes(p: FaceParams, rgb, c_beard: int) -> list[Shape]:
    """A beard (label head_other) with a soft stubble fringe around it (colour only: still skin)."""
    ident = p.identity
    if ident.beard_style == "none":
        return []
    L, nb = ident.face_length, ident.nose_length
    mw, my = ident.mouth_width, ident.mouth_y
    if ident.beard_style == "full":
        half = face_contour_half(p)
        half = half[half[:, 1] >= 0.2]
        outer_r = half * np.array([1.02, 1.0])
        outer_r[-3:, 1] += 0.05  # a little volume under the chin
        # cheek line from the sideburn down to the mouth, then a mustache under the nose
        inner_r = catmull_rom(np.array([(0.95, 0.2), (0.85, 0.52), (0.64, 0.7), (mw + 0.06, my - 0.1),
                                        (0.3, nb + 0.1), (0.12, nb + 0.075), (0.0, nb + 0.08)]), 4)
        # right temple -> chin -> left temple, then left cheek -> nose base -> right cheek
        poly = np.concatenate([outer_r, _mirror(outer_r)[::-1], _mirror(inner_r), inner_r[::-1]])
    else:
        w = mw + 0.04
        ctrl = np.array([(0.0, nb + 0.07), (0.2, nb + 0.08), (w, my - 0.02), (0.75 * w, my + 0.18),
                         (0.22, L - 0.04), (0.0, L + 0.04)])
        right = catmull_rom(ctrl, 4)
        poly = np.concatenate([right, _mirror(right)[::-1][1:-1]])
    stubble = _grow(poly, 0.035)
    fringe_rgb = tuple(int(c) for c in rgb) + (90,)
    return [Shape(_xyz(stubble[:, 0], stubble[:, 1], 0.02), fringe_rgb, None),
            Shape(_xyz(poly[:, 0], poly[:, 1], 0.02), rgb, c_beard)]


def _grow(poly: np.ndarray, d: float) -> np.ndarray:
    """Push every vertex of a polygon `d` away from its centroid (a cheap outward offset)."""
    c = poly.mean(axis=0)
    v = poly - c
    n = np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
    return c + v * (1 + d / n)


# ------------------------------------------------------------------------------------ accessories

def glasses_shapes(p: FaceParams, code_frame: int) -> list[Shape]:
    ident = p.identity
    style = p.glasses_style
    lw = ident.eye_width * 1.45 + 0.03
    lh = lw * {"round": 0.82, "rect": 0.6, "aviator": 0.85}[style]
    fw = 0.03
    cy = ident.eye_y + 0.02
    z = 0.16
    shapes: list[Shape] = []
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    for sg in (-1, 1):
        cx = sg * ident.eye_spacing
        if style == "rect":
            ex = 2 / 5.0
            x = lw * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** ex
            y = lh * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** ex
        elif style == "aviator":
            x = lw * np.cos(t)
            y = lh * np.sin(t) * np.where(np.sin(t) > 0, 1.1, 0.8)
            x = x + sg * -0.15 * lw * np.clip(np.sin(t), 0, None)  # bulge towards the outer-bottom
        else:
            x, y = lw * np.cos(t), lh * np.sin(t)
        ring = _xyz(cx + x, cy + y, z)
        if p.lens_tint > 0.02:
            shapes.append(Shape(ring, (90, 110, 120, int(255 * p.lens_tint)), None))
        # a soft reflection across the lens
        refl = _xyz(cx + np.array([-0.5, -0.2, 0.3, 0.0]) * lw, cy + np.array([-0.5, -0.75, 0.1, 0.4]) * lh, z)
        shapes.append(Shape(refl, (255, 255, 255, 34), None))
        shapes.append(Shape(ring, p.glasses_rgb, code_frame, width=fw, closed=True))
        # temple arm towards the ear
        arm = _xyz(np.array([cx + sg * lw * 0.98, sg * 0.99]), np.array([cy - 0.35 * lh, cy - 0.3 * lh]), np.array([z, 0.0]))
        shapes.append(Shape(arm, p.glasses_rgb, code_frame, width=fw * 0.9))
    bx = ident.eye_spacing - lw * 0.97
    bridge = catmull_rom(np.array([(-bx, cy - 0.3 * lh), (0.0, cy - 0.42 * lh - 0.03), (bx, cy - 0.3 * lh)]), 5)
    shapes.append(Shape(_xyz(bridge[:, 0], bridge[:, 1], z + 0.1), p.glasses_rgb, code_frame, width=fw))
    return shapes


def occluder_shapes(p: FaceParams, code_hand: int, code_bar: int) -> list[Shape]:
    occ = p.occlusion
    if occ is None:
        return []
    a = math.radians(occ.angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    s = occ.size
    z = 0.5

    def place(pts2: np.ndarray) -> np.ndarray:
        x = occ.x + ca * pts2[:, 0] - sa * pts2[:, 1]
        y = occ.y + sa * pts2[:, 0] + ca * pts2[:, 1]
        return _xyz(x, y, z)

    rgb = occ.rgb
    if occ.kind == "bar":
        bar = np.array([(-1.4, -0.2), (1.4, -0.2), (1.4, 0.2), (-1.4, 0.2)]) * s
        return [Shape(place(bar), rgb, code_bar), Shape(place(bar * np.array([1, 0.1]) + np.array([0, -0.12 * s])),
                                                        _shade(rgb, 1.15), None, width=0.02)]
    shapes: list[Shape] = []
    # forearm and palm (fingers point to local -y, "up" before rotation)
    arm = np.array([(-0.3, 0.5), (0.3, 0.5), (0.36, 2.4), (-0.36, 2.4)]) * s
    shapes.append(Shape(place(arm), rgb, code_hand))
    palm = ellipse(0, 0.3 * s, 0.38 * s, 0.42 * s, n=24)[:, :2]
    shapes.append(Shape(place(palm), rgb, code_hand))
    for i, (fx, fl) in enumerate(((-0.27, 0.62), (-0.09, 0.75), (0.09, 0.72), (0.26, 0.6))):
        cap = capsule(np.array([fx * s, 0.05 * s]), np.array([fx * 1.1 * s, -fl * s]), 0.09 * s, n=8)[:, :2]
        shapes.append(Shape(place(cap), rgb, code_hand))
        if i < 3:  # the crease between this finger and the next
            crease = np.array([(fx * s + 0.09 * s, 0.0), (fx * 1.1 * s + 0.09 * s, -fl * 0.8 * s)])
            shapes.append(Shape(place(crease), _shade(rgb, 0.78), None, width=0.012))
    thumb = capsule(np.array([0.3 * s, 0.35 * s]), np.array([0.62 * s, -0.05 * s]), 0.1 * s, n=8)[:, :2]
    shapes.append(Shape(place(thumb), rgb, code_hand))
    return shapes


# ----------------------------------------------------------------------------------------- scene

def light_in_face_frame(p: FaceParams) -> np.ndarray:
    """Unit vector towards the light in the face's own (un-rolled) frame: (x, y, z)."""
    az = math.radians(p.light_azimuth_deg - p.roll_deg)
    e = p.light_elevation
    h = math.sqrt(max(1 - e * e, 0.0))
    return np.array([h * math.cos(az), h * math.sin(az), e])


def build_scene(p: FaceParams) -> Scene:
    ident = p.identity
    skin = ident.skin_rgb
    L = ident.face_length
    light = light_in_face_frame(p)
    sc = Scene()
    add = sc.shapes.append
    c_skin, c_other_skin = code(MAT_SKIN, "skin"), code(MAT_SKIN, "head_other")
    c_hair = code(MAT_HAIR, "head_other")
    skin_dark = _shade(skin, 0.82, (4, -6, -6))

    hair_back, hair_front = hair_shapes(p, ident.hair_rgb, c_hair)
    sc.shapes.extend(hair_back)

    # neck and clothes
    nw = ident.neck_width
    neck = np.array([(-nw, 0.45 * L), (nw, 0.45 * L), (nw * 1.02, L + 0.35), (nw * 1.4, L + 0.6),
                     (-nw * 1.4, L + 0.6), (-nw * 1.02, L + 0.35)])
    add(Shape(_xyz(neck[:, 0], neck[:, 1], -0.2), _shade(skin, 0.93), c_other_skin))
    body_r = np.array([(nw * 1.05, L + 0.32), (1.2, L + 0.52), (2.1, L + 0.72), (2.8, L + 1.1), (3.3, L + 4.0)])
    neckline = np.array([(-nw * 0.75, L + 0.55), (0.0, L + 0.72), (nw * 0.75, L + 0.55)])
    body = np.concatenate([body_r, _mirror(body_r)[::-1], neckline])  # neck base right -> down -> left -> neckline
    add(Shape(_xyz(body[:, 0], body[:, 1], -0.3), p.clothing_rgb, code(MAT_CLOTH, "head_other")))

    # ears, then the scalp, then the face itself
    for sg in (-1, 1):
        es = ident.ear_size
        ear = np.array([(0.95, -0.1), (1.06, -0.16), (1.15, -0.08), (1.18, 0.08), (1.14, 0.27),
                        (1.08, 0.42), (1.01, 0.52), (0.93, 0.48)])
        ear = (ear - [0.96, 0.18]) * es + [0.96, 0.18]
        ear = catmull_rom(ear, 4, closed=True)
        ear[:, 0] *= sg
        add(Shape(_xyz(ear[:, 0], ear[:, 1], -0.25), _shade(skin, 0.97, (6, -2, -2)), c_other_skin))
        inner = np.array([(1.0, -0.04), (1.1, -0.05), (1.12, 0.1), (1.08, 0.25), (1.02, 0.33)])
        inner = (inner - [0.96, 0.18]) * es + [0.96, 0.18]
        inner = catmull_rom(inner, 4)
        inner[:, 0] *= sg
        add(Shape(_xyz(inner[:, 0], inner[:, 1], -0.25), _shade(skin, 0.72), None, width=0.035))
    scalp = ellipse(0.0, -0.32, 1.0, 1.18, n=36)
    add(Shape(scalp, _shade(skin, 0.97), c_other_skin))
    add(Shape(_xyz(*face_oval(p).T), skin, c_skin))

    # beard under the features
    mouth = mouth_geometry(p)
    sc.shapes.extend(beard_shapes(p, _shade(ident.hair_rgb, 0.9) if ident.hair_style != "bald" else ident.brow_rgb,
                                  code(MAT_HAIR, "head_other")))

    # eyes
    eyes = {}
    for sg, name in ((-1, "left_eye"), (1, "right_eye")):
        eg = eye_geometry(p, sg, light)
        eyes[name] = eg
        c_eye = code(MAT_EYE, name)
        lash = _shade(ident.brow_rgb, 0.5) if sum(ident.brow_rgb) > 120 else (18, 14, 12)
        add(Shape(_xyz(*eg.crease.T), skin_dark, None, width=0.022))
        if eg.closed:
            add(Shape(_xyz(*eg.upper.T, -0.03), lash, c_eye, width=0.042))
        else:
            opening = np.concatenate([eg.upper, eg.lower[::-1][1:-1]])
            add(Shape(_xyz(*opening.T, -0.03), (238, 234, 228), c_eye))
            if len(eg.iris):
                add(Shape(_xyz(*eg.iris.T, -0.02), _shade(ident.iris_rgb, 0.55), c_eye))
            if len(eg.iris_inner):
                add(Shape(_xyz(*eg.iris_inner.T, -0.02), ident.iris_rgb, c_eye))
            if len(eg.pupil):
                add(Shape(_xyz(*eg.pupil.T, -0.02), (12, 10, 10), c_eye))
            if len(eg.catchlight):
                add(Shape(_xyz(*eg.catchlight.T, -0.02), (250, 250, 250), c_eye))
            if len(eg.lid_shadow):
                add(Shape(_xyz(*eg.lid_shadow.T, -0.02), (60, 40, 30, 70), None))
            add(Shape(_xyz(*eg.lower.T, -0.03), _shade(skin, 0.78), None, width=0.012))
            add(Shape(_xyz(*eg.upper.T, -0.03), lash, c_eye, width=0.032))

    # nose
    ng = nose_geometry(p)
    add(Shape(ng.outline, skin, code(MAT_SKIN, "nose")))
    for cr in ng.alar_creases:
        add(Shape(cr, _shade(skin, 0.7, (-4, -8, -8)), None, width=0.024))
    for ns in ng.nostrils:
        add(Shape(ns, _shade(skin, 0.25), None))

    # mouth
    lip = ident.lip_rgb
    c_mouth = code(MAT_LIPS, "mouth")
    dz = 0.05
    add(Shape(_xyz(*mouth.outer.T, dz), lip, c_mouth))
    add(Shape(_xyz(*mouth.upper_lip.T, dz), _shade(lip, 0.86), c_mouth))
    add(Shape(_xyz(*mouth.lower_lip.T, dz), lip, c_mouth))
    if len(mouth.opening):
        add(Shape(_xyz(*mouth.opening.T, dz), (52, 18, 20), c_mouth))
        add(Shape(_xyz(*mouth.teeth.T, dz), (228, 222, 208), c_mouth))
    else:
        line = np.concatenate([mouth.landmarks[[0]], mouth.landmarks[12:17], mouth.landmarks[[6]]])
        line = np.stack([np.linspace(line[0, 0], line[-1, 0], 15),
                         np.interp(np.linspace(line[0, 0], line[-1, 0], 15), line[:, 0], line[:, 1])], 1)
        add(Shape(_xyz(*line.T, dz), _shade(lip, 0.55), None, width=0.016))

    # brows
    brows = {}
    for sg, name in ((-1, "left_brow"), (1, "right_brow")):
        poly, lm = brow_geometry(p, sg)
        brows[name] = lm
        add(Shape(_xyz(*poly.T, 0.02), ident.brow_rgb, code(MAT_HAIR, name)))

    sc.shapes.extend(hair_front)
    if p.glasses:
        sc.shapes.extend(glasses_shapes(p, code(MAT_GLASSES, "head_other")))
    sc.shapes.extend(occluder_shapes(p, code(MAT_HAND, "head_other"), code(MAT_CLOTH, "head_other")))

    sc.details = detail_shapes(p, ng, mouth, light)
    jaw = jaw_landmarks(p)
    jaw3 = _xyz(jaw[:, 0], jaw[:, 1], 0.0)
    brow3 = _xyz(*np.concatenate([brows["left_brow"], brows["right_brow"][::-1]]).T, 0.02)
    eye_lm = np.concatenate([eyes["left_eye"].landmarks, eyes["right_eye"].landmarks])
    mouth3 = _xyz(*mouth.landmarks.T, dz)
    sc.landmarks68 = np.concatenate([jaw3, brow3, ng.landmarks, _xyz(*eye_lm.T, -0.03), mouth3])
    sc.eye_centres = np.stack([eyes["left_eye"].centre, eyes["right_eye"].centre])
    return sc


def detail_shapes(p: FaceParams, ng: NoseGeometry, mouth: MouthGeometry, light: np.ndarray) -> list[Shape]:
    """Soft multiplicative shading drawn at output resolution and blurred: 128 = unchanged."""
    ident = p.identity
    nb, nw, L = ident.nose_length, ident.nose_width, ident.face_length
    lx, ly = float(light[0]), float(light[1])
    out: list[Shape] = []
    add = out.append
    # eye sockets and the shadow the hair casts on the forehead
    for sg in (-1, 1):
        add(Shape(ellipse(sg * (ident.eye_spacing + 0.02), ident.eye_y - 0.1, ident.eye_width * 1.45, 0.17, n=20),
                  (108, 104, 104)))
    if ident.hair_style != "bald":
        add(Shape(ellipse(0.0, ident.hairline + 0.02, 0.9, 0.1, n=24), (100, 98, 98)))
    # nose: the side away from the light is darker, the bridge and tip catch light
    far = -1.0 if lx > 0 else 1.0
    k = min(1.0, 0.4 + abs(lx) * 1.2)
    side = np.array([(0.07, ident.eye_y + 0.05), (0.11, 0.3), (0.16, nb - 0.14), (0.1, nb - 0.12), (0.06, 0.3),
                     (0.04, ident.eye_y + 0.08)])
    side[:, 0] *= far
    add(Shape(_xyz(*side.T, 0.2), tuple(int(128 - 60 * k) for _ in range(3))))
    tip_side = ellipse(far * 0.75 * nw, nb - 0.07, 0.35 * nw, 0.07, n=14, depth=0.5 * ident.nose_protrusion)
    add(Shape(tip_side, (88, 84, 84)))
    add(Shape(ellipse(0.0, 0.25, 0.03, 0.18, n=12, depth=0.25), (150, 150, 148)))
    add(Shape(ellipse(0.0, nb - 0.08, 0.06, 0.045, n=12, depth=ident.nose_protrusion), (172, 170, 168)))
    # under the nose, under the lower lip, under the jaw (on the neck)
    add(Shape(ellipse(0.0, nb + 0.04, nw * 0.95, 0.04, n=16, depth=0.1), (78, 74, 74)))
    lo_y = float(mouth.landmarks[9, 1])
    add(Shape(ellipse(0.0, lo_y + 0.05, ident.mouth_width * 0.55, 0.035, n=16), (98, 94, 94)))
    add(Shape(ellipse(0.0, lo_y - 0.025, ident.mouth_width * 0.35, 0.018, n=12, depth=0.05), (160, 156, 156)))
    jaw = face_contour_half(p)
    jaw = jaw[jaw[:, 1] > 0.5 * L]
    jaw_full = np.concatenate([_mirror(jaw), jaw[::-1]])  # left jaw angle -> chin -> right jaw angle
    for drop, tone in ((0.32, 100), (0.2, 84), (0.1, 74)):
        below = jaw_full.copy()
        below[:, 1] += drop
        add(Shape(_xyz(*np.concatenate([jaw_full, below[::-1]]).T, -0.1), (tone, tone - 3, tone - 2)))
    # cheeks: blush, and a highlight on the cheekbone facing the light
    if ident.blush > 0.3:
        a = int(10 * ident.blush)
        for sg in (-1, 1):
            add(Shape(ellipse(sg * 0.55, 0.42, 0.2, 0.13, n=16), (128 + a, 128 - a, 126 - a)))
    add(Shape(ellipse(0.6 * (1 if lx > 0 else -1), 0.28, 0.16, 0.08, n=14), (146, 146, 144)))
    add(Shape(ellipse(0.25 * lx, ident.hairline + 0.32 + 0.1 * ly, 0.28, 0.12, n=16), (146, 146, 144)))
    add(Shape(ellipse(0.0, L - 0.12, 0.14, 0.07, n=14), (142, 142, 140)))
    # expression folds: nasolabial folds deepen with a smile, a furrow between frowning brows
    if p.smile > 0.3:
        for sg in (-1, 1):
            corner = mouth.corners[0 if sg < 0 else 1]
            fold = catmull_rom(np.array([(sg * (nw + 0.04), nb - 0.1), (sg * (nw + 0.13), nb + 0.08),
                                         (corner[0] + sg * 0.09, corner[1] + 0.02),
                                         (corner[0] + sg * 0.07, corner[1] + 0.12)]), 5)
            add(Shape(_xyz(*fold.T), (100, 96, 96), None, width=0.025))
            # raised cheeks catch the light
            add(Shape(ellipse(sg * 0.5, nb - 0.05, 0.16, 0.1, n=14), (142, 140, 138)))
    if p.brow_furrow > 0.3:
        for sg in (-1, 1):
            add(Shape(_xyz(np.array([sg * 0.05, sg * 0.04]), np.array([ident.eye_y - ident.brow_gap - 0.1, ident.eye_y - 0.12])),
                      (90, 88, 88), None, width=0.02))
    if p.brow_raise > 0.45:
        for dy in (0.0, 0.1):
            y0 = ident.eye_y - ident.brow_gap - 0.22 - dy
            c = catmull_rom(np.array([(-0.45, y0 + 0.03), (0.0, y0), (0.45, y0 + 0.03)]), 5)
            add(Shape(_xyz(*c.T), (108, 106, 106), None, width=0.02))
    return out
