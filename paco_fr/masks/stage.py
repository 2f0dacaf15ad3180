"""The `regions` stage: a region label map for every corpus face, stored beside the corpus shards.

Streaming, one corpus shard at a time: read its crops, build each face's map
(paco_fr.masks.regions.RegionMapBuilder), write `regions-XXXXXX.tar`; only the small per-face table
grows with the corpus. Everything is written into a temporary directory that replaces `out_dir` at the
end, so a killed run leaves the previous output intact. Layout (docs/architecture.md):

    regions-XXXXXX.tar     {face_id}.png label maps (mode L), one tar per corpus shard
    regions.parquet        face_id, shard, corpus_shard, synthetic, provider, source, coverage_<class>
    regions_summary.json   `classes`: per class coverage mean / min / max / fraction of faces where empty; counts
    preview.png            crops with region colours and the patch grid
    validation.json        the Great Expectations result
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paco_fr.io import atomic_dir, atomic_path, write_json_atomic
from paco_fr.masks.config import RegionsConfig
from paco_fr.masks.regions import PROVIDERS, FaceInputError, RegionMapBuilder
from paco_fr.masks.regions_def import REGIONS
from paco_fr.masks.storage import (corpus_shards, decode_face, read_shard_samples, region_shard_name,
                                   write_region_shard)
from paco_fr.masks.validation import RegionsValidationError, coverage_column, validate_regions

log = logging.getLogger(__name__)

TABLE_FILE = "regions.parquet"
SUMMARY_FILE = "regions_summary.json"
PREVIEW_FILE = "preview.png"
VALIDATION_FILE = "validation.json"
MANIFEST_FILE = "manifest.parquet"
_MAX_LISTED_ERRORS = 50


class RegionsInputError(ValueError):
    """The corpus cannot be turned into region maps; `problems` lists (face_id or shard, reason)."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        self.problems = problems or []
        listed = "".join(f"\n  - {reason}" for _, reason in self.problems[:_MAX_LISTED_ERRORS])
        more = len(self.problems) - _MAX_LISTED_ERRORS
        super().__init__(message + listed + (f"\n  ... and {more} more" if more > 0 else ""))


@dataclass
class RegionsResult:
    out_dir: Path
    shards: list[Path]
    table_path: Path
    summary_path: Path
    preview_path: Path
    validation_path: Path
    summary: dict[str, Any]
    validation: dict[str, Any]
    # How long this run took: a fact of the run (recorded in provenance), not of the region maps, so
    # it stays out of regions_summary.json and the same corpus gives the same bytes.
    wall_time_s: float = 0.0


def build_regions(cfg: RegionsConfig, corpus_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  *, progress: bool = True) -> RegionsResult:
    """Build face_regions for the corpus in `corpus_dir` into `out_dir`.

    Raises RegionsInputError (nothing written) when the corpus is not readable as a corpus or faces
    cannot be mapped (all of them listed with a reason), and RegionsValidationError (after writing
    every output, validation.json included) when the maps fail the quality gate."""
    import pandas as pd  # noqa: PLC0415
    from tqdm.auto import tqdm  # noqa: PLC0415

    started = time.perf_counter()
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    if out_dir.resolve() == corpus_dir.resolve():
        raise RegionsInputError(f"--out must differ from the corpus folder ({corpus_dir})")
    manifest = _read_manifest(corpus_dir)
    shards = corpus_shards(corpus_dir)
    if not shards:
        raise RegionsInputError(f"{corpus_dir}: no finished shards under shards/ (is this a curated corpus?)")
    expected = set(manifest["face_id"])
    synthetic = dict(zip(manifest["face_id"], manifest["synthetic"])) if "synthetic" in manifest else {}

    tables: list[pd.DataFrame] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    preview: list[tuple[np.ndarray, np.ndarray, str]] = []
    written: list[Path] = []
    bar = tqdm(total=len(expected), desc="regions", unit="face", disable=not progress)
    with atomic_dir(out_dir) as work, RegionMapBuilder(cfg) as builder:
        for shard in shards:
            samples = _read_samples(shard, problems)
            label_maps: dict[str, np.ndarray] = {}
            rows: list[dict[str, Any]] = []
            for face_id in sorted(samples):
                bar.update(1)
                if face_id in seen:
                    problems.append((face_id, f"{face_id}: appears in more than one shard (again in {shard.name})"))
                    continue
                seen.add(face_id)
                try:
                    face = decode_face(face_id, samples[face_id])
                    region_map = builder.build(face)
                except FaceInputError as exc:
                    problems.append((face_id, f"{shard.name}: {exc}"))
                    continue
                label_maps[face_id] = region_map.labels
                rows.append(_row(face_id, shard, region_map, synthetic.get(face_id)))
                if len(preview) < cfg.preview_faces:
                    preview.append((face.crop, region_map.labels, f"{face_id[:12]} {region_map.provider}"))
            if problems:
                continue  # keep scanning so that every problem is reported at once
            written.append(write_region_shard(work / region_shard_name(shard), label_maps))
            tables.append(pd.DataFrame(rows, columns=_columns()))
        bar.close()
        problems += [(f, f"{f}: in manifest.parquet but in no shard") for f in sorted(expected - seen)]
        problems += [(f, f"{f}: in a shard but not in manifest.parquet") for f in sorted(seen - expected)]
        if problems:
            raise RegionsInputError(f"{corpus_dir}: {len(problems)} problem(s), no region maps written:", problems)

        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=_columns())
        with atomic_path(work / TABLE_FILE) as tmp:
            table.to_parquet(tmp, index=False)
        report = validate_regions(table, cfg)
        validation = report.to_dict()
        write_json_atomic(work / VALIDATION_FILE, validation)
        summary = summarise(table, cfg, n_shards=len(shards))
        summary["validation_success"] = report.success
        write_json_atomic(work / SUMMARY_FILE, summary)
        _write_preview(work / PREVIEW_FILE, preview, cfg.preview_patch_size)
    result = RegionsResult(
        out_dir=out_dir, shards=[out_dir / p.name for p in written], table_path=out_dir / TABLE_FILE,
        summary_path=out_dir / SUMMARY_FILE, preview_path=out_dir / PREVIEW_FILE,
        validation_path=out_dir / VALIDATION_FILE, summary=summary, validation=validation,
        wall_time_s=round(time.perf_counter() - started, 3))
    log.info("regions: %d faces in %d shards (%s), validation %s", len(table), len(written),
             summary["faces_by_provider"], "passed" if report.success else "FAILED")
    if not report.success:
        raise RegionsValidationError(report)
    return result


