"""The builtin raw corpus, materialised as an ordinary image folder (the `raw` stage).

`write_builtin_raw(cfg, out_dir)` writes:

    out_dir/photos/        public-domain face photos shipped by installed packages, byte for byte
    out_dir/synthetic/     {stem}.png procedural faces, {stem}.gt.json ground truth (keypoints5,
                           landmarks68, attributes, expression, identity, "synthetic": true) and
                           {stem}.labels.png region label maps
    out_dir/README.txt     what this folder is
    out_dir/SOURCES.json   provenance and licence of every photo, the generator settings

Deterministic (same bytes on every run: photos are copied, PNGs carry no timestamps, JSON is
sorted), atomic (built in a temporary folder beside `out_dir`, renamed into place) and idempotent
(an existing folder written with the same settings and generator code is left as it is).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from paco_fr.data.config import BuiltinSourceConfig
from paco_fr.io import atomic_dir, read_json

MARKER = "paco-fr builtin raw corpus"
SOURCES_FILE = "SOURCES.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PhotoSpec:
    file_name: str      # name under photos/
    package: str        # the Python package that ships it
    resource: str       # path inside that package
    subject: str
    licence: str
    origin: str


# Real face photos shipped by installed packages. skimage's lfw_subset (25 x 25 faces) is kept out:
# evaluation uses it, and a face must not be both pre-training and test data.
BUILTIN_PHOTOS: tuple[PhotoSpec, ...] = (
    PhotoSpec("astronaut.png", "skimage", "data/astronaut.png",
              subject="Eileen Collins, NASA astronaut (portrait)",
              licence="public domain (NASA; 'no known copyright restrictions', per scikit-image)",
              origin="NASA Great Images database, https://flic.kr/p/r9qvLn, via scikit-image skimage.data.astronaut"),
    PhotoSpec("grace_hopper.jpg", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
              subject="Rear Admiral Grace Hopper (portrait)",
              licence="public domain (official U.S. Navy photograph)",
              origin="U.S. Navy, via matplotlib's sample_data/grace_hopper.jpg"),
    PhotoSpec("camera.png", "skimage", "data/camera.png",
              subject="a photographer behind a camera (greyscale; small, partly turned face)",
              licence="CC0 (Lav Varshney), per scikit-image",
              origin="scikit-image skimage.data.camera"),
)


def _photo_bytes(spec: PhotoSpec) -> bytes | None:
    try:
        return (resources.files(spec.package) / spec.resource).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


def _generator_fingerprint() -> str:
    """Hash of the generator's source: regenerate when the code that draws the faces changes."""
    digest = hashlib.sha256()
    package = resources.files("paco_fr.data.synthetic")
    for entry in sorted(package.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".py"):
            digest.update(entry.name.encode())
            digest.update(entry.read_bytes())
    return digest.hexdigest()


