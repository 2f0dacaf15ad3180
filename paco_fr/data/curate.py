"""The curation stage: a folder of raw images -> an aligned, validated face corpus.

    curate(cfg, source, out_dir, workers=N) -> CurationResult

For a user without an orchestrator: the `cfg.n_partitions` partitions (paco_fr.data.partition) run
through one pool of N worker processes into ``OUT/.curate-work/part-*``, then the merge
(paco_fr.data.merge) publishes the corpus into OUT. A killed run started again reuses every complete
chunk (and every complete partition); the work folder is deleted once the corpus is published.
Under DVC or Dagster the same two functions run as separate stages: `curate_partition` once per
partition (any machine), then `merge_partitions`.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from paco_fr.data.config import CurationConfig
from paco_fr.data.merge import (FINAL_FILES, CurationResult, check_locations, merge_partitions,
                                summary_lines)
from paco_fr.data.partition import curate_partitions, part_dir_name
from paco_fr.data.sources import discover
from paco_fr.data.validation import CorpusValidationError
from paco_fr.data.workers import default_workers
from paco_fr.io import available_cores

log = logging.getLogger(__name__)

WORK_DIR = ".curate-work"


def curate(cfg: CurationConfig, source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
           workers: int | None = None, resume: bool = True, progress: bool = True, progress_json: bool = False,
           on_progress: Callable[[dict[str, Any]], None] | None = None,
           raw_dir: str | os.PathLike[str] | None = None) -> CurationResult:
    """Curate `source` (a folder, or ``"builtin"``: the builtin corpus is first materialised into
    `raw_dir`, default ``data/raw``) into `out_dir` with `workers` processes (default: the cores).
    Raises :class:`CorpusValidationError` (after writing every output, validation.json included)
    when the manifest fails the suite."""
    started = time.perf_counter()
    n_workers = workers or default_workers()
    # Great Expectations takes ~3 CPU-seconds to import and the merge needs it. An import holds this process's
    # GIL, so it runs in a thread while the process has little else to do: at once beside the rendering of
    # the builtin folder; once the chunks are planned when the workers leave a core spare (begun at once, it
    # slowed discovery and planning of 5,000 inputs from 0.8 to 3.4 s); else once the last chunk is handed
    # out (begun when a worker idled, it held the GIL against most of the merge; ~1 s of overlap is left).
    def import_ge() -> None:
        threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True).start()

    rendering = str(source) == "builtin"
    spare_core = n_workers < available_cores()
    if rendering:
        import_ge()
        from paco_fr.data.builtin import write_builtin_raw  # noqa: PLC0415

        source = write_builtin_raw(cfg.builtin, Path(raw_dir) if raw_dir is not None else Path("data/raw"),
                                   progress=progress)
    root, out_dir = Path(source), Path(out_dir)
    check_locations(root, out_dir)
    items = discover(root)
    work = out_dir / WORK_DIR
    for name in FINAL_FILES:  # a folder being curated never looks like a finished corpus
        (out_dir / name).unlink(missing_ok=True)
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    _remove_other_partitionings(work, cfg.n_partitions)
    part_dirs = {i: work / part_dir_name(i, cfg.n_partitions) for i in range(cfg.n_partitions)}
    parts = curate_partitions(cfg, part_dirs, items, workers=n_workers, resume=resume, progress=progress,
                              progress_json=progress_json, on_progress=on_progress,
                              on_planned=import_ge if spare_core and not rendering else None,
                              on_drained=None if spare_core or rendering else import_ge)
    curated = time.perf_counter()
    result = merge_partitions(cfg, root, [part_dirs[i] for i in sorted(part_dirs)], out_dir, items=items,
                              progress=progress)
    shutil.rmtree(work, ignore_errors=True)
    run = result.summary["run"]
    run.update(source=str(root.resolve()), workers=n_workers, partitions=[p.run_facts() for p in parts])
    run["chunks_reused"] = sum(len(p.chunks_reused) for p in parts)
    run["timing"].update(wall_s=round(time.perf_counter() - started, 3), curate_s=round(curated - started, 3),
                         inputs_per_s=round(result.summary["inputs"] / (time.perf_counter() - started), 2))
    return result


def _remove_other_partitionings(work: Path, partitions: int) -> None:
    """Partition folders of another `partitions` value cannot be reused (other slices)."""
    if not work.is_dir():
        return
    for path in work.glob("part-*-of-*"):
        if not path.name.endswith(f"-of-{partitions:04d}"):
            shutil.rmtree(path, ignore_errors=True)


__all__ = ["curate", "CurationResult", "CorpusValidationError", "summary_lines", "WORK_DIR"]
