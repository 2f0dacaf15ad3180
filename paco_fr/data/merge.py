"""The merge of the curation stage: finished partitions -> one validated face corpus.

    merge_partitions(cfg, source, part_dirs, out_dir) -> CurationResult

Every decision that compares inputs is made here, in one canonical order (inputs by relative path,
faces by rank within their image), so the corpus is the same whatever the number of partitions or
workers, and whichever machine curated which partition:

1. exact duplicates: the same file bytes, then the same decoded pixels, as an earlier input;
2. near duplicates (paco_fr.data.dedup): an image within `near_duplicate.image_bits` of an earlier
   accepted image, or a face within `near_duplicate.face_bits` of an earlier accepted face;
3. splits (paco_fr.data.splits): fixed-size held-out sets by identity or source image;
4. shards: accepted faces in a seeded global order (sha256 of `order_seed:face_id`), so that
   consecutive faces come from all over the source tree, `shard_size` faces per shard; their members
   are copied byte for byte from the partitions' chunk tars;
5. manifest.parquet (shard order), rejected.parquet (path order), validation.json (Great
   Expectations), preview.png, summary.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paco_fr.data.chunks import settings_hash
from paco_fr.data.config import CurationConfig
from paco_fr.data.dedup import BinaryHashIndex, hash_bytes
from paco_fr.data.manifest import (MANIFEST_FILE, MANIFEST_SCHEMA, REJECTED_FILE, REJECTED_SCHEMA,
                                   PART_FACES_SCHEMA, PART_INPUTS_SCHEMA, parquet_appender)
from paco_fr.data.partition import PART_FACES, PART_INPUTS, partition_items, read_part_marker
from paco_fr.data.preview import write_preview
from paco_fr.data.process import compose_detail
from paco_fr.data.reasons import Reason
from paco_fr.data.shards import SHARD_PATTERN, ShardWriter, remove_partials
from paco_fr.data.sources import SourceItem, discover, fingerprint
from paco_fr.data.splits import assign_splits, unit_keys
from paco_fr.data.validation import CorpusValidationError, ValidationReport, validate_manifest
from paco_fr.io import remove_stale_temporaries, write_json_atomic

log = logging.getLogger(__name__)

SHARD_DIR = "shards"
SUMMARY_FILE = "summary.json"
PREVIEW_FILE = "preview.png"
VALIDATION_FILE = "validation.json"
FINAL_FILES = (MANIFEST_FILE, REJECTED_FILE, SUMMARY_FILE, PREVIEW_FILE, VALIDATION_FILE)
# How the corpus was computed, not what it is: left out of summary.json's config.
HOW_KEYS = ("partitions", "chunk_inputs", "source")
_MEMBERS = (("json", "json"), ("labels.png", "labels"), ("png", "png"))  # shard extension, column prefix


@dataclass
class CurationResult:
    out_dir: Path
    manifest_path: Path
    rejected_path: Path
    summary: dict[str, Any]  # summary.json's content plus run facts under "run"
    preview_path: Path
    validation_path: Path


def merge_partitions(cfg: CurationConfig, source: str | os.PathLike[str], part_dirs: Sequence[str | os.PathLike[str]],
                     out_dir: str | os.PathLike[str], *, items: Sequence[SourceItem] | None = None,
                     progress: bool = True) -> CurationResult:
    """Merge the finished partitions `part_dirs` (all `cfg.n_partitions` of them, any order) of `source`
    into the corpus `out_dir`. Raises ValueError when they do not belong together or are stale, and
    CorpusValidationError (after writing every output) when the manifest fails the suite."""
    started = time.perf_counter()
    root, out_dir = Path(source), Path(out_dir)
    part_dirs = [Path(p) for p in part_dirs]
    check_locations(root, out_dir)
    _check_parts(cfg, part_dirs, discover(root) if items is None else items)
    del items  # every table below holds one row per input or face: drop each as soon as it is used
    _clear_outputs(out_dir)

    inputs = _read_inputs(part_dirs)              # one row per input, path order
    faces = _read_faces(part_dirs)                # one row per candidate face, (path, rank) order
    _exact_duplicates(inputs)
    accepted, face_rejections = _near_duplicates(cfg, inputs, faces)
    manifest = faces[accepted].reset_index(drop=True)
    del faces
    manifest["split"] = assign_splits(unit_keys(manifest["identity"], manifest["source_sha256"]), cfg.split)
    manifest = _shard_order(manifest, cfg)
    _write_shards(manifest, part_dirs, out_dir, progress=progress)
    n_inputs, rejected = len(inputs), inputs[inputs["reason"].notna()]
    del inputs
    _write_table(out_dir / REJECTED_FILE, rejected, REJECTED_SCHEMA)
    _write_table(out_dir / MANIFEST_FILE, manifest, MANIFEST_SCHEMA)
    del manifest
    manifest = pd.read_parquet(out_dir / MANIFEST_FILE)  # what users read, dtypes included
    return _finalise(cfg, manifest, rejected, face_rejections, out_dir, n_inputs=n_inputs,
                     merge_s=time.perf_counter() - started)


def check_locations(root: Path, out_dir: Path) -> None:
    if not root.exists():
        raise FileNotFoundError(f"source folder does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"source is not a folder: {root}")
    root_r, out_r = root.resolve(), out_dir.resolve()
    if out_r == root_r or root_r in out_r.parents:
        raise ValueError(f"output folder {out_dir} is inside the source folder {root}: its files would become inputs")


# --------------------------------------------------------------------------------------------- #
# reading the partitions


def _check_parts(cfg: CurationConfig, part_dirs: list[Path], items: Sequence[SourceItem]) -> None:
    markers = [read_part_marker(d) for d in part_dirs]
    settings = settings_hash(cfg)
    seen: dict[int, Path] = {}
    for path, marker in zip(part_dirs, markers):
        if marker["partitions"] != cfg.n_partitions:
            raise ValueError(f"{path} is partition {marker['part']} of {marker['partitions']}, but "
                             f"curation.partitions is {cfg.n_partitions}")
        if marker["settings"] != settings:
            raise ValueError(f"{path} was curated with other settings than this merge's: run curate-part again")
        if marker["part"] in seen:
            raise ValueError(f"partition {marker['part']} given twice: {seen[marker['part']]} and {path}")
        seen[marker["part"]] = path
        if marker["inputs_fingerprint"] != fingerprint(partition_items(items, marker["part"], cfg.n_partitions)):
            raise ValueError(f"{path} is stale: the source's files of partition {marker['part']} changed since it "
                             f"was curated; run curate-part again")
    missing = sorted(set(range(cfg.n_partitions)) - set(seen))
    if missing:
        raise ValueError(f"missing partition(s) {missing} of {cfg.n_partitions}")


def _read_inputs(part_dirs: list[Path]) -> pd.DataFrame:
    tables = [pq.read_table(d / PART_INPUTS, schema=PART_INPUTS_SCHEMA) for d in part_dirs]
    inputs = pa.concat_tables(tables).to_pandas()
    return inputs.sort_values("source_path", kind="stable").reset_index(drop=True)


def _read_faces(part_dirs: list[Path]) -> pd.DataFrame:
    tables = [pq.read_table(d / PART_FACES, schema=PART_FACES_SCHEMA).append_column(
        "part", pa.array(np.full(pq.read_metadata(d / PART_FACES).num_rows, i, np.int32)))
        for i, d in enumerate(part_dirs)]
    faces = pa.concat_tables(tables).to_pandas()
    return faces.sort_values(["source_path", "face_index"], kind="stable").reset_index(drop=True)


def _clear_outputs(out_dir: Path) -> None:
    """Only files this stage writes; the manifest first, so the folder never looks finished."""
    for name in FINAL_FILES:
        (out_dir / name).unlink(missing_ok=True)
        remove_stale_temporaries(out_dir / name)
    shard_dir = out_dir / SHARD_DIR
    remove_partials(shard_dir)
    for path in shard_dir.glob("shard-*.tar") if shard_dir.is_dir() else ():
        path.unlink()


# --------------------------------------------------------------------------------------------- #
# global decisions


def _exact_duplicates(inputs: pd.DataFrame) -> None:
    """Mark later copies (same file bytes, else same decoded pixels) of an earlier input, in place."""
    file_sha = inputs["source_sha256"]
    file_dup = file_sha.notna() & file_sha.duplicated()
    first_file = inputs.groupby("source_sha256")["source_path"].transform("first")
    pixels = inputs["pixel_sha256"].where(~file_dup)
    pixel_dup = pixels.notna() & pixels.duplicated()
    first_pixels = inputs.assign(p=pixels).groupby("p")["source_path"].transform("first")
    inputs.loc[file_dup, "reason"] = Reason.DUPLICATE.value
    inputs.loc[file_dup, "detail"] = "same file bytes as " + first_file[file_dup]
    inputs.loc[pixel_dup, "reason"] = Reason.DUPLICATE.value
    inputs.loc[pixel_dup, "detail"] = "same decoded pixels as " + first_pixels[pixel_dup]
    inputs.loc[file_dup | pixel_dup, "face_failures"] = None


def _near_duplicates(cfg: CurationConfig, inputs: pd.DataFrame, faces: pd.DataFrame) -> tuple[np.ndarray, Counter]:
    """Accept faces in canonical order unless an earlier accepted face or image is near; update the
    verdicts of inputs left without a face. Returns (accepted mask over `faces`, reasons of faces
    dropped inside accepted inputs)."""
    nd = cfg.near_duplicate
    face_index, image_index = BinaryHashIndex(nd.face_bits), BinaryHashIndex(nd.image_bits)
    live = set(inputs.loc[inputs["reason"].isna(), "source_path"])
    face_codes, image_codes = hash_bytes(faces["phash"].to_numpy()), hash_bytes(faces["image_phash"].to_numpy())
    paths, ranks = faces["source_path"].to_numpy(), faces["face_index"].to_numpy()
    accepted = np.zeros(len(faces), dtype=bool)
    row_of_input = pd.Series(inputs.index, index=inputs["source_path"])
    dropped: Counter[str] = Counter()
    starts = np.flatnonzero(np.r_[True, paths[1:] != paths[:-1]]) if len(faces) else np.array([], int)
    for start, stop in zip(starts, [*starts[1:], len(faces)]):
        path = paths[start]
        if path not in live:
            continue
        row = row_of_input[path]
        failures = [tuple(f) for f in json.loads(inputs.at[row, "face_failures"] or "[]")]
        hit = image_index.nearest(image_codes[start])
        if hit is not None:
            other, distance = hit
            inputs.at[row, "reason"] = Reason.NEAR_DUPLICATE.value
            inputs.at[row, "detail"] = f"image perceptual hash within {distance} bits of {paths[other]}"
            continue
        for i in range(start, stop):
            hit = face_index.nearest(face_codes[i])
            if hit is None:
                accepted[i] = True
                face_index.add(face_codes[i], i)
            else:
                other, distance = hit
                failures.append((int(ranks[i]), Reason.NEAR_DUPLICATE.value,
                                 f"face perceptual hash within {distance} bits of {paths[other]}#{ranks[other]}"))
        if accepted[start:stop].any():
            image_index.add(image_codes[start], start)
            dropped.update(reason for _, reason, _ in failures)
        else:
            failures.sort()
            inputs.at[row, "reason"] = failures[0][1]
            inputs.at[row, "detail"] = compose_detail(failures)
    return accepted, dropped


def _shard_order(manifest: pd.DataFrame, cfg: CurationConfig) -> pd.DataFrame:
    """Faces in a seeded global order, `shard_size` per shard."""
    seed = cfg.order_seed
    keys = [hashlib.sha256(f"{seed}:{face_id}".encode()).digest()[:8] for face_id in manifest["face_id"]]
    manifest = manifest.assign(_order=keys).sort_values(["_order", "face_id"], kind="stable").drop(columns="_order")
    manifest = manifest.reset_index(drop=True)
    manifest["shard"] = [f"{SHARD_DIR}/{SHARD_PATTERN.format(index=i // cfg.shard_size)}" for i in range(len(manifest))]
    return manifest


# --------------------------------------------------------------------------------------------- #
# writing


def _write_shards(manifest: pd.DataFrame, part_dirs: list[Path], out_dir: Path, *, progress: bool) -> None:
    """Copy each face's members, byte for byte, from its chunk tar into its corpus shard."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    writer = ShardWriter(out_dir / SHARD_DIR)
    handles: dict[tuple[int, str], int] = {}
    columns = {c: manifest[c].to_numpy() for c in ("face_id", "part", "chunk", "shard")}
    offsets = {p: (manifest[f"{p}_offset"].to_numpy(), manifest[f"{p}_size"].to_numpy()) for _, p in _MEMBERS}
    try:
        for i in tqdm(range(len(manifest)), desc="merge", unit="face", disable=not progress, mininterval=1.0):
            key = (int(columns["part"][i]), str(columns["chunk"][i]))
            if key not in handles:
                if len(handles) >= 64:  # a few chunk tars open at a time, never all of them
                    os.close(handles.pop(next(iter(handles))))
                handles[key] = os.open(part_dirs[key[0]] / key[1], os.O_RDONLY)
            members = {}
            for ext, prefix in _MEMBERS:
                offset, size = offsets[prefix][0][i], offsets[prefix][1][i]
                if not pd.isna(offset):
                    members[ext] = os.pread(handles[key], int(size), int(offset))
            writer.add(str(columns["face_id"][i]), members)
            if i + 1 == len(manifest) or columns["shard"][i + 1] != columns["shard"][i]:
                writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        for fd in handles.values():
            os.close(fd)


