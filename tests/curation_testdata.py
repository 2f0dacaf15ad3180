"""Inputs that the curation tests build for themselves: real photos shipped by installed packages,
procedural faces with ground-truth sidecars, and every kind of bad file a folder can hold."""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import zlib
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

PHOTO_RESOURCES = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "camera": ("skimage", "data/camera.png"),
}

ACCEPTED = "accepted"


def photo_bytes(name: str) -> bytes:
    package, resource = PHOTO_RESOURCES[name]
    return (resources.files(package) / resource).read_bytes()


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(photo_bytes(name))).convert("RGB"))


def photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a fresh copy."""
    return _photo(name).copy()


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **params) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@functools.lru_cache(maxsize=4)
def _faces(n: int, seed: int):
    from paco_fr.data.synthetic import generate_faces

    return tuple(generate_faces(n, seed=seed, size=192, n_identities=n))


def synthetic_faces(n: int, seed: int = 11):
    """n procedural faces of n different identities."""
    return _faces(n, seed)


def gt_record(face) -> dict:
    from paco_fr.data.synthetic import face_to_record

    record = face_to_record(face)
    record.pop("params", None)
    return {**record, "synthetic": True}


def write_face(folder: Path, stem: str, face, *, image: np.ndarray | Image.Image | None = None, fmt: str = "PNG",
               ext: str = "png", gt: bool = True, labels: bool = False, record: dict | None = None) -> Path:
    """A procedural face as an image file plus its sidecars; `image` replaces its pixels (a
    darkened or mode-converted version) while keeping its ground truth."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.{ext}"
    path.write_bytes(encode(face.image if image is None else image, fmt))
    if gt:
        (folder / f"{stem}.gt.json").write_text(json.dumps(record if record is not None else gt_record(face)))
    if labels:
        (folder / f"{stem}.labels.png").write_bytes(encode(Image.fromarray(face.label_map.astype(np.uint8), mode="L")))
    return path


