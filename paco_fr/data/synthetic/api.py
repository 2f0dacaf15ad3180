"""The generator's public entry points: render one face, stream many, turn one into a record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .geometry import build_scene
from .params import (
    BACKGROUND_KINDS, BEARD_STYLES, EXPRESSIONS, GLASSES_STYLES, HAIR_STYLES, LIGHTING_REGIMES, OCCLUDER_KINDS,
    Background, FaceParams, IdentityParams, Occlusion, face_attributes, sample_face_params, sample_identity,
)
from .raster import Projector, draw_details, draw_scene, shade_and_compose

# Stream tags: identities and faces draw from independent, position-addressed random streams, so
# face i never depends on how many faces or identities come before or after it.
_IDENTITY_STREAM = 0x1D
_FACE_STREAM = 0xFACE
MIN_SIZE = 32
MAX_SIZE = 2048  # the 3x drawing canvas of a 2048 px face is already ~150 MB


@dataclass
class SyntheticFace:
    image: np.ndarray         # (S, S, 3) uint8 RGB
    keypoints5: np.ndarray    # (5, 2) float32 (x, y): left eye, right eye, nose tip, left/right mouth corner
    landmarks68: np.ndarray   # (68, 2) float32, iBUG 300-W order
    label_map: np.ndarray     # (S, S) uint8, REGIONS labels at each pixel centre
    attributes: dict[str, bool]
    expression: str
    identity: int
    params: FaceParams


def validate_params(params: FaceParams) -> None:
    """Raise ValueError naming the first field that cannot be rendered (hand-made params)."""
    if not isinstance(params, FaceParams):
        raise TypeError(f"expected FaceParams, got {type(params).__name__}")
    ident = params.identity
    if not isinstance(ident, IdentityParams):
        raise TypeError(f"FaceParams.identity must be IdentityParams, got {type(ident).__name__}")
    choices = [("expression", params.expression, EXPRESSIONS), ("lighting", params.lighting, LIGHTING_REGIMES),
               ("glasses_style", params.glasses_style, GLASSES_STYLES),
               ("background.kind", params.background.kind, BACKGROUND_KINDS),
               ("identity.hair_style", ident.hair_style, HAIR_STYLES),
               ("identity.beard_style", ident.beard_style, BEARD_STYLES)]
    if params.occlusion is not None:
        choices.append(("occlusion.kind", params.occlusion.kind, OCCLUDER_KINDS))
    for name, value, allowed in choices:
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {allowed}")
    ranges = [("yaw", params.yaw, -0.95, 0.95), ("scale", params.scale, 0.2, 3.0),
              ("eye_open", params.eye_open, 0.0, 1.5), ("mouth_open", params.mouth_open, 0.0, 1.0),
              ("smile", params.smile, -1.0, 1.0), ("light_elevation", params.light_elevation, 0.0, 1.0),
              ("noise_sigma", params.noise_sigma, 0.0, 64.0), ("blur_sigma", params.blur_sigma, 0.0, 8.0),
              ("exposure", params.exposure, 0.05, 4.0)]
    for name, value, lo, hi in ranges:
        if not (isinstance(value, (int, float)) and lo <= value <= hi):
            raise ValueError(f"{name}={value!r} is outside [{lo}, {hi}]")


def render_face(params: FaceParams, size: int = 192) -> SyntheticFace:
    """Draw one face. A pure function of (params, size)."""
    validate_params(params)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an int in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {size!r}")
    size = int(size)
    scene = build_scene(params)
    proj = Projector(params, size)
    albedo, codes_big = draw_scene(scene, proj)
    details = draw_details(scene, proj)
    image, codes = shade_and_compose(params, proj, albedo, codes_big, details)
    lm = proj(scene.landmarks68).astype(np.float32)
    eyes = proj(np.concatenate([scene.eye_centres, np.full((2, 1), -0.03)], axis=1)).astype(np.float32)
    kp5 = np.stack([eyes[0], eyes[1], lm[30], lm[48], lm[54]])
    return SyntheticFace(image=image, keypoints5=kp5, landmarks68=lm, label_map=codes & 15,
                         attributes=face_attributes(params), expression=params.expression,
                         identity=params.identity_id, params=params)


def identity_params(seed: int, identity_id: int) -> IdentityParams:
    """The person with global id `identity_id` under `seed` (independent of every other identity)."""
    return sample_identity(np.random.default_rng([_IDENTITY_STREAM, int(seed), int(identity_id)]))


def identity_table(seed: int, n_identities: int, identity_offset: int = 0) -> list[IdentityParams]:
    return [identity_params(seed, identity_offset + j) for j in range(n_identities)]


def generate_params(n: int, *, seed: int, n_identities: int | None = None, identity_offset: int = 0,
                    max_roll_deg: float = 20.0, max_yaw: float = 0.35) -> Iterator[FaceParams]:
    """The parameters `generate_faces` renders, without rendering them (cheap: ~0.4 ms each).
    `max_roll_deg` / `max_yaw` widen or narrow the pose range (defaults = generate_faces's)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if n_identities is not None and (not isinstance(n_identities, (int, np.integer)) or n_identities < 1):
        raise ValueError(f"n_identities must be an int >= 1 or None, got {n_identities!r}")
    if not isinstance(identity_offset, (int, np.integer)) or identity_offset < 0:
        raise ValueError(f"identity_offset must be an int >= 0, got {identity_offset!r}")
    cache: dict[int, IdentityParams] = {}
    for i in range(int(n)):
        ident_id = int(identity_offset) + (i if n_identities is None else i % int(n_identities))
        ident = cache.get(ident_id)
        if ident is None:
            ident = identity_params(seed, ident_id)
            if n_identities is not None and len(cache) < 100_000:
                cache[ident_id] = ident
        rng = np.random.default_rng([_FACE_STREAM, int(seed), int(identity_offset), i])
        yield sample_face_params(rng, ident_id, ident, max_roll_deg=max_roll_deg, max_yaw=max_yaw)


def generate_faces(n: int, *, seed: int, size: int = 192, n_identities: int | None = None,
                   identity_offset: int = 0) -> Iterator[SyntheticFace]:
    """Stream `n` faces. Face i shows identity `identity_offset + i % n_identities` (one identity per
    face when n_identities is None) and depends only on (seed, i, identity_offset, n_identities), so
    a shorter run is a prefix of a longer one."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an int in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {size!r}")
    for params in generate_params(n, seed=seed, n_identities=n_identities, identity_offset=identity_offset):
        yield render_face(params, size)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def face_to_record(face: SyntheticFace) -> dict:
    """JSON-safe ground truth of one face (no pixels)."""
    return {
        "identity": int(face.identity),
        "expression": face.expression,
        "attributes": {k: bool(v) for k, v in face.attributes.items()},
        "keypoints5": face.keypoints5.astype(float).round(3).tolist(),
        "landmarks68": face.landmarks68.astype(float).round(3).tolist(),
        "size": int(face.image.shape[0]),
        "params": _plain(face.params),
    }


def params_from_dict(d: dict) -> FaceParams:
    """Inverse of `face_to_record(face)["params"]`: rebuild FaceParams to re-render a recorded face."""
    try:
        ident = IdentityParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["identity"].items()})
        occ = d.get("occlusion")
        occlusion = None if occ is None else Occlusion(**{k: tuple(v) if isinstance(v, list) else v
                                                          for k, v in occ.items()})
        bg = Background(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["background"].items()})
        rest = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
                if k not in ("identity", "occlusion", "background")}
        params = FaceParams(identity=ident, occlusion=occlusion, background=bg, **rest)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a FaceParams record: {exc}") from exc
    validate_params(params)
    return params
