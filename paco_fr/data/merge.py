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

Memory does not grow with the corpus but for a few dozen bytes per face: the decisions are made on
narrow arrays (paco_fr.data.decide), the tables' rows are gathered `row_group_rows` at a time in
their output order (paco_fr.data.gather) and written as one row group each, and validation,
preview and summary read the written manifest `batch_rows` rows at a time. Neither size changes a
byte of the corpus but the manifest's row groups: corpora of up to `row_group_rows` faces hold one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from paco_fr.data.config import CurationConfig
from paco_fr.data.decide import Decisions, decide
from paco_fr.data.gather import gather_in_order
from paco_fr.data.manifest import (MANIFEST_FILE, MANIFEST_SCHEMA, REJECTED_FILE, REJECTED_SCHEMA, parquet_appender)
from paco_fr.data.part_check import check_parts
from paco_fr.data.partition import PART_FACES, PART_INPUTS
from paco_fr.data.preview import write_preview
from paco_fr.data.shards import SHARD_PATTERN, ShardWriter, remove_partials
from paco_fr.data.sources import SourceItem
from paco_fr.data.splits import SPLITS
from paco_fr.data.validation import CorpusValidationError, ValidationReport, validate_manifest_file
from paco_fr.io import remove_stale_temporaries, write_json_atomic

log = logging.getLogger(__name__)

