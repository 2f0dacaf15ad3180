"""What varies in a procedural face, as frozen dataclasses of plain numbers, and how it is sampled.

`IdentityParams` is everything that makes one person (face shape, colouring, feature sizes and
placement, hair, beard); `FaceParams` is one photograph of that person (expression, pose, light,
accessories, occlusion, background, camera noise). Both hold only Python ints, floats, strs, bools
and tuples, so `dataclasses.asdict` of them is JSON-safe ground truth and rendering is a pure
function of them.

Geometry is in *face units*: one unit is the half-width of the face at the cheekbones, x to the
image right, y down, origin midway between the eye centres of the upright frontal face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:  # one definition of the region classes for the whole project, when the masks package has it
    from paco_fr.masks.regions_def import REGIONS as _SHARED_REGIONS
except ImportError:  # pragma: no cover - the generator must also work on its own
    _SHARED_REGIONS = None

REGIONS: tuple[str, ...] = tuple(_SHARED_REGIONS) if _SHARED_REGIONS is not None else (
    "background", "head_other", "skin", "left_brow", "right_brow",
    "left_eye", "right_eye", "nose", "mouth")
assert REGIONS[:9] == ("background", "head_other", "skin", "left_brow", "right_brow",
                       "left_eye", "right_eye", "nose", "mouth"), REGIONS

EXPRESSIONS: tuple[str, ...] = ("neutral", "smile", "surprise", "eyes_closed", "frown")

ATTRIBUTES: tuple[str, ...] = (
    "glasses",          # a glasses frame is drawn
    "smiling",          # expression == "smile"
    "mouth_open",       # lips parted (mouth_open > MOUTH_OPEN_THRESHOLD)
    "eyes_closed",      # expression == "eyes_closed"
    "brows_raised",     # brow_raise > BROW_RAISE_THRESHOLD (surprise, and some neutral/smile faces)
    "occluded",         # a hand or a bar covers part of the face
    "beard",            # the identity has a beard (full or goatee)
    "long_hair",        # the identity's hair falls below the chin
    "dark_background",  # background mean luminance below DARK_BACKGROUND_LUMA (0..255)
    "bright_light",     # the "bright" lighting regime (strong key light, high exposure)
    "head_turned",      # |yaw| > HEAD_TURNED_YAW
)

MOUTH_OPEN_THRESHOLD = 0.2
BROW_RAISE_THRESHOLD = 0.45
DARK_BACKGROUND_LUMA = 90.0
HEAD_TURNED_YAW = 0.15

HAIR_STYLES: tuple[str, ...] = ("bald", "short", "medium", "curly", "long")
_HAIR_STYLE_P = (0.07, 0.30, 0.18, 0.10, 0.35)
BEARD_STYLES: tuple[str, ...] = ("none", "full", "goatee")
_BEARD_P = (0.74, 0.14, 0.12)
GLASSES_STYLES: tuple[str, ...] = ("round", "rect", "aviator")
OCCLUDER_KINDS: tuple[str, ...] = ("hand", "bar")
BACKGROUND_KINDS: tuple[str, ...] = ("flat", "gradient", "noise", "shapes")
LIGHTING_REGIMES: tuple[str, ...] = ("dim", "normal", "bright")

RGB = tuple[int, int, int]

# Anchor colours; samples interpolate between neighbours and jitter, so the palettes are continuous.
_SKIN_TONES = np.array([(255, 226, 200), (243, 200, 168), (228, 178, 138), (204, 146, 106),
                        (170, 114, 78), (132, 86, 56), (96, 62, 42)], dtype=np.float64)
_HAIR_COLOURS = np.array([(28, 24, 22), (58, 40, 30), (100, 68, 44), (150, 108, 68),
                          (206, 170, 112), (146, 68, 36), (150, 148, 146), (212, 208, 200)],
                         dtype=np.float64)
_HAIR_COLOUR_P = np.array([0.26, 0.22, 0.16, 0.1, 0.1, 0.06, 0.06, 0.04])
_IRIS_COLOURS = np.array([(92, 58, 34), (52, 34, 22), (122, 98, 56), (82, 118, 74),
                          (78, 118, 168), (118, 128, 140)], dtype=np.float64)
_IRIS_P = np.array([0.3, 0.25, 0.12, 0.1, 0.15, 0.08])
_FRAME_COLOURS = np.array([(18, 18, 20), (92, 56, 30), (168, 168, 174), (188, 158, 88),
                           (150, 30, 40), (30, 50, 130)], dtype=np.float64)


@dataclass(frozen=True)
class IdentityParams:
    """One person. All lengths in face units (see module docstring)."""

    # face shape
    face_length: float       # chin depth below the eye line
    jaw_width: float         # half-width at the jaw angle
    chin_width: float        # half-width of the chin
    hairline: float          # y of the hairline at the centre (negative: above the eyes)
    # colouring
    skin_rgb: RGB
    lip_rgb: RGB
    blush: float             # 0..1, cheek redness
    hair_style: str          # one of HAIR_STYLES
    hair_rgb: RGB
    hair_volume: float       # thickness of the hair above the skull
    hair_parting: float      # -1..1, where the fringe sweeps from
    fringe: bool             # bangs covering part of the forehead
    beard_style: str         # one of BEARD_STYLES
    brow_rgb: RGB
    iris_rgb: RGB
    # eyes
    eye_spacing: float       # half the distance between the eye centres
    eye_width: float         # half-width of one eye opening
    eye_height: float        # upper-lid height of the open eye, as a fraction of eye_width
    eye_tilt_deg: float      # canthal tilt: outer corner above the inner one when positive
    eye_y: float             # vertical offset of both eyes
    iris_ratio: float        # iris radius / eye_width
    # brows
    brow_gap: float          # height of the brow above the eye centre
    brow_thickness: float
    brow_arch: float
    brow_inner: float        # x of the inner end of the brow
    brow_extent: float       # how far the brow tail reaches beyond the outer eye corner
    # nose
    nose_length: float       # y of the nose base (subnasale)
    nose_width: float        # half-width at the alae
    nose_protrusion: float   # depth of the tip in front of the face surface
    # mouth
    mouth_y: float
    mouth_width: float       # half-width, corner to centre
    upper_lip: float
    lower_lip: float
    # other
    ear_size: float
    neck_width: float


@dataclass(frozen=True)
class Occlusion:
    """Something in front of the face. Its pixels are labelled `head_other` (see docs)."""

    kind: str                # "hand" | "bar"
    x: float                 # centre in face units
    y: float
    angle_deg: float
    size: float              # face units
    rgb: RGB


@dataclass(frozen=True)
class Background:
    kind: str                # one of BACKGROUND_KINDS
    rgb1: RGB
    rgb2: RGB
    angle_deg: float         # gradient direction
    texture_seed: int        # noise field / shapes placement


@dataclass(frozen=True)
class FaceParams:
    """One rendering of one identity."""

    identity_id: int
    identity: IdentityParams
    expression: str          # one of EXPRESSIONS
    # expression intensities (set consistently with `expression`)
    smile: float             # -1 (corners down) .. 1 (broad smile)
    mouth_open: float        # 0 (closed) .. 1 (wide open)
    eye_open: float          # 0 (closed) .. 1.35 (wide)
    brow_raise: float        # -1 (lowered) .. 1 (raised)
    brow_furrow: float       # 0 .. 1 (inner ends pulled down and together)
    # pose: roll rotates the whole drawing (positive = clockwise on screen); yaw is the sine of the
    # head's turn, positive = features move towards the image right
    roll_deg: float
    yaw: float
    scale: float             # 1.0: the face half-width is 0.29 of the image size
    centre_dx: float         # eye-line centre offset, fraction of the image size
    centre_dy: float
    # light: comes from `light_azimuth_deg` in the image plane (0 = from the image right,
    # 90 = from below, -90 = from above), `light_elevation` = how frontal it is (z component)
    lighting: str            # one of LIGHTING_REGIMES
    light_azimuth_deg: float
    light_elevation: float
    light_intensity: float   # diffuse strength
    ambient: float
    exposure: float
    light_rgb: tuple[float, float, float]
    # accessories and occlusion
    glasses: bool
    glasses_style: str
    glasses_rgb: RGB
    lens_tint: float         # 0..1 opacity of the lens tint
    occlusion: Occlusion | None
    clothing_rgb: RGB
    background: Background
    # camera
    noise_sigma: float       # sensor noise, 0..255 units
    blur_sigma: float        # Gaussian blur, pixels at 192 px (scaled with the image size)
    render_seed: int         # noise and textures


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _rgb(values: np.ndarray) -> RGB:
    c = np.clip(np.rint(values), 0, 255).astype(int)
    return (int(c[0]), int(c[1]), int(c[2]))


def _palette(rng: np.random.Generator, anchors: np.ndarray, p: np.ndarray | None, jitter: float) -> np.ndarray:
    """A colour near one anchor of a palette, pulled a random way towards a neighbour."""
    i = int(rng.choice(len(anchors), p=p))
    j = min(max(i + int(rng.choice((-1, 1))), 0), len(anchors) - 1)
    t = rng.uniform(0.0, 0.35)
    return (1 - t) * anchors[i] + t * anchors[j] + rng.normal(0, jitter, 3)


def sample_identity(rng: np.random.Generator) -> IdentityParams:
    """Draw one person. Uses a fixed number of draws from `rng` per call, whatever their values."""
    t = rng.uniform(0, len(_SKIN_TONES) - 1)
    i = min(int(t), len(_SKIN_TONES) - 2)
    skin = (1 - (t - i)) * _SKIN_TONES[i] + (t - i) * _SKIN_TONES[i + 1]
    skin = skin * rng.uniform(0.96, 1.04) + rng.normal(0, 4, 3) + np.array([4, 0, -4]) * rng.normal()
    lip = skin * np.array([0.8, 0.48, 0.5]) + np.array([34, 6, 12]) + rng.normal(0, 6, 3)

    hair_style = str(rng.choice(HAIR_STYLES, p=_HAIR_STYLE_P))
    hair = _palette(rng, _HAIR_COLOURS, _HAIR_COLOUR_P, 6)
    # brows are darker than the hair on most people; grey/white hair keeps darkish brows
    brow = np.minimum(hair * rng.uniform(0.55, 0.85), 110) if hair.mean() > 60 else hair * 0.9
    if hair_style == "bald":
        brow = _palette(rng, _HAIR_COLOURS[:3], None, 6)
    else:
        _palette(rng, _HAIR_COLOURS[:3], None, 6)  # keep the draw count fixed
    beard_style = str(rng.choice(BEARD_STYLES, p=_BEARD_P))

    eye_width = _u(rng, 0.17, 0.215)
    return IdentityParams(
        face_length=_u(rng, 1.3, 1.46),
        jaw_width=_u(rng, 0.66, 0.86),
        chin_width=_u(rng, 0.18, 0.34),
        hairline=-_u(rng, 0.92, 1.12),
        skin_rgb=_rgb(skin),
        lip_rgb=_rgb(lip),
        blush=_u(rng, 0.0, 1.0),
        hair_style=hair_style,
        hair_rgb=_rgb(hair),
        hair_volume=_u(rng, 0.06, 0.2),
        hair_parting=_u(rng, -1.0, 1.0),
        fringe=bool(rng.uniform() < 0.35),
        beard_style=beard_style,
        brow_rgb=_rgb(brow),
        iris_rgb=_rgb(_palette(rng, _IRIS_COLOURS, _IRIS_P, 5)),
        eye_spacing=_u(rng, 0.39, 0.46),
        eye_width=eye_width,
        eye_height=_u(rng, 0.36, 0.48),
        eye_tilt_deg=_u(rng, -3.0, 8.0),
        eye_y=_u(rng, -0.03, 0.03),
        iris_ratio=_u(rng, 0.44, 0.52),
        brow_gap=_u(rng, 0.25, 0.33),
        brow_thickness=_u(rng, 0.045, 0.085),
        brow_arch=_u(rng, 0.02, 0.07),
        brow_inner=_u(rng, 0.1, 0.17),
        brow_extent=_u(rng, 0.0, 0.08),
        nose_length=_u(rng, 0.48, 0.58),
        nose_width=_u(rng, 0.16, 0.23),
        nose_protrusion=_u(rng, 0.25, 0.4),
        mouth_y=_u(rng, 0.86, 0.96),
        mouth_width=_u(rng, 0.3, 0.38),
        upper_lip=_u(rng, 0.055, 0.085),
        lower_lip=_u(rng, 0.075, 0.115),
        ear_size=_u(rng, 0.9, 1.1),
        neck_width=_u(rng, 0.5, 0.64),
    )


def _sample_expression(rng: np.random.Generator, expression: str) -> dict[str, float]:
    """Expression intensities. Raised brows and an open mouth also occur outside their obvious
    classes so that the attributes are not copies of the expression label."""
    u = rng.uniform(size=8)  # fixed number of draws per call
    lerp = lambda lo, hi, x: float(lo + (hi - lo) * x)  # noqa: E731
    raise_extra = lerp(0.55, 0.9, u[5]) if u[4] < 0.25 else lerp(-0.1, 0.15, u[5])
    if expression == "neutral":
        return dict(smile=lerp(-0.1, 0.15, u[0]), mouth_open=lerp(0.25, 0.4, u[1]) if u[2] < 0.15 else 0.0,
                    eye_open=lerp(0.85, 1.05, u[3]), brow_raise=raise_extra, brow_furrow=0.0)
    if expression == "smile":
        return dict(smile=lerp(0.6, 1.0, u[0]), mouth_open=lerp(0.3, 0.6, u[1]) if u[2] < 0.55 else 0.0,
                    eye_open=lerp(0.6, 0.82, u[3]), brow_raise=raise_extra, brow_furrow=0.0)
    if expression == "surprise":
        return dict(smile=lerp(-0.1, 0.1, u[0]), mouth_open=lerp(0.6, 1.0, u[1]),
                    eye_open=lerp(1.18, 1.35, u[3]), brow_raise=lerp(0.8, 1.0, u[5]), brow_furrow=0.0)
    if expression == "eyes_closed":
        return dict(smile=lerp(-0.1, 0.3, u[0]), mouth_open=0.0, eye_open=0.0,
                    brow_raise=lerp(-0.15, 0.15, u[5]), brow_furrow=0.0)
    if expression == "frown":
        return dict(smile=lerp(-0.95, -0.5, u[0]), mouth_open=0.0, eye_open=lerp(0.68, 0.88, u[3]),
                    brow_raise=lerp(-0.9, -0.45, u[5]), brow_furrow=lerp(0.6, 1.0, u[6]))
    raise ValueError(f"unknown expression {expression!r}; expected one of {EXPRESSIONS}")


def _sample_background(rng: np.random.Generator) -> Background:
    kind = str(rng.choice(BACKGROUND_KINDS, p=(0.25, 0.3, 0.25, 0.2)))
    dark = rng.uniform() < 0.42
    lo, hi = (8, 85) if dark else (115, 245)
    base = rng.uniform(lo, hi)
    # mostly desaturated walls, sometimes a coloured one
    sat = rng.uniform(0, 0.5) if rng.uniform() < 0.7 else rng.uniform(0.5, 1.0)
    hue = rng.normal(0, 1, 3)
    hue = hue / (np.linalg.norm(hue) + 1e-9)
    rgb1 = base * (1 + 0.45 * sat * hue)
    rgb2 = rgb1 * rng.uniform(0.6, 1.4) + rng.normal(0, 12, 3)
    rgb2 = np.clip(rgb2, lo * 0.7, hi * 1.05)
    return Background(kind=kind, rgb1=_rgb(rgb1), rgb2=_rgb(rgb2), angle_deg=_u(rng, 0, 360),
                      texture_seed=int(rng.integers(0, 2**31 - 1)))


def background_luma(bg: Background) -> float:
    """Mean luminance (0..255) of the two background colours: what `dark_background` thresholds."""
    c = (np.asarray(bg.rgb1, float) + np.asarray(bg.rgb2, float)) / 2
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def sample_face_params(rng: np.random.Generator, identity_id: int, identity: IdentityParams,
                       *, max_roll_deg: float = 20.0, max_yaw: float = 0.35) -> FaceParams:
    """Draw one photograph of `identity`: expression, pose, light, accessories, background, camera."""
    if not 0 <= max_yaw <= 0.9:
        raise ValueError(f"max_yaw must be in [0, 0.9] (sine of the head turn), got {max_yaw}")
    if not 0 <= max_roll_deg <= 90:
        raise ValueError(f"max_roll_deg must be in [0, 90], got {max_roll_deg}")
    expression = str(rng.choice(EXPRESSIONS))
    expr = _sample_expression(rng, expression)

    lighting = str(rng.choice(LIGHTING_REGIMES, p=(0.2, 0.45, 0.35)))
    if lighting == "bright":
        light_intensity, ambient, exposure = _u(rng, 0.8, 1.0), _u(rng, 0.45, 0.55), _u(rng, 1.1, 1.22)
    elif lighting == "dim":
        light_intensity, ambient, exposure = _u(rng, 0.45, 0.65), _u(rng, 0.3, 0.42), _u(rng, 0.62, 0.8)
    else:
        light_intensity, ambient, exposure = _u(rng, 0.55, 0.8), _u(rng, 0.35, 0.48), _u(rng, 0.9, 1.05)
    warmth = _u(rng, -1, 1)
    light_rgb = (1.0 + 0.06 * warmth, 1.0, 1.0 - 0.08 * warmth)

    glasses = bool(rng.uniform() < 0.33)
    glasses_style = str(rng.choice(GLASSES_STYLES))
    glasses_rgb = _rgb(_FRAME_COLOURS[int(rng.integers(len(_FRAME_COLOURS)))] + rng.normal(0, 6, 3))
    lens_tint = _u(rng, 0.0, 0.3)

    occluded = rng.uniform() < 0.25
    occ_kind = str(rng.choice(OCCLUDER_KINDS))
    # where the occluder sits: lower face (mouth/chin), one cheek, or the forehead; never both eyes
    spot = int(rng.choice(3, p=(0.5, 0.3, 0.2)))
    side = float(rng.choice((-1.0, 1.0)))
    if spot == 0:
        ox, oy = _u(rng, -0.35, 0.35), _u(rng, 0.95, 1.3)
    elif spot == 1:
        ox, oy = side * _u(rng, 0.65, 0.95), _u(rng, 0.35, 0.8)
    else:
        ox, oy = _u(rng, -0.4, 0.4), _u(rng, -0.95, -0.7)
    occ_angle = _u(rng, -35, 35) + (90.0 if spot == 1 and occ_kind == "bar" else 0.0)
    occ_size = _u(rng, 0.45, 0.7)
    if occ_kind == "hand":
        occ_rgb = _rgb(np.asarray(identity.skin_rgb, float) * rng.uniform(0.94, 1.04) + rng.normal(0, 4, 3))
    else:
        occ_rgb = _rgb(rng.uniform(20, 235, 3))
    occlusion = Occlusion(occ_kind, ox, oy, occ_angle, occ_size, occ_rgb) if occluded else None

    clothing = _rgb(rng.uniform(15, 230) * (1 + 0.5 * rng.uniform(0, 1) * rng.normal(0, 0.6, 3)))
    background = _sample_background(rng)
    return FaceParams(
        identity_id=int(identity_id), identity=identity, expression=expression, **expr,
        roll_deg=_u(rng, -max_roll_deg, max_roll_deg),
        yaw=_u(rng, -max_yaw, max_yaw),
        scale=_u(rng, 0.82, 1.08),
        centre_dx=_u(rng, -0.05, 0.05),
        centre_dy=_u(rng, -0.04, 0.04),
        lighting=lighting,
        light_azimuth_deg=_u(rng, -180, 180),
        light_elevation=_u(rng, 0.45, 0.92),
        light_intensity=light_intensity, ambient=ambient, exposure=exposure,
        light_rgb=light_rgb,
        glasses=glasses, glasses_style=glasses_style, glasses_rgb=glasses_rgb, lens_tint=lens_tint,
        occlusion=occlusion,
        clothing_rgb=clothing,
        background=background,
        noise_sigma=_u(rng, 1.0, 6.0),
        blur_sigma=_u(rng, 0.0, 0.9),
        render_seed=int(rng.integers(0, 2**31 - 1)),
    )


def face_attributes(params: FaceParams) -> dict[str, bool]:
    """The binary attributes of a face, all derived from its parameters (so exact by construction)."""
    ident = params.identity
    return {
        "glasses": bool(params.glasses),
        "smiling": params.expression == "smile",
        "mouth_open": params.mouth_open > MOUTH_OPEN_THRESHOLD,
        "eyes_closed": params.expression == "eyes_closed",
        "brows_raised": params.brow_raise > BROW_RAISE_THRESHOLD,
        "occluded": params.occlusion is not None,
        "beard": ident.beard_style != "none",
        "long_hair": ident.hair_style == "long",
        "dark_background": background_luma(params.background) < DARK_BACKGROUND_LUMA,
        "bright_light": params.lighting == "bright",
        "head_turned": abs(params.yaw) > HEAD_TURNED_YAW,
    }
