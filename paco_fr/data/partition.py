"""Partitions of the curation stage: slices of the inputs that run anywhere, in any order, resumably.

    curate_partition(cfg, source, part, out_dir, workers=N) -> PartResult

Input i belongs to partition int(sha1(rel_path)[:8]) mod `curation.partitions`: a stable hash of its
path relative to the source, so the same file lands in the same partition on every machine. A
partition's inputs (sorted by path) are cut into fixed chunks of `curation.chunk_inputs`; N worker
processes curate the chunks (paco_fr.data.workers), each chunk published atomically
(paco_fr.data.chunks). A partition folder that survives a kill is resumed: complete chunks whose
fingerprint matches are reused, everything else is redone.

    PART/chunks/chunk-NNNNNN.{tar,faces.parquet,inputs.parquet,json}
    PART/faces.parquet    every candidate face of the partition (PART_FACES_SCHEMA), chunk order
    PART/inputs.parquet   every input of the partition (PART_INPUTS_SCHEMA), path order
    PART/part.json        the completion marker, written last (no run facts: the same inputs and
                          settings give the same bytes, whatever N, machine or resume)

Nothing here compares inputs with each other: duplicates, splits and shards are the merge's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from paco_fr.data.chunks import (CHUNK_DIR, chunk_fingerprint, chunk_is_done, chunk_stem, remove_chunk,
                                 settings_hash)
from paco_fr.data.config import CurationConfig
from paco_fr.data.manifest import PART_FACES_SCHEMA, PART_INPUTS_SCHEMA, parquet_appender
from paco_fr.data.progress import Progress
from paco_fr.data.sources import SourceItem, discover, fingerprint_records, item_records
from paco_fr.data.workers import ChunkPool, ChunkTask, WorkerDeath, default_workers
from paco_fr.io import read_json, remove_stale_temporaries, write_json_atomic

log = logging.getLogger(__name__)

PART_MARKER = "part.json"
PART_FACES = "faces.parquet"
PART_INPUTS = "inputs.parquet"
PART_VERSION = 1


def partition_of(rel_path: str, partitions: int) -> int:
    digest = hashlib.sha1(rel_path.encode("utf-8", "backslashreplace")).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def partition_items(items: Sequence[SourceItem], part: int, partitions: int) -> list[SourceItem]:
    return [item for item in items if partition_of(item.rel_path, partitions) == part]


def part_dir_name(part: int, partitions: int) -> str:
    return f"part-{part:04d}-of-{partitions:04d}"


@dataclass
class PartResult:
    out_dir: Path
    part: int
    partitions: int
    inputs: int
    faces: int      # candidate faces (before the merge's duplicate checks)
    rejected: int   # inputs rejected inside the partition
    chunks: int
    chunks_reused: list[int] = field(default_factory=list)
    chunks_done: list[int] = field(default_factory=list)
    worker_deaths: list[WorkerDeath] = field(default_factory=list)
    worker_crash_rejections: list[str] = field(default_factory=list)
    reused_whole: bool = False
    worker_peak_rss_mb: float | None = None

    def run_facts(self) -> dict[str, Any]:
        """What this run did (for logs and provenance; never inside the partition folder)."""
        return {"part": self.part, "partitions": self.partitions, "chunks": self.chunks,
                "chunks_reused": len(self.chunks_reused), "chunks_done": len(self.chunks_done),
                "redone_chunks": self.chunks_done, "worker_deaths": [vars(d) for d in self.worker_deaths],
                "worker_crash_rejections": self.worker_crash_rejections, "reused_whole": self.reused_whole,
                "worker_peak_rss_mb": self.worker_peak_rss_mb}


@dataclass
class _Plan:
    part: int
    partitions: int
    out_dir: Path
    items: list[SourceItem]
    marker: dict[str, Any]
    tasks: list[ChunkTask]
    reused: list[int]
    reused_counts: tuple[int, int, int]
    done_whole: bool


def curate_partition(cfg: CurationConfig, source: str | os.PathLike[str], part: int,
                     out_dir: str | os.PathLike[str], *, workers: int | None = None, resume: bool = True,
                     progress: bool = True, progress_json: bool = True,
                     on_progress: Callable[[dict[str, Any]], None] | None = None,
                     items: Sequence[SourceItem] | None = None) -> PartResult:
    """Curate partition `part` of `cfg.n_partitions` of `source` into `out_dir` (see the module doc)."""
    if not 0 <= part < cfg.n_partitions:
        raise ValueError(f"partition {part} is not within 0..{cfg.n_partitions - 1} (curation.partitions={cfg.n_partitions})")
    items = discover(source) if items is None else items
    return curate_partitions(cfg, {part: Path(out_dir)}, items, workers=workers, resume=resume, progress=progress,
                             progress_json=progress_json, on_progress=on_progress)[0]


def curate_partitions(cfg: CurationConfig, part_dirs: dict[int, Path], items: Sequence[SourceItem], *,
                      workers: int | None, resume: bool, progress: bool, progress_json: bool = True,
                      on_progress: Callable[[dict[str, Any]], None] | None = None,
                      on_planned: Callable[[], None] | None = None,
                      on_drained: Callable[[], None] | None = None) -> list[PartResult]:
    """Several partitions through one pool of workers (what `curate` does on one machine). `on_planned()` is
    called once every chunk is planned, `on_drained()` once the last chunk has been handed out to a worker.
    A partition is finalised (its tables concatenated, its marker written) on a thread as soon as its last
    chunk is published, beside the chunks of the partitions after it."""
    pool = ChunkPool(cfg, workers or default_workers(), on_input=lambda *counts: bar.add(*counts),
                     on_chunk=lambda task: published(task), on_drained=on_drained)
    sizes = Counter(partition_of(item.rel_path, cfg.n_partitions) for item in items)
    pool.start(sum(-(-sizes[part] // cfg.chunk_inputs) for part in part_dirs))
    try:
        plans = [_plan(cfg, part, out, items, resume=resume) for part, out in sorted(part_dirs.items())]
    except BaseException:
        pool.run([])  # stops the processes
        raise
    if on_planned is not None:
        on_planned()
    tasks = [task for plan in plans for task in plan.tasks]
    reused = tuple(sum(p.reused_counts[i] for p in plans) for i in range(3))
    label = (f"curate-part {plans[0].part}/{cfg.n_partitions}" if len(plans) == 1 else "curate")
    bar = Progress(sum(len(p.items) for p in plans), label=label, reused=reused, bar=progress,  # type: ignore[arg-type]
                   json_lines=progress_json, on_progress=on_progress)
    by_part = {plan.part: plan for plan in plans}
    unpublished = Counter(task.part for task in tasks)
    finalising: dict[int, Future] = {}
    # One thread: the tables are read and written by pyarrow, which releases the GIL.
    finaliser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-finalise")

    def finalise(plan: _Plan) -> None:
        if not plan.done_whole:
            finalising[plan.part] = finaliser.submit(_finalise, plan)

    def published(task: ChunkTask) -> None:
        unpublished[task.part] -= 1
        if unpublished[task.part] == 0:
            finalise(by_part[task.part])

    try:
        for plan in plans:
            if not unpublished[plan.part]:  # every chunk reused
                finalise(plan)
        pool.run(tasks)
        for future in finalising.values():
            future.result()  # raises what the finaliser raised
    finally:
        finaliser.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return [_result(plan, pool) for plan in plans]


def _plan(cfg: CurationConfig, part: int, out_dir: Path, all_items: Sequence[SourceItem], *, resume: bool) -> _Plan:
    items = partition_items(all_items, part, cfg.n_partitions)
    settings = settings_hash(cfg)
    records = item_records(items)  # every byte of the partition read once, by every core
    marker = {"version": PART_VERSION, "part": part, "partitions": cfg.n_partitions, "settings": settings,
              "chunk_inputs": cfg.chunk_inputs, "inputs_fingerprint": fingerprint_records(records)}
    step = cfg.chunk_inputs
    chunks = [items[i:i + step] for i in range(0, len(items), step)]
    fingerprints = [chunk_fingerprint(settings, chunk, inputs=fingerprint_records(records[i * step:(i + 1) * step]))
                    for i, chunk in enumerate(chunks)]
    marker["chunks"] = len(chunks)
    if not resume and out_dir.exists():
        _clear(out_dir)
    if resume and _marker_matches(out_dir, marker):
        existing = read_json(out_dir / PART_MARKER)
        counts = (existing["inputs"], existing["faces"], existing["rejected"])
        log.info("%s: partition %d complete, reused", out_dir, part)
        return _Plan(part, cfg.n_partitions, out_dir, items, existing, [], list(range(len(chunks))), counts, True)
    (out_dir / PART_MARKER).unlink(missing_ok=True)  # first: from here the folder never looks finished
    chunk_dir = out_dir / CHUNK_DIR
    chunk_dir.mkdir(parents=True, exist_ok=True)
    for stale in chunk_dir.glob(".*.tmp"):  # temporaries of a killed run (atomic_path's names)
        stale.unlink(missing_ok=True)
    tasks, reused, counts = [], [], [0, 0, 0]
    for index, (chunk, fp) in enumerate(zip(chunks, fingerprints)):
        if chunk_is_done(out_dir, index, fp):
            reused.append(index)
            done = read_json(chunk_dir / f"{chunk_stem(index)}.json")
            counts = [counts[0] + done["inputs"], counts[1] + done["faces"], counts[2] + done["rejected"]]
        else:
            remove_chunk(out_dir, index)
            tasks.append(ChunkTask(part, index, out_dir, chunk, fp))
    _remove_chunks_beyond(out_dir, len(chunks))
    if reused:
        log.info("%s: resuming partition %d: %d of %d chunks reused, %d to do", out_dir, part, len(reused),
                 len(chunks), len(tasks))
    return _Plan(part, cfg.n_partitions, out_dir, items, marker, tasks, reused, tuple(counts), False)


def _marker_matches(out_dir: Path, marker: dict[str, Any]) -> bool:
    try:
        existing = read_json(out_dir / PART_MARKER)
    except (OSError, ValueError):
        return False
    return (all(existing.get(k) == v for k, v in marker.items())
            and (out_dir / PART_FACES).is_file() and (out_dir / PART_INPUTS).is_file())


def _clear(out_dir: Path) -> None:
    """Only what this stage writes; anything else in the folder is left alone."""
    (out_dir / PART_MARKER).unlink(missing_ok=True)
    for name in (PART_FACES, PART_INPUTS):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / CHUNK_DIR, ignore_errors=True)


def _remove_chunks_beyond(out_dir: Path, n_chunks: int) -> None:
    for path in (out_dir / CHUNK_DIR).glob("chunk-*.json"):
        index = int(path.name[len("chunk-"):len("chunk-") + 6])
        if index >= n_chunks:
            remove_chunk(out_dir, index)


def _finalise(plan: _Plan) -> None:
    """Concatenate the chunks' tables and publish the completion marker (last)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    out, chunk_dir = plan.out_dir, plan.out_dir / CHUNK_DIR
    n_chunks = plan.marker["chunks"]
    totals = [0, 0, 0]
    for name, schema in ((PART_FACES, PART_FACES_SCHEMA), (PART_INPUTS, PART_INPUTS_SCHEMA)):
        remove_stale_temporaries(out / name)
        with parquet_appender(out / name, schema) as append:
            for index in range(n_chunks):
                table = pq.read_table(chunk_dir / f"{chunk_stem(index)}.{name}", schema=schema)
                if table.num_rows:
                    append(table)
    for index in range(n_chunks):
        done = read_json(chunk_dir / f"{chunk_stem(index)}.json")
        totals = [totals[0] + done["inputs"], totals[1] + done["faces"], totals[2] + done["rejected"]]
    write_json_atomic(out / PART_MARKER, {**plan.marker, "inputs": totals[0], "faces": totals[1],
                                          "rejected": totals[2]})


def _result(plan: _Plan, pool: ChunkPool) -> PartResult:
    marker = read_json(plan.out_dir / PART_MARKER)
    done = sorted(t.index for t in plan.tasks)
    mine = {item.rel_path for item in plan.items} if pool.rejected_for_crashes else set()
    return PartResult(out_dir=plan.out_dir, part=plan.part, partitions=plan.partitions, inputs=marker["inputs"],
                      faces=marker["faces"], rejected=marker["rejected"], chunks=marker["chunks"],
                      chunks_reused=plan.reused, chunks_done=done,
                      worker_deaths=[d for d in pool.deaths if d.part == plan.part],
                      worker_crash_rejections=[p for p in pool.rejected_for_crashes if p in mine],
                      reused_whole=plan.done_whole, worker_peak_rss_mb=pool.worker_peak_rss_mb)


def read_part_marker(part_dir: Path) -> dict[str, Any]:
    path = Path(part_dir) / PART_MARKER
    if not path.is_file():
        raise FileNotFoundError(f"{part_dir} is not a finished curation partition (no {PART_MARKER}): run "
                                f"`paco-fr curate-part` for it first, or again if it was interrupted")
    return read_json(path)