def _write_table(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    with parquet_appender(path, schema) as append:
        append(table)


def _finalise(cfg: CurationConfig, manifest: pd.DataFrame, rejected: pd.DataFrame, face_rejections: Counter,
              out_dir: Path, *, n_inputs: int, merge_s: float) -> CurationResult:
    started = time.perf_counter()
    # The preview (tar reads, PNG codecs: they release the GIL) is drawn while GX validates.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-preview") as pool:
        preview = pool.submit(write_preview, out_dir, manifest, out_dir / PREVIEW_FILE, limit=cfg.preview_faces,
                              cell=max(cfg.crop_size, 64))
        report = validate_manifest(manifest, cfg)
        validation_path = write_json_atomic(out_dir / VALIDATION_FILE, report.to_dict())
        preview_path = preview.result()
    summary = corpus_summary(cfg, manifest, rejected, face_rejections, report, n_inputs=n_inputs)
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    summary = {**summary, "run": {"corpus": str(out_dir.resolve()),
                                  "timing": {"merge_s": round(merge_s, 3),
                                             "finalise_s": round(time.perf_counter() - started, 3)}}}
    if not report.success:
        raise CorpusValidationError(report, where=str(out_dir))
    return CurationResult(out_dir=out_dir, manifest_path=out_dir / MANIFEST_FILE, rejected_path=out_dir / REJECTED_FILE,
                          summary=summary, preview_path=preview_path, validation_path=validation_path)


def corpus_summary(cfg: CurationConfig, manifest: pd.DataFrame, rejected: pd.DataFrame, face_rejections: Counter,
                   report: ValidationReport, *, n_inputs: int) -> dict[str, Any]:
    """summary.json: facts about the corpus only (the same corpus gives the same bytes)."""
    synthetic = manifest["synthetic"].astype(bool) if len(manifest) else pd.Series([], dtype=bool)
    by_reason = rejected["reason"].value_counts()
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in HOW_KEYS}
    return {
        "inputs": n_inputs,
        "accepted_inputs": n_inputs - len(rejected),
        "rejected_inputs": len(rejected),
        "faces": int(len(manifest)),
        "faces_synthetic": int(synthetic.sum()),
        "faces_real": int((~synthetic).sum()),
        "faces_by_split": {s: int((manifest["split"] == s).sum()) for s in ("train", "val", "test")},
        "faces_by_landmark_source": {str(k): int(v) for k, v in
                                     manifest["landmark_source"].value_counts().sort_index().items()},
        "rejected_by_reason": {str(k): int(v) for k, v in sorted(by_reason.items())},
        "faces_rejected_in_accepted_inputs": dict(sorted(face_rejections.items())),
        "shards": int(manifest["shard"].nunique()) if len(manifest) else 0,
        "validation": {"success": report.success, "failed": [o.describe() for o in report.failures]},
        "config": config,
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """One line per outcome, for the CLI."""
    lines = [f"accepted: {summary['faces']} faces from {summary['accepted_inputs']} of {summary['inputs']} inputs "
             f"({summary['faces_real']} real, {summary['faces_synthetic']} synthetic; "
             + ", ".join(f"{k} {v}" for k, v in summary["faces_by_split"].items()) + ")"]
    for reason, count in summary["rejected_by_reason"].items():
        lines.append(f"rejected: {count} {reason}")
    for reason, count in summary["faces_rejected_in_accepted_inputs"].items():
        lines.append(f"face dropped (image kept): {count} {reason}")
    validation = summary["validation"]
    lines.append("validation: passed" if validation["success"]
                 else f"validation: FAILED ({len(validation['failed'])} expectations)")
    return lines
