"""Reading corpus shards and writing/reading region-map shards (the face_regions layout of
docs/architecture.md). Region shards hold one `{face_id}.png` (mode L, REGIONS labels) per face and
are byte-for-byte reproducible: members sorted by name, mtime 0, uid/gid 0, no user names, ustar.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from paco_fr.io import atomic_path
from paco_fr.masks.regions import CorpusFace, FaceInputError
from paco_fr.masks.regions_def import REGIONS

CORPUS_SHARD_DIR = "shards"
CORPUS_SHARD_GLOB = "shard-*.tar"
REGION_SHARD_PREFIX = "regions-"


def corpus_shards(corpus_dir: str | os.PathLike[str]) -> list[Path]:
    """The finished shards of a corpus, sorted (partial ones are hidden files and never match)."""
    return sorted((Path(corpus_dir) / CORPUS_SHARD_DIR).glob(CORPUS_SHARD_GLOB))


def region_shard_name(corpus_shard: str | os.PathLike[str]) -> str:
    """`shard-000012.tar` -> `regions-000012.tar`."""
    name = Path(corpus_shard).name
    if not name.startswith("shard-") or not name.endswith(".tar"):
        raise ValueError(f"not a corpus shard name: {name}")
    return REGION_SHARD_PREFIX + name.removeprefix("shard-")


def read_shard_samples(shard: str | os.PathLike[str]) -> dict[str, dict[str, bytes]]:
    """{face_id: {extension: bytes}} of one corpus shard (its compressed bytes only: one shard at a
    time is what the stage holds). Extensions: `png`, `json`, `labels.png`."""
    samples: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(shard, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = Path(member.name).name.partition(".")
                handle = tar.extractfile(member)
                assert handle is not None
                samples.setdefault(key, {})[ext] = handle.read()
    except (tarfile.TarError, OSError) as exc:
        raise FaceInputError(f"{shard}: unreadable shard ({exc})") from exc
    return samples


def decode_face(face_id: str, members: Mapping[str, bytes]) -> CorpusFace:
    """A CorpusFace from one sample's members; a FaceInputError says what is missing or broken."""
    if "png" not in members:
        raise FaceInputError(f"{face_id}: no {face_id}.png crop in the shard")
    if "json" not in members:
        raise FaceInputError(f"{face_id}: no {face_id}.json in the shard")
    crop = _decode_png(members["png"], "RGB", f"{face_id}.png")
    try:
        meta = json.loads(members["json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FaceInputError(f"{face_id}.json: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise FaceInputError(f"{face_id}.json: expected an object, got {type(meta).__name__}")
    labels = _decode_png(members["labels.png"], "L", f"{face_id}.labels.png") if "labels.png" in members else None
    return CorpusFace(face_id=face_id, crop=crop, meta=meta, labels=labels)


def encode_label_map(labels: np.ndarray) -> bytes:
    from PIL import Image  # noqa: PLC0415

    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"a label map is (H, W) uint8, got {labels.dtype} {labels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(labels, mode="L").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_region_shard(path: str | os.PathLike[str], label_maps: Mapping[str, np.ndarray]) -> Path:
    """Write `{face_id}.png` for each label map into a tar, atomically and reproducibly."""
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for face_id in sorted(label_maps):
                data = encode_label_map(label_maps[face_id])
                info = tarfile.TarInfo(f"{face_id}.png")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return Path(path)


def iter_region_shard(path: str | os.PathLike[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(face_id, (S, S) uint8 label map) for each face of a region shard, streaming."""
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".png"):
                handle = tar.extractfile(member)
                assert handle is not None
                face_id = Path(member.name).name.removesuffix(".png")
                yield face_id, _decode_png(handle.read(), "L", member.name)


def load_region_maps(regions_dir: str | os.PathLike[str], face_ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """Label maps by face id from a face_regions directory (all of them, or only `face_ids`)."""
    wanted = set(face_ids) if face_ids is not None else None
    out: dict[str, np.ndarray] = {}
    for shard in sorted(Path(regions_dir).glob(f"{REGION_SHARD_PREFIX}*.tar")):
        for face_id, labels in iter_region_shard(shard):
            if wanted is None or face_id in wanted:
                out[face_id] = labels
    return out


def _decode_png(data: bytes, mode: str, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if mode == "L" and image.mode not in ("L", "P"):
                raise FaceInputError(f"{where}: a label map must be a single-channel PNG, got mode {image.mode}")
            # a palette label map stores the labels as palette indices: keep them, not their colours
            keep = image.mode == mode or (mode == "L" and image.mode == "P")
            array = np.asarray(image if keep else image.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FaceInputError(f"{where}: not a decodable PNG ({exc})") from exc
    if mode == "L" and int(array.max(initial=0)) >= len(REGIONS):
        raise FaceInputError(f"{where}: labels outside 0..{len(REGIONS) - 1}")
    return array
