"""The merge's global decisions, made on narrow arrays: which inputs are rejected (and why), which
faces are accepted, their splits and their place in the corpus's shard order.

    decide(cfg, part_dirs, batch_rows=...) -> Decisions

Nothing here holds a Python object per input or face. Strings live in Arrow arrays (the sorted
relative paths, one contiguous buffer), hashes become fixed-width codes (dictionary indices for
sha256 equality, (n, 32) uint8 for perceptual hashes), and everything else is an integer array in
canonical order (inputs by relative path, faces by rank within their image). Strings that only
messages need (the path a duplicate copies) are looked up when a verdict is written. What the
corpus's rows hold is never read here: the writer gathers it afterwards (paco_fr.data.gather).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paco_fr.data.config import CurationConfig
from paco_fr.data.dedup import BinaryHashIndex, hex_codes
from paco_fr.data.partition import PART_FACES, PART_INPUTS
from paco_fr.data.process import compose_detail
from paco_fr.data.reasons import Reason
from paco_fr.data.splits import split_codes

SAME_FILE, SAME_PIXELS = 1, 2  # Verdicts.copy_kind: an exact duplicate of Verdicts.copy_of
_COPY_DETAIL = {SAME_FILE: "same file bytes as ", SAME_PIXELS: "same decoded pixels as "}


@dataclass
class Verdicts:
    """Every input's final verdict, in canonical (relative path) order."""

    paths: pa.Array                 # relative paths, sorted
    part: np.ndarray                # partition of each input (int32)
    row: np.ndarray                 # its row in that partition's inputs.parquet (int64)
    reason: np.ndarray              # index into `reasons`, -1 when accepted (int32)
    reasons: list[str]
    copy_of: np.ndarray             # exact duplicates: the input they copy (int64, -1)
    copy_kind: np.ndarray           # SAME_FILE or SAME_PIXELS (int8, 0)
    details: dict[int, str] = field(default_factory=dict)  # verdicts of the near-duplicate pass

    def code(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self.reasons.index(reason)

    def detail(self, position: int) -> str | None:
        """The new detail of input `position`, or None to keep its partition's."""
        if self.copy_kind[position]:
            return _COPY_DETAIL[int(self.copy_kind[position])] + self.paths[int(self.copy_of[position])].as_py()
        return self.details.get(position)


@dataclass
class Decisions:
    verdicts: Verdicts
    rejected_dest: list[np.ndarray]  # per partition: row of inputs.parquet -> row of rejected.parquet, or -1
    face_dest: list[np.ndarray]      # per partition: row of faces.parquet -> row of manifest.parquet, or -1
    split: np.ndarray                # per manifest row: index into paco_fr.data.splits.SPLITS (int8)
    face_rejections: Counter         # reasons of faces dropped inside accepted inputs
    n_faces: int = 0

    @property
    def n_inputs(self) -> int:
        return len(self.verdicts.reason)

    @property
    def rejected_positions(self) -> np.ndarray:
        """Canonical positions of the rejected inputs, i.e. rejected.parquet's rows."""
        return np.flatnonzero(self.verdicts.reason >= 0)


def decide(cfg: CurationConfig, part_dirs: Sequence[Path], *, batch_rows: int) -> Decisions:
    verdicts, failures, file_codes, pixel_codes = _read_inputs(part_dirs)
    _exact_duplicates(verdicts, file_codes, pixel_codes)
    del file_codes, pixel_codes
    faces = _read_faces(part_dirs, verdicts.paths)
    accepted, dropped = _near_duplicates(cfg, verdicts, failures, faces)
    del failures
    rejected = verdicts.reason >= 0
    rejected_dest = _destinations(verdicts.part, verdicts.row, np.flatnonzero(rejected),
                                  [_rows(d / PART_INPUTS) for d in part_dirs])
    kept = np.flatnonzero(accepted)
    part, row = faces.part[kept], faces.row[kept]
    del faces, accepted
    split = _splits(cfg, part_dirs, part, row)
    order = _shard_order(cfg, part_dirs, part, row, batch_rows=batch_rows)
    face_dest = _destinations(part, row, order, [_rows(d / PART_FACES) for d in part_dirs])
    return Decisions(verdicts=verdicts, rejected_dest=rejected_dest, face_dest=face_dest, split=split[order],
                     face_rejections=dropped, n_faces=len(order))


def _rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def _column(paths: Sequence[Path], name: str) -> pa.Array:
    """One column of every partition's table, concatenated (partition order)."""
    chunks = [chunk for p in paths for chunk in pq.read_table(p, columns=[name]).column(0).chunks]
    return pa.chunked_array(chunks, type=pq.read_schema(paths[0]).field(name).type).combine_chunks()


def _codes(values: pa.Array) -> np.ndarray:
    """Equal strings -> equal int32 codes, null -> -1 (a dictionary encoding, kept without its values)."""
    return pc.dictionary_encode(values).indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)