def _png_bytes(array: Any, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def builtin_settings(cfg: BuiltinSourceConfig) -> dict[str, Any]:
    """What decides the folder's content; equal settings mean equal bytes."""
    return {
        "format_version": FORMAT_VERSION,
        "config": asdict(cfg),
        "generator_sha256": _generator_fingerprint() if cfg.n_synthetic > 0 else None,
        "photos": [spec.file_name for spec in BUILTIN_PHOTOS] if cfg.photos else [],
    }


def is_builtin_raw(out_dir: str | os.PathLike[str]) -> bool:
    sources = Path(out_dir) / SOURCES_FILE
    try:
        return read_json(sources).get("kind") == MARKER
    except (OSError, ValueError, AttributeError):
        return False


def write_builtin_raw(cfg: BuiltinSourceConfig, out_dir: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """Materialise the builtin corpus into `out_dir` (see module doc). Returns `out_dir`.

    Refuses to replace a non-empty folder that is not a builtin corpus (your own images)."""
    out_dir = Path(out_dir)
    if cfg.n_synthetic < 0:
        raise ValueError(f"n_synthetic must be >= 0, got {cfg.n_synthetic}")
    if cfg.n_synthetic > 0 and cfg.n_identities < 1:
        raise ValueError(f"n_identities must be >= 1, got {cfg.n_identities}")
    settings = builtin_settings(cfg)
    if out_dir.exists():
        if is_builtin_raw(out_dir):
            if read_json(out_dir / SOURCES_FILE).get("settings") == settings:
                return out_dir
        elif not out_dir.is_dir() or any(out_dir.iterdir()):
            raise FileExistsError(f"{out_dir} exists and is not a builtin raw corpus (no {SOURCES_FILE} "
                                  f"with kind={MARKER!r}); refusing to overwrite it. Pick another --raw-dir.")

    with atomic_dir(out_dir) as tmp:
        photos = _write_photos(tmp / "photos") if cfg.photos else []
        synthetic = _write_synthetic(cfg, tmp / "synthetic", progress=progress) if cfg.n_synthetic > 0 else None
        (tmp / "README.txt").write_text(_readme(cfg, photos), encoding="utf-8")
        sources = {"kind": MARKER, "settings": settings, "photos": photos, "synthetic": synthetic}
        # Written last: its presence marks a complete folder.
        (tmp / SOURCES_FILE).write_text(json.dumps(sources, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def _write_photos(folder: Path) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for spec in BUILTIN_PHOTOS:
        data = _photo_bytes(spec)
        record = {"file": f"photos/{spec.file_name}", "package": spec.package, "resource": spec.resource,
                  "subject": spec.subject, "licence": spec.licence, "origin": spec.origin, "synthetic": False}
        if data is None:
            record["missing"] = f"{spec.package} does not ship {spec.resource} in this environment"
        else:
            (folder / spec.file_name).write_bytes(data)
            record["sha256"] = hashlib.sha256(data).hexdigest()
            record["bytes"] = len(data)
        records.append(record)
    return records


def _write_synthetic(cfg: BuiltinSourceConfig, folder: Path, *, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm  # noqa: PLC0415

    from paco_fr.data.synthetic import face_to_record, generate_faces  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    faces = generate_faces(cfg.n_synthetic, seed=cfg.seed, size=cfg.render_size, n_identities=cfg.n_identities)
    for i, face in enumerate(tqdm(faces, total=cfg.n_synthetic, desc="builtin: rendering faces",
                                  unit="face", disable=not progress)):
        stem = f"face-{i:06d}"
        record = {**face_to_record(face), "synthetic": True}
        (folder / f"{stem}.png").write_bytes(_png_bytes(face.image))
        (folder / f"{stem}.labels.png").write_bytes(_png_bytes(face.label_map.astype("uint8"), mode="L"))
        (folder / f"{stem}.gt.json").write_text(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n",
                                                encoding="utf-8")
    return {
        "files": "synthetic/face-NNNNNN.png (+ .gt.json ground truth, + .labels.png region labels)",
        "count": cfg.n_synthetic, "identities": min(cfg.n_identities, cfg.n_synthetic), "seed": cfg.seed,
        "render_size": cfg.render_size, "generator": "paco_fr.data.synthetic.generate_faces",
        "licence": "generated by this project; no real person is depicted",
    }


def _readme(cfg: BuiltinSourceConfig, photos: list[dict[str, Any]]) -> str:
    lines = [
        "PaCo-FR builtin raw corpus (written by `paco-fr raw`; do not edit, it is regenerated).",
        "",
        "photos/     real, public-domain or CC0 face photographs shipped by installed Python packages:",
    ]
    for record in photos:
        state = "MISSING in this environment" if "missing" in record else record["licence"]
        lines.append(f"  {record['file']}: {record['subject']} -- {state}; {record['origin']}")
    if not photos:
        lines.append("  (disabled: curation.builtin.photos is false)")
    lines += [
        "synthetic/  procedural faces drawn by paco_fr.data.synthetic "
        f"({cfg.n_synthetic} faces, {cfg.n_identities} identities, seed {cfg.seed}, {cfg.render_size} px).",
        "            They are SYNTHETIC: every report labels them so. Each face-NNNNNN.png has its exact",
        "            ground truth beside it (.gt.json) and its region label map (.labels.png).",
        "",
        "SOURCES.json lists the provenance and licence of every file, and the settings that produced them.",
    ]
    return "\n".join(lines) + "\n"