def summarise(table, cfg: RegionsConfig, *, n_shards: int | None = None) -> dict[str, Any]:
    """Per class coverage statistics and provider counts of a regions table."""
    classes = {}
    for name in REGIONS:
        values = table[coverage_column(name)].to_numpy(dtype=np.float64)
        classes[name] = {
            "mean": float(values.mean()) if len(values) else None,
            "min": float(values.min()) if len(values) else None,
            "max": float(values.max()) if len(values) else None,
            "fraction_empty": float((values == 0).mean()) if len(values) else None,
        }
    n = int(len(table))
    return {
        "n_faces": n,
        "n_shards": n_shards,
        "provider_setting": cfg.provider,
        "faces_by_provider": {p: int(n) for p in PROVIDERS if (n := (table["provider"] == p).sum())},
        "faces_by_source": {str(k): int(v) for k, v in table["source"].value_counts().sort_index().items()},
        "classes": classes,
    }


def _columns() -> list[str]:
    return ["face_id", "shard", "corpus_shard", "synthetic", "provider", "source",
            *(coverage_column(n) for n in REGIONS)]


def _row(face_id: str, shard: Path, region_map, synthetic: Any) -> dict[str, Any]:
    counts = np.bincount(region_map.labels.ravel(), minlength=len(REGIONS)).astype(np.float64)
    coverage = counts / counts.sum()
    row: dict[str, Any] = {
        "face_id": face_id,
        "shard": region_shard_name(shard),
        "corpus_shard": f"shards/{shard.name}",
        "synthetic": None if synthetic is None else bool(synthetic),
        "provider": region_map.provider,
        "source": region_map.source,
    }
    row.update({coverage_column(name): float(coverage[i]) for i, name in enumerate(REGIONS)})
    return row


def _read_manifest(corpus_dir: Path):
    import pandas as pd  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = corpus_dir / MANIFEST_FILE
    if not path.is_file():
        raise RegionsInputError(f"{corpus_dir}: no {MANIFEST_FILE} (is this a curated corpus?)")
    try:
        available = set(pq.read_schema(path).names)
        if "face_id" not in available:
            raise RegionsInputError(f"{path}: no face_id column")
        manifest = pd.read_parquet(path, columns=[c for c in ("face_id", "synthetic") if c in available])
    except (OSError, ValueError) as exc:
        if isinstance(exc, RegionsInputError):
            raise
        raise RegionsInputError(f"{path}: unreadable parquet ({exc})") from exc
    duplicated = manifest["face_id"][manifest["face_id"].duplicated()].tolist()
    if duplicated:
        raise RegionsInputError(f"{path}: duplicated face ids", [(f, f"{f}: listed twice") for f in duplicated])
    return manifest


def _read_samples(shard: Path, problems: list[tuple[str, str]]) -> dict[str, dict[str, bytes]]:
    try:
        return read_shard_samples(shard)
    except FaceInputError as exc:
        problems.append((shard.name, str(exc)))
        return {}


def _write_preview(path: Path, preview: list[tuple[np.ndarray, np.ndarray, str]], patch_size: int) -> None:
    from paco_fr.masks.preview import region_grid  # noqa: PLC0415

    crops, maps, captions = zip(*preview) if preview else ((), (), ())
    image = region_grid(list(crops), list(maps), list(captions), patch_size=patch_size)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