# --------------------------------------------------------------------------------------------- #
# inputs


def _read_inputs(part_dirs: Sequence[Path]) -> tuple[Verdicts, dict[int, str], np.ndarray, np.ndarray]:
    """Every input's partition verdict in canonical order; the non-null face_failures (JSON of the
    faces dropped inside an image) by canonical position; codes of source_sha256 and pixel_sha256."""
    files = [d / PART_INPUTS for d in part_dirs]
    sizes = [_rows(f) for f in files]
    paths = _column(files, "source_path")
    order = pc.sort_indices(paths).to_numpy()  # paths are unique: no tie
    paths = paths.take(pa.array(order))
    part = np.repeat(np.arange(len(files), dtype=np.int32), sizes)[order]
    row = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes] or [np.zeros(0, np.int64)])[order]
    encoded = pc.dictionary_encode(_column(files, "reason"))
    reason = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)[order]
    verdicts = Verdicts(paths=paths, part=part, row=row, reason=reason, reasons=encoded.dictionary.to_pylist(),
                        copy_of=np.full(len(order), -1, np.int64), copy_kind=np.zeros(len(order), np.int8))
    file_codes = _codes(_column(files, "source_sha256"))[order]
    pixel_codes = _codes(_column(files, "pixel_sha256"))[order]
    failures = _column(files, "face_failures")
    where = np.flatnonzero(failures.is_valid().to_numpy(zero_copy_only=False))
    canonical = np.empty(len(order), np.int64)
    canonical[order] = np.arange(len(order))
    failures_by_input = dict(zip(canonical[where].tolist(), failures.take(pa.array(where)).to_pylist()))
    return verdicts, failures_by_input, file_codes, pixel_codes


def _first_of(codes: np.ndarray) -> np.ndarray:
    """For each position, the first position holding the same code (-1 where the code is -1)."""
    first = np.full(len(codes), -1, np.int64)
    valid = np.flatnonzero(codes >= 0)
    _, index, inverse = np.unique(codes[valid], return_index=True, return_inverse=True)
    first[valid] = valid[index[inverse.ravel()]]
    return first


def _exact_duplicates(verdicts: Verdicts, file_codes: np.ndarray, pixel_codes: np.ndarray) -> None:
    """Mark later copies (same file bytes, else same decoded pixels) of an earlier input."""
    everyone = np.arange(len(verdicts.reason))
    first_file = _first_of(file_codes)
    file_dup = (first_file >= 0) & (first_file != everyone)
    first_pixels = _first_of(np.where(file_dup, -1, pixel_codes))
    pixel_dup = (first_pixels >= 0) & (first_pixels != everyone)
    duplicate = verdicts.code(Reason.DUPLICATE.value)
    for mask, first, kind in ((file_dup, first_file, SAME_FILE), (pixel_dup, first_pixels, SAME_PIXELS)):
        verdicts.reason[mask] = duplicate
        verdicts.copy_of[mask] = first[mask]
        verdicts.copy_kind[mask] = kind


# --------------------------------------------------------------------------------------------- #
# faces


@dataclass
class _Faces:
    """Every candidate face in canonical order: (input, rank)."""

    part: np.ndarray    # int32
    row: np.ndarray     # row in the partition's faces.parquet (int64)
    input: np.ndarray   # canonical position of its input (int64)
    rank: np.ndarray    # face_index (int64)
    codes: np.ndarray   # (n, 32) uint8 face perceptual hashes
    image_codes: np.ndarray  # (n, 32) uint8 perceptual hash of the face's image


def _read_faces(part_dirs: Sequence[Path], paths: pa.Array) -> _Faces:
    files = [d / PART_FACES for d in part_dirs]
    sizes = [_rows(f) for f in files]
    inputs = pc.index_in(_column(files, "source_path"), value_set=paths)
    if inputs.null_count:
        raise ValueError("a partition's faces.parquet names an input that no inputs.parquet holds")
    inputs = inputs.to_numpy(zero_copy_only=False).astype(np.int64)
    rank = _column(files, "face_index").to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.lexsort((rank, inputs))
    part = np.repeat(np.arange(len(files), dtype=np.int32), sizes)[order]
    row = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes] or [np.zeros(0, np.int64)])[order]
    return _Faces(part=part, row=row, input=inputs[order], rank=rank[order],
                  codes=hex_codes(_column(files, "phash"))[order],
                  image_codes=hex_codes(_column(files, "image_phash"))[order])


