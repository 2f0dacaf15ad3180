"""A chunk of a partition on disk: what one worker writes for a fixed slice of inputs.

    PART/chunks/chunk-NNNNNN.tar            faces' members ({face_id}.png, .json, .labels.png)
    PART/chunks/chunk-NNNNNN.faces.parquet  candidate faces (PART_FACES_SCHEMA: rows + member offsets)
    PART/chunks/chunk-NNNNNN.inputs.parquet every input of the chunk (PART_INPUTS_SCHEMA)
    PART/chunks/chunk-NNNNNN.json           the completion marker, written last: fingerprint, counts

Each file is written under a temporary name and renamed; the marker names the chunk's fingerprint
(its inputs as discovered + the settings that change a chunk + the curation code) and the tar's size,
so a chunk is reused only when it is complete and describes the same inputs, settings and code.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from paco_fr.data.config import CurationConfig
from paco_fr.data.manifest import PART_FACES_SCHEMA, PART_INPUTS_SCHEMA, table_from_rows
from paco_fr.data.process import InputOut
from paco_fr.data.shards import WRITE_BUFFER, _tar_info
from paco_fr.data.sources import SourceItem, fingerprint
from paco_fr.io import atomic_path, read_json, write_json_atomic

CHUNK_DIR = "chunks"
CHUNK_VERSION = 1
# Settings the merge alone uses: changing them re-merges but never re-curates a chunk.
MERGE_ONLY = ("source", "preview_faces", "shard_size", "partitions", "chunk_inputs", "order_seed", "builtin",
              "near_duplicate", "split")
_MEMBER_COLUMN = {"png": "png", "json": "json", "labels.png": "labels"}


def settings_hash(cfg: CurationConfig) -> str:
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in MERGE_ONLY}
    payload = json.dumps({"chunk": CHUNK_VERSION, "cfg": settings, "code": code_hash()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@functools.cache
def code_hash() -> str:
    """The curation code (this package's sources, what DVC's curate_part stage depends on): DVC re-runs
    the stage when it changes, and the stage must then not reuse chunks the old code wrote."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def chunk_fingerprint(settings: str, items: list[SourceItem], *, inputs: str | None = None) -> str:
    """`inputs`: the items' `fingerprint`, when the caller has it already."""
    return hashlib.sha256(f"{settings}\0{inputs or fingerprint(items)}".encode()).hexdigest()


def chunk_stem(index: int) -> str:
    return f"chunk-{index:06d}"


def chunk_is_done(part_dir: Path, index: int, fingerprint_: str) -> bool:
    base = part_dir / CHUNK_DIR / chunk_stem(index)
    try:
        marker = read_json(base.with_suffix(".json"))
        return (marker.get("fingerprint") == fingerprint_ and base.with_suffix(".tar").stat().st_size == marker["tar_bytes"]
                and base.with_name(base.name + ".faces.parquet").is_file()
                and base.with_name(base.name + ".inputs.parquet").is_file())
    except (OSError, ValueError, KeyError):
        return False


def remove_chunk(part_dir: Path, index: int) -> None:
    base = part_dir / CHUNK_DIR / chunk_stem(index)
    base.with_suffix(".json").unlink(missing_ok=True)  # the marker first: never a marker without its files
    for suffix in (".tar", ".faces.parquet", ".inputs.parquet"):
        base.with_name(base.name + suffix).unlink(missing_ok=True)


class ChunkWriter:
    """Streams a chunk's faces into its tar (recording where each member's bytes lie) and its rows
    into memory (a chunk is small), then publishes the four files, the marker last."""

    def __init__(self, part_dir: Path, index: int) -> None:
        self.dir = part_dir / CHUNK_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stem = chunk_stem(index)
        self._tar_ctx = atomic_path(self.dir / f"{self.stem}.tar")
        tmp = self._tar_ctx.__enter__()
        self._file = open(tmp, "wb", buffering=WRITE_BUFFER)
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        self.inputs: list[dict[str, Any]] = []
        self.faces: list[dict[str, Any]] = []

    def write(self, outcome: InputOut) -> None:
        self.inputs.append(outcome.row)
        for face in outcome.faces:
            members = face.members
            assert isinstance(members, dict)
            row = {**face.row, "chunk": f"{CHUNK_DIR}/{self.stem}.tar"}
            for ext in sorted(members):
                data = members[ext]
                start = self._tar.offset
                self._tar.addfile(_tar_info(f"{row['face_id']}.{ext}", len(data)), io.BytesIO(data))
                row[f"{_MEMBER_COLUMN[ext]}_offset"] = start + tarfile.BLOCKSIZE  # one ustar header block
                row[f"{_MEMBER_COLUMN[ext]}_size"] = len(data)
            self.faces.append(row)

    def finish(self, fingerprint_: str) -> None:
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._tar_ctx.__exit__(None, None, None)
        tar_bytes = (self.dir / f"{self.stem}.tar").stat().st_size
        import pyarrow.parquet as pq  # noqa: PLC0415

        for name, rows, schema in (("faces", self.faces, PART_FACES_SCHEMA), ("inputs", self.inputs, PART_INPUTS_SCHEMA)):
            with atomic_path(self.dir / f"{self.stem}.{name}.parquet") as tmp:
                pq.write_table(table_from_rows(rows, schema), tmp)
        write_json_atomic(self.dir / f"{self.stem}.json", {
            "version": CHUNK_VERSION, "fingerprint": fingerprint_, "inputs": len(self.inputs),
            "faces": len(self.faces), "rejected": sum(r["reason"] is not None for r in self.inputs),
            "tar_bytes": tar_bytes})

    def abort(self) -> None:
        try:
            self._tar.close()
            self._file.close()
        finally:
            self._tar_ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