def write_pts(path: Path, points: np.ndarray) -> Path:
    lines = ["version: 1", f"n_points: {len(points)}", "{", *(f"{x:.3f} {y:.3f}" for x, y in points), "}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=4)
def palette_bomb_png(width: int, height: int) -> bytes:
    """A real, valid, all-black palette PNG of width x height: the zeros compress ~1000:1, so a
    20000 x 20000 (400 megapixel) image is a ~400 KB file."""
    compressor = zlib.compressobj(1)
    row = b"\x00" * (width + 1)  # filter byte + one index per pixel
    parts = []
    rows_per_chunk = max(1, 4_000_000 // len(row))
    for start in range(0, height, rows_per_chunk):
        parts.append(compressor.compress(row * min(rows_per_chunk, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff")
            + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""))


def exif_rotated_jpeg(image: np.ndarray) -> bytes:
    """`image` stored rotated 90 degrees clockwise with EXIF Orientation 8 (rotate 90 CCW to view)."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(image, k=-1)))
    exif = Image.Exif()
    exif[0x0112] = 8
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def build_bad_input_folder(root: Path, outside: Path) -> dict[str, str]:
    """Fill `root` with one file (or link, or directory) per case; returns rel_path -> expected
    verdict ("accepted" or a reason code). Sidecars attached to an image are not listed.
    `outside` is a folder beside `root` for link targets outside the source."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    faces = synthetic_faces(16)

    # real photos, detected by MediaPipe
    (root / "astronaut.png").write_bytes(photo_bytes("astronaut"))
    expected["astronaut.png"] = ACCEPTED
    (root / "camera.png").write_bytes(photo_bytes("camera"))  # mode L photo
    expected["camera.png"] = ACCEPTED
    (root / "grace_exif.jpg").write_bytes(exif_rotated_jpeg(photo("grace_hopper")))
    expected["grace_exif.jpg"] = ACCEPTED

    # duplicates of astronaut.png (which sorts first)
    (root / "dups").mkdir()
    (root / "dups" / "astronaut_copy.png").write_bytes(photo_bytes("astronaut"))
    expected["dups/astronaut_copy.png"] = "duplicate"
    (root / "dups" / "astronaut_reencoded.png").write_bytes(encode(photo("astronaut"), "PNG", compress_level=1))
    expected["dups/astronaut_reencoded.png"] = "duplicate"
    (root / "dups" / "astronaut_q90.jpg").write_bytes(encode(photo("astronaut"), "JPEG", quality=90))
    expected["dups/astronaut_q90.jpg"] = "near_duplicate"

    # decoding failures
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    expected["bad/empty.jpg"] = "empty_file"
    jpeg = encode(photo("grace_hopper"), "JPEG", quality=90)
    (bad / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    expected["bad/truncated.jpg"] = "truncated"
    png = encode(photo("camera"), "PNG")
    (bad / "truncated.png").write_bytes(png[: len(png) // 2])
    expected["bad/truncated.png"] = "truncated"
    (bad / "random.png").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expected["bad/random.png"] = "corrupt"
    (bad / "text.png").write_text("this is not an image\n")
    expected["bad/text.png"] = "corrupt"
    (bad / "one_pixel.png").write_bytes(encode(np.zeros((1, 1, 3), np.uint8)))
    expected["bad/one_pixel.png"] = "too_small_image"
    (bad / "bomb_20000.png").write_bytes(palette_bomb_png(20000, 20000))
    expected["bad/bomb_20000.png"] = "too_large"

    # decodes, but no usable face
    (bad / "black.png").write_bytes(encode(np.zeros((256, 256, 3), np.uint8)))
    expected["bad/black.png"] = "no_face"
    (bad / "noise.png").write_bytes(encode(np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)))
    expected["bad/noise.png"] = "no_face"
    tiny = cv2.resize(photo("grace_hopper"), (48, 56), interpolation=cv2.INTER_AREA)  # face_size_px ~24
    (bad / "tiny_face.png").write_bytes(encode(tiny))
    expected["bad/tiny_face.png"] = "face_too_small"

    # procedural faces with ground truth: quality filters, independent of any detector
    quality = root / "quality"
    write_face(quality, "blurred", faces[0], image=cv2.GaussianBlur(faces[0].image, (0, 0), 6))
    expected["quality/blurred.png"] = "blurry"
    dark = (faces[1].image.astype(np.float32) * 0.06).astype(np.uint8)
    write_face(quality, "dark", faces[1], image=dark)
    expected["quality/dark.png"] = "too_dark"
    bright = (255 - (255 - faces[2].image.astype(np.float32)) * 0.06).astype(np.uint8)
    write_face(quality, "bright", faces[2], image=bright)
    expected["quality/bright.png"] = "too_bright"
    flat = (128 + (faces[3].image.astype(np.float32) - 128) * 0.08).astype(np.uint8)
    write_face(quality, "flat", faces[3], image=flat)
    expected["quality/flat.png"] = "low_contrast"
    degenerate = {**gt_record(faces[4]), "keypoints5": [[90.0, 90.0]] * 5}
    degenerate.pop("landmarks68")
    write_face(quality, "degenerate", faces[4], record=degenerate)
    expected["quality/degenerate.png"] = "alignment_failed"

    # odd pixel modes (ground truth sidecars, so only decoding is under test)
    modes = root / "modes"
    base = [Image.fromarray(f.image) for f in faces[5:11]]
    write_face(modes, "mode_L", faces[5], image=base[0].convert("L"))
    write_face(modes, "mode_LA", faces[6], image=base[1].convert("LA"))
    write_face(modes, "mode_P", faces[7], image=base[2].convert("P", palette=Image.Palette.ADAPTIVE, colors=256))
    write_face(modes, "mode_RGBA", faces[8], image=base[3].convert("RGBA"))
    write_face(modes, "mode_CMYK", faces[9], image=base[4].convert("CMYK"), fmt="JPEG", ext="jpg")
    grey16 = np.asarray(base[5].convert("L")).astype(np.uint16) * 257
    write_face(modes, "mode_I16", faces[10], image=Image.fromarray(grey16))
    for name in ("mode_L.png", "mode_LA.png", "mode_P.png", "mode_RGBA.png", "mode_CMYK.jpg", "mode_I16.png"):
        expected[f"modes/{name}"] = ACCEPTED

    # annotations
    notes = root / "annotated"
    write_face(notes, "with_labels", faces[11], labels=True)
    expected["annotated/with_labels.png"] = ACCEPTED
    write_face(notes, "with_pts", faces[12], gt=False)
    write_pts(notes / "with_pts.pts", faces[12].landmarks68)
    expected["annotated/with_pts.png"] = ACCEPTED
    write_face(notes, "bad_gt", faces[13], gt=False)
    (notes / "bad_gt.gt.json").write_text("{not json")
    expected["annotated/bad_gt.png"] = "bad_annotation"
    write_pts(notes / "orphan.pts", faces[12].landmarks68)
    expected["annotated/orphan.pts"] = "orphan_sidecar"

    # links, directories, special files, other files
    links = root / "links"
    links.mkdir()
    write_face(outside, "linked", faces[15])
    os.symlink(outside / "linked.png", links / "to_outside.png")
    os.symlink(outside / "linked.gt.json", links / "to_outside.gt.json")
    expected["links/to_outside.png"] = ACCEPTED
    os.symlink(root / "astronaut.png", links / "to_astronaut.png")
    expected["links/to_astronaut.png"] = "duplicate"
    os.symlink(root / "does_not_exist.png", links / "dangling.png")
    expected["links/dangling.png"] = "broken_link"
    os.symlink(links / "loop_b.png", links / "loop_a.png")
    os.symlink(links / "loop_a.png", links / "loop_b.png")
    expected["links/loop_a.png"] = "link_loop"
    expected["links/loop_b.png"] = "link_loop"
    os.symlink(outside, links / "to_dir.jpg")
    expected["links/to_dir.jpg"] = "directory_link"
    fake_dir = root / "folder.jpg"
    fake_dir.mkdir()
    expected["folder.jpg"] = "not_a_file"
    # inside the directory named like an image: an ordinary face, curated as usual
    (fake_dir / "inner.png").write_bytes(encode(faces[14].image))
    (fake_dir / "inner.gt.json").write_text(json.dumps(gt_record(faces[14])))
    expected["folder.jpg/inner.png"] = ACCEPTED
    os.mkfifo(root / "pipe.png")
    expected["pipe.png"] = "not_a_file"
    (root / "notes.txt").write_text("not an image")
    expected["notes.txt"] = "unsupported_format"
    return expected


def all_paths(root: Path) -> set[str]:
    """Every path under root (files, links, special files, and directories named like images),
    relative and POSIX: what the nothing-lost invariant quantifies over."""
    from paco_fr.data.sources import image_suffix, sidecar_kind

    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames:
            out.add((base / name).relative_to(root).as_posix())
        for name in dirnames:
            path = base / name
            if path.is_symlink() or image_suffix(name) or sidecar_kind(name):
                out.add(path.relative_to(root).as_posix())
    return out


# --------------------------------------------------------------------------------------------- #
# near-duplicate copies: what the near-duplicate check must catch


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encode(image, "JPEG", quality=quality))).convert("RGB"))


def copy_transforms(image: np.ndarray) -> dict[str, tuple[np.ndarray | Image.Image, np.ndarray, np.ndarray]]:
    """name -> (copy, scale, offset): a copy of `image` and how its pixel coordinates map from the
    original's (x' = x * scale + offset, per axis), to carry ground-truth landmarks along."""
    from PIL import ImageEnhance

    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    dy, dx = round(0.02 * h), round(0.02 * w)
    one, zero = np.ones(2), np.zeros(2)
    return {
        "jpeg_q50": (_jpeg(image, 50), one, zero),
        "mode_L": (pil.convert("L"), one, zero),
        "resized_0.5": (np.asarray(pil.resize((w // 2, h // 2), Image.Resampling.BILINEAR)),
                        np.array([(w // 2) / w, (h // 2) / h]), np.zeros(2)),
        "cropped_2pct": (image[dy:, dx:], one, -np.array([dx, dy], float)),
        "brightened": (np.asarray(ImageEnhance.Brightness(pil).enhance(1.2)), one, zero),
    }


def transformed_record(record: dict, scale: np.ndarray, offset: np.ndarray) -> dict:
    """A .gt.json record with its coordinates carried through a copy's resize and crop."""
    out = dict(record)
    for key in ("keypoints5", "landmarks68"):
        if record.get(key) is not None:
            out[key] = (np.asarray(record[key], float) * scale + offset).tolist()
    return out