def _near_duplicates(cfg: CurationConfig, verdicts: Verdicts, failures: dict[int, str],
                     faces: _Faces) -> tuple[np.ndarray, Counter]:
    """Accept faces in canonical order unless an earlier accepted face or image is near; update the
    verdicts of inputs left without a face. Returns (accepted mask over `faces`, reasons of faces
    dropped inside accepted inputs)."""
    nd = cfg.near_duplicate
    face_index, image_index = BinaryHashIndex(nd.face_bits), BinaryHashIndex(nd.image_bits)
    accepted = np.zeros(len(faces.input), dtype=bool)
    dropped: Counter[str] = Counter()
    n = len(faces.input)
    starts = np.flatnonzero(np.r_[True, faces.input[1:] != faces.input[:-1]]) if n else np.zeros(0, np.int64)

    def path_of(face: int) -> str:
        return verdicts.paths[int(faces.input[face])].as_py()

    for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), n]):
        position = int(faces.input[start])
        if verdicts.reason[position] >= 0:
            continue
        found = [tuple(f) for f in json.loads(failures.get(position) or "[]")]
        hit = image_index.nearest(faces.image_codes[start])
        if hit is not None:
            other, distance = hit
            verdicts.reason[position] = verdicts.code(Reason.NEAR_DUPLICATE.value)
            verdicts.details[position] = f"image perceptual hash within {distance} bits of {path_of(other)}"
            continue
        for i in range(start, stop):
            hit = face_index.nearest(faces.codes[i])
            if hit is None:
                accepted[i] = True
                face_index.add(faces.codes[i], i)
            else:
                other, distance = hit
                found.append((int(faces.rank[i]), Reason.NEAR_DUPLICATE.value,
                              f"face perceptual hash within {distance} bits of {path_of(other)}#{faces.rank[other]}"))
        if accepted[start:stop].any():
            image_index.add(faces.image_codes[start], start)
            dropped.update(reason for _, reason, _ in found)
        else:
            found.sort()
            verdicts.reason[position] = verdicts.code(found[0][1])
            verdicts.details[position] = compose_detail(found)
    return accepted, dropped


# --------------------------------------------------------------------------------------------- #
# splits and shard order of the accepted faces (given by partition and row)


def _take_strings(part_dirs: Sequence[Path], part: np.ndarray, row: np.ndarray, name: str) -> pa.Array:
    """Column `name` of faces.parquet at (part, row) for each accepted face, in that order."""
    mine = [np.flatnonzero(part == p) for p in range(len(part_dirs))]
    taken = [pq.read_table(d / PART_FACES, columns=[name]).column(0).take(pa.array(row[m]))
             for d, m in zip(part_dirs, mine)]
    values = pa.chunked_array([c for t in taken for c in t.chunks], type=taken[0].type).combine_chunks()
    # values[j] belongs to face where[j]: put them back in face order
    where = np.concatenate(mine)
    return values.take(pa.array(np.argsort(where, kind="stable")))


def _splits(cfg: CurationConfig, part_dirs: Sequence[Path], part: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Split index per accepted face; units as paco_fr.data.splits.unit_keys makes them."""
    identity = _take_strings(part_dirs, part, row, "identity")
    source = _take_strings(part_dirs, part, row, "source_sha256")
    keys = pc.if_else(pc.is_valid(identity), pc.binary_join_element_wise("identity:", identity, ""),
                      pc.binary_join_element_wise("source:", source.fill_null("<NA>"), ""))
    del identity, source
    encoded = pc.dictionary_encode(keys)
    return split_codes(encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary, cfg.split)


def _shard_order(cfg: CurationConfig, part_dirs: Sequence[Path], part: np.ndarray, row: np.ndarray, *,
                 batch_rows: int) -> np.ndarray:
    """Accepted faces in the seeded global order: sha256 of `order_seed:face_id`, then the face id."""
    face_ids = _take_strings(part_dirs, part, row, "face_id")
    keys = np.empty(len(face_ids), np.uint64)
    ids = []
    for start in range(0, len(face_ids), batch_rows):  # a Python string per face, one batch at a time
        batch = [f.encode() for f in face_ids.slice(start, batch_rows).to_pylist()]
        keys[start:start + len(batch)] = [int.from_bytes(hashlib.sha256(f"{cfg.order_seed}:".encode() + f).digest()[:8],
                                                         "big") for f in batch]
        ids.append(np.array(batch, dtype=bytes))
    face_id = np.concatenate(ids) if ids else np.zeros(0, "S16")
    return np.lexsort((face_id, keys))


def _destinations(part: np.ndarray, row: np.ndarray, order: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Per partition, row -> output position, where output position k holds item order[k]."""
    dest = [np.full(n, -1, np.int64) for n in sizes]
    taken_part, taken_row = part[order], row[order]
    for p in range(len(sizes)):
        mine = np.flatnonzero(taken_part == p)
        dest[p][taken_row[mine]] = mine
    return dest