SHARD_DIR = "shards"
SUMMARY_FILE = "summary.json"
PREVIEW_FILE = "preview.png"
VALIDATION_FILE = "validation.json"
FINAL_FILES = (MANIFEST_FILE, REJECTED_FILE, SUMMARY_FILE, PREVIEW_FILE, VALIDATION_FILE)
SPILL_FILE = ".merge-spill.arrow"  # rows on their way to their place in a table (paco_fr.data.gather)
# How the corpus was computed, not what it is: left out of summary.json's config.
HOW_KEYS = ("partitions", "chunk_inputs", "source")
_MEMBERS = (("json", "json"), ("labels.png", "labels"), ("png", "png"))  # shard extension, column prefix
# Rows per row group of manifest.parquet and rejected.parquet, and what the merge holds of them at
# once (~1 KB a row). Part of the corpus's bytes (a corpus of up to this many faces has one row group).
ROW_GROUP_ROWS = 8192
# Rows per read of a Parquet file (partitions, the written manifest): memory, never bytes.
BATCH_ROWS = 8192


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
                     progress: bool = True, batch_rows: int = BATCH_ROWS,
                     row_group_rows: int = ROW_GROUP_ROWS) -> CurationResult:
    """Merge the finished partitions `part_dirs` (all `cfg.n_partitions` of them, any order) of `source`
    into the corpus `out_dir`. Raises ValueError when they do not belong together or are stale, and
    CorpusValidationError (after writing every output) when the manifest fails the suite.
    `batch_rows` bounds the rows read at once, `row_group_rows` the rows written at once."""
    started = time.perf_counter()
    root, out_dir = Path(source), Path(out_dir)
    part_dirs = [Path(p) for p in part_dirs]
    check_locations(root, out_dir)
    check_parts(cfg, root, part_dirs, items)
    del items
    _clear_outputs(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    decisions = decide(cfg, part_dirs, batch_rows=batch_rows)
    release_freed_memory()  # the near-duplicate index's buckets (~600 bytes a face) are gone
    sizes = _Sizes(batch_rows=batch_rows, row_group_rows=row_group_rows)
    rejected_by_reason = _write_rejected(decisions, part_dirs, out_dir, sizes)
    facts = _write_manifest(cfg, decisions, part_dirs, out_dir, sizes, progress=progress)
    summary_in = _SummaryInputs(n_inputs=decisions.n_inputs, rejected_by_reason=rejected_by_reason,
                                face_rejections=decisions.face_rejections, manifest=facts)
    del decisions
    release_freed_memory()  # before Great Expectations (~130 MB of its own) comes in
    return _finalise(cfg, summary_in, out_dir, batch_rows=batch_rows, merge_s=time.perf_counter() - started)


def release_freed_memory() -> None:
    """Hand freed heap pages back to the system. Memory freed by C++ (faiss) or Arrow stays mapped in
    the allocator's arenas, and what comes next would be counted on top of it: the peak of a phase
    would become the floor of the next."""
    import ctypes  # noqa: PLC0415

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


def check_locations(root: Path, out_dir: Path) -> None:
    if not root.exists():
        raise FileNotFoundError(f"source folder does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"source is not a folder: {root}")
    root_r, out_r = root.resolve(), out_dir.resolve()
    if out_r == root_r or root_r in out_r.parents:
        raise ValueError(f"output folder {out_dir} is inside the source folder {root}: its files would become inputs")


# --------------------------------------------------------------------------------------------- #
# writing


def _clear_outputs(out_dir: Path) -> None:
    """Only files this stage writes; the manifest first, so the folder never looks finished."""
    for name in FINAL_FILES:
        (out_dir / name).unlink(missing_ok=True)
        remove_stale_temporaries(out_dir / name)
    (out_dir / SPILL_FILE).unlink(missing_ok=True)
    shard_dir = out_dir / SHARD_DIR
    remove_partials(shard_dir)
    for path in shard_dir.glob("shard-*.tar") if shard_dir.is_dir() else ():
        path.unlink()


@dataclass(frozen=True)
class _Sizes:
    batch_rows: int
    row_group_rows: int


def _write_rejected(decisions: Decisions, part_dirs: list[Path], out_dir: Path, sizes: _Sizes) -> Counter:
    """rejected.parquet: the rejected inputs in path order, with their final verdicts. Returns the
    count of each reason."""
    verdicts, positions = decisions.verdicts, decisions.rejected_positions
    blocks = gather_in_order([d / PART_INPUTS for d in part_dirs], decisions.rejected_dest, out_dir / SPILL_FILE,
                             block_rows=sizes.row_group_rows, batch_rows=sizes.batch_rows,
                             columns=["source_path", "detail", "source_sha256", "pixel_sha256", "sidecar_paths"])
    reasons = np.array(verdicts.reasons, dtype=object)
    with parquet_appender(out_dir / REJECTED_FILE, REJECTED_SCHEMA) as append:
        written = 0
        for block in blocks:
            mine = positions[block["_dest"].to_numpy()]
            details = [verdicts.detail(int(p)) for p in mine]
            kept = block["detail"].to_pylist()
            block = block.set_column(block.schema.get_field_index("detail"), "detail",
                                     pa.array([d if d is not None else k for d, k in zip(details, kept)], pa.string()))
            block = block.append_column("reason", pa.array(reasons[verdicts.reason[mine]], pa.string()))
            append(_as_written(block, REJECTED_SCHEMA))
            written += 1
        if not written:  # the file exists, with its schema, for a corpus that rejected nothing
            append(REJECTED_SCHEMA.empty_table())
    return Counter({str(reasons[code]): int(n) for code, n in
                    zip(*np.unique(verdicts.reason[positions], return_counts=True))})


def _as_written(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`schema`'s columns, one chunk each (chunking would change the file's pages), and a float NaN
    stored as null, as the pandas round trip of earlier versions stored it (same bytes)."""
    columns = []
    for f in schema:
        column = table[f.name].combine_chunks().cast(f.type)
        if pa.types.is_floating(f.type) and pc.any(pc.is_nan(column)).as_py():
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, f.type), column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _write_manifest(cfg: CurationConfig, decisions: Decisions, part_dirs: list[Path], out_dir: Path, sizes: _Sizes,
                    *, progress: bool) -> "_ManifestFacts":
    """manifest.parquet in shard order and the shards, one row group of faces at a time."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    facts = _ManifestFacts(preview_limit=cfg.preview_faces)
    names = np.array(SPLITS, dtype=object)
    blocks = gather_in_order([d / PART_FACES for d in part_dirs], decisions.face_dest, out_dir / SPILL_FILE,
                             block_rows=sizes.row_group_rows, batch_rows=sizes.batch_rows)
    total = decisions.n_faces
    with parquet_appender(out_dir / MANIFEST_FILE, MANIFEST_SCHEMA) as append, _Members(part_dirs) as members, \
            tqdm(total=total, desc="merge", unit="face", disable=not progress, mininterval=1.0) as bar:
        writer = ShardWriter(out_dir / SHARD_DIR)
        try:
            for block in blocks:
                positions = block["_dest"].to_numpy()
                block = block.append_column("split", pa.array(names[decisions.split[positions]], pa.string()))
                block = block.append_column("shard", _shard_names(positions // cfg.shard_size))
                _copy_members(writer, block, members, last=total - 1, shard_size=cfg.shard_size)
                table = _as_written(block, MANIFEST_SCHEMA)
                append(table)
                facts.add(table)
                bar.update(table.num_rows)
        except BaseException:
            writer.abort()
            raise
        if not facts.faces:
            append(MANIFEST_SCHEMA.empty_table())
    return facts


def _shard_names(index: np.ndarray) -> pa.Array:
    first = np.unique(index)
    names = pa.array([f"{SHARD_DIR}/{SHARD_PATTERN.format(index=int(i))}" for i in first], pa.string())
    return names.take(pa.array(np.searchsorted(first, index)))


class _Members:
    """The partitions' chunk tars, a few open at a time (never all of them), read with pread."""

    def __init__(self, part_dirs: list[Path]) -> None:
        self.part_dirs = part_dirs
        self.handles: dict[tuple[int, str], int] = {}

    def __enter__(self) -> "_Members":
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.handles.values():
            os.close(fd)
        self.handles.clear()

    def read(self, part: int, chunk: str, offset: int, size: int) -> bytes:
        key = (part, chunk)
        if key not in self.handles:
            if len(self.handles) >= 64:
                os.close(self.handles.pop(next(iter(self.handles))))
            self.handles[key] = os.open(self.part_dirs[part] / chunk, os.O_RDONLY)
        return os.pread(self.handles[key], size, offset)


def _copy_members(writer: ShardWriter, block: pa.Table, members: _Members, *, last: int, shard_size: int) -> None:
    """Copy each face's members, byte for byte, from its chunk tar into its corpus shard."""
    columns = {c: block[c].to_pylist() for c in ("face_id", "_source", "chunk", "_dest")}
    offsets = {p: (block[f"{p}_offset"].to_pylist(), block[f"{p}_size"].to_pylist()) for _, p in _MEMBERS}
    for i, face_id in enumerate(columns["face_id"]):
        part, chunk = columns["_source"][i], columns["chunk"][i]
        found = {}
        for ext, prefix in _MEMBERS:
            offset, size = offsets[prefix][0][i], offsets[prefix][1][i]
            if offset is not None:
                found[ext] = members.read(part, chunk, offset, size)
        writer.add(str(face_id), found)
        position = columns["_dest"][i]
        if position == last or (position + 1) % shard_size == 0:
            writer.finish()


@dataclass
class _ManifestFacts:
    """What summary.json and preview.png need of the manifest, counted as its row groups go by."""

    preview_limit: int
    faces: int = 0
    synthetic: int = 0
    by_split: Counter = field(default_factory=Counter)
    by_landmark_source: Counter = field(default_factory=Counter)
    shards: set = field(default_factory=set)
    preview: dict[bool, list[dict[str, Any]]] = field(default_factory=lambda: {False: [], True: []})

    def add(self, table: pa.Table) -> None:
        synthetic = pc.fill_null(table["synthetic"], False)  # pandas' astype(bool) of a null: False
        self.faces += table.num_rows
        self.synthetic += int(pc.sum(synthetic.cast(pa.int64())).as_py() or 0)
        for counter, column in ((self.by_split, "split"), (self.by_landmark_source, "landmark_source")):
            for entry in pc.value_counts(table[column].drop_null()).to_pylist():
                counter[entry["values"]] += entry["counts"]
        self.shards.update(table["shard"].drop_null().unique().to_pylist())
        # preview.choose_faces takes real faces first, then synthetic ones, each in manifest order
        flags = synthetic.to_numpy(zero_copy_only=False)
        for kind in (False, True):
            wanted = self.preview_limit - len(self.preview[kind])
            rows = np.flatnonzero(flags == kind)[:max(wanted, 0)]
            if rows.size:
                self.preview[kind] += table.select(["face_id", "synthetic", "shard"]).take(pa.array(rows)).to_pylist()

    def preview_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.preview[False] + self.preview[True], columns=["face_id", "synthetic", "shard"])


@dataclass
class _SummaryInputs:
    n_inputs: int
    rejected_by_reason: Counter
    face_rejections: Counter
    manifest: _ManifestFacts


def _finalise(cfg: CurationConfig, facts: _SummaryInputs, out_dir: Path, *, batch_rows: int,
              merge_s: float) -> CurationResult:
    started = time.perf_counter()
    # The preview (tar reads, PNG codecs: they release the GIL) is drawn while GX validates.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-preview") as pool:
        preview = pool.submit(write_preview, out_dir, facts.manifest.preview_frame(), out_dir / PREVIEW_FILE,
                              limit=cfg.preview_faces, cell=max(cfg.crop_size, 64))
        report = validate_manifest_file(out_dir / MANIFEST_FILE, cfg, batch_rows=batch_rows)
        validation_path = write_json_atomic(out_dir / VALIDATION_FILE, report.to_dict())
        preview_path = preview.result()
    summary = corpus_summary(cfg, facts, report)
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    summary = {**summary, "run": {"corpus": str(out_dir.resolve()),
                                  "timing": {"merge_s": round(merge_s, 3),
                                             "finalise_s": round(time.perf_counter() - started, 3)}}}
    if not report.success:
        raise CorpusValidationError(report, where=str(out_dir))
    return CurationResult(out_dir=out_dir, manifest_path=out_dir / MANIFEST_FILE, rejected_path=out_dir / REJECTED_FILE,
                          summary=summary, preview_path=preview_path, validation_path=validation_path)


def corpus_summary(cfg: CurationConfig, facts: _SummaryInputs, report: ValidationReport) -> dict[str, Any]:
    """summary.json: facts about the corpus only (the same corpus gives the same bytes)."""
    manifest = facts.manifest
    n_rejected = sum(facts.rejected_by_reason.values())
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in HOW_KEYS}
    return {
        "inputs": facts.n_inputs,
        "accepted_inputs": facts.n_inputs - n_rejected,
        "rejected_inputs": n_rejected,
        "faces": manifest.faces,
        "faces_synthetic": manifest.synthetic,
        "faces_real": manifest.faces - manifest.synthetic,
        "faces_by_split": {s: manifest.by_split.get(s, 0) for s in ("train", "val", "test")},
        "faces_by_landmark_source": {str(k): int(v) for k, v in sorted(manifest.by_landmark_source.items())},
        "rejected_by_reason": {str(k): int(v) for k, v in sorted(facts.rejected_by_reason.items())},
        "faces_rejected_in_accepted_inputs": dict(sorted(facts.face_rejections.items())),
        "shards": len(manifest.shards),
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
