"""Audit questions over the lineage log: where did this version come from, and what used this image.

Answers follow recorded identities: a report's record names the md5 of the encoder it scored, that
encoder's record the md5s of the corpus and regions it trained on, and so on down to the raw folder.
Each link is looked up by (artifact path, md5), so the chain describes the data that produced the
artifact even after anything upstream was rebuilt; links whose workspace version has moved on since
are marked stale. Old versions' file lists come from DVC's cache (a folder version's ``.dir`` object
lists its files), so `--files` names the raw files of the recorded raw version, not of today's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from paco_fr.lineage import (content_hash, display_path, find_record, find_repo_root, iter_records,
                             read_provenance)


class AuditError(ValueError):
    """The audit question cannot be answered as asked (no record, unknown image)."""


# --------------------------------------------------------------------------------------------- #
# the workspace's versions and DVC's cache


def workspace_versions(root: Path) -> dict[str, str]:
    """Artifact path -> md5 as DVC records it now (dvc.lock outputs and `.dvc` files)."""
    import subprocess

    from paco_fr.pipeline import stage_outputs

    versions: dict[str, str] = stage_outputs(root=root)

    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "*.dvc"],
                            cwd=root, capture_output=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        dvc_file = root / name
        if not dvc_file.is_file():
            continue
        for out in (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", []):
            rel = (dvc_file.parent / out["path"]).relative_to(root).as_posix()
            versions[rel] = out.get("md5", "")
    return versions


def cache_object(root: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object `md5` in the repository's local cache."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.oid_to_path(md5))


def dir_listing(root: Path, md5: str) -> list[dict[str, str]] | None:
    """The (md5, relpath) entries of folder version `md5`, from DVC's cache (None if not cached)."""
    if not md5.endswith(".dir"):
        return None
    obj = cache_object(root, md5)
    return json.loads(obj.read_text()) if obj.exists() else None


def version_file(root: Path, artifact: str, md5: str, relpath: str) -> Path | None:
    """A file of a recorded folder version: the workspace copy when that version is current, else
    the cache object the version's listing points to (None when neither exists)."""
    if workspace_versions(root).get(artifact) == md5 and (root / artifact / relpath).exists():
        return root / artifact / relpath
    for entry in dir_listing(root, md5) or []:
        if entry["relpath"] == relpath:
            obj = cache_object(root, entry["md5"])
            return obj if obj.exists() else None
    return None


# --------------------------------------------------------------------------------------------- #
# where did this come from


@dataclass
class ChainLink:
    depth: int
    name: str
    path: str
    stage: str | None
    recorded_hash: str | None
    current_hash: str | None
    record: dict[str, Any] | None

    @property
    def status(self) -> str:
        if self.record is None and self.depth:
            return "unrecorded"
        if self.current_hash is None:
            return "gone from the workspace"
        return "current" if self.current_hash == self.recorded_hash else f"stale (workspace now {self.current_hash})"


def _current(root: Path, path: str, versions: dict[str, str]) -> str | None:
    if path in versions:
        return versions[path]
    full = root / path
    return content_hash(full) if full.exists() else None


def lineage_chain(path: str | os.PathLike[str], *, key: str | None = None) -> list[ChainLink]:
    """The chain from an artifact version (default: the one in the workspace) back to the raw files."""
    start = Path(path)
    folder = start if start.is_dir() or not start.exists() else start.parent
    root = find_repo_root(folder) or Path.cwd()
    artifact = display_path(folder)
    record = find_record(artifact, key) if key else read_provenance(folder)
    if record is None:
        raise AuditError(f"no lineage record for {artifact}" + (f" version {key}" if key else "")
                         + ": it was not produced by a paco-fr stage, or its record is not in this log")
    versions = workspace_versions(root)
    links: list[ChainLink] = []

    def visit(name: str, rec_path: str, md5: str, rec: dict[str, Any] | None, depth: int) -> None:
        links.append(ChainLink(depth, name, rec_path, rec.get("stage") if rec else None, md5,
                               _current(root, rec_path, versions), rec))
        if rec is None or depth > 32:
            return
        for input_name, info in sorted(rec.get("inputs", {}).items()):
            visit(input_name, info["path"], info["md5"], find_record(info["path"], info["md5"]), depth + 1)

    visit(record["stage"], record["artifact"], record["key"], record, 0)
    return links


def raw_files(root: Path, raw_md5: str) -> list[tuple[str, str]] | None:
    """(md5, relative path) of every file of raw folder version `raw_md5` (None: not in the cache)."""
    listing = dir_listing(root, raw_md5)
    return None if listing is None else [(e["md5"], e["relpath"]) for e in listing]


def format_chain(links: list[ChainLink], *, files: int = 0) -> str:
    root = find_repo_root() or Path.cwd()
    lines = []
    for link in links:
        rec = link.record or {}
        pad = "  " * link.depth
        lines.append(f"{pad}{'└─ ' if link.depth else ''}{link.name}: {link.path}")
        lines.append(f"{pad}     version {link.recorded_hash} ({link.status})")
        if rec:
            run = rec.get("run", {})
            code = rec.get("code", {})
            lines.append(f"{pad}     stage {rec.get('stage')}, run {str(run.get('run_id'))[:12]}, {run.get('created_at')}, "
                         f"git {str(code.get('commit'))[:10]}{' (dirty)' if code.get('dirty') else ''}")
            if rec.get("overrides"):
                lines.append(f"{pad}     overrides {', '.join(rec['overrides'])}")
        if files and (link.stage == "raw" or link.name == "raw"):
            listed = raw_files(root, link.recorded_hash or "")
            if listed is None:
                lines.append(f"{pad}     raw files: not in the DVC cache (dvc fetch the version {link.recorded_hash})")
                continue
            lines.append(f"{pad}     raw files of this version: {len(listed)}")
            lines += [f"{pad}       {md5[:12]}  {rel}" for md5, rel in listed[:files]]
            if len(listed) > files:
                lines.append(f"{pad}       ... {len(listed) - files} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- #
# what used this image


@dataclass
class UsesReport:
    image: str
    md5: str | None
    raw_versions: list[dict[str, Any]] = field(default_factory=list)
    downstream: list[dict[str, Any]] = field(default_factory=list)

    def format(self) -> str:
        out = [f"{self.image} (md5 {self.md5 or 'unknown: file gone, matched by path'})"]
        if not self.raw_versions:
            out.append("  in no recorded raw folder version")
            return "\n".join(out)
        out.append(f"  raw folder versions that hold it: {len(self.raw_versions)}")
        out += [f"    {r['artifact']}  {r['key']}  ({r['run'].get('created_at')})" for r in self.raw_versions]
        by_stage: dict[str, list[dict[str, Any]]] = {}
        for rec in self.downstream:
            by_stage.setdefault(rec.get("stage", "?"), []).append(rec)
        for stage, recs in by_stage.items():
            out.append(f"  {stage} versions built from them: {len(recs)}")
            out += [f"    {r['artifact']}  {r['key']}  ({r['run'].get('created_at')})" for r in recs]
        return "\n".join(out)


def _versions(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (artifact, key): the first (the identity; later lines are re-runs)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        seen.setdefault((rec.get("artifact"), rec.get("key")), rec)
    return list(seen.values())


def find_uses(image: str | os.PathLike[str], root: Path | None = None) -> UsesReport:
    """Every recorded raw folder version holding `image` (by content, or by path when the file is
    gone), and every version recorded downstream of them, across the whole history."""
    image = Path(image)
    root = root or find_repo_root(image.parent if image.parent.exists() else None) or Path.cwd()
    md5 = content_hash(image) if image.is_file() else None
    records = _versions(iter_records(root=root))
    report = UsesReport(image=display_path(image), md5=md5)
    tainted: set[tuple[str, str]] = set()
    relpaths: set[str] = set()
    for rec in records:
        if rec.get("stage") != "raw":
            continue
        relpath = _relative_to(image, root / rec["artifact"])
        listing = dir_listing(root, rec["key"]) or []
        # By content while the file exists (whatever path it had); by path once it is gone.
        hits = [e for e in listing if (e["md5"] == md5 if md5 is not None else e["relpath"] == relpath)]
        if hits:
            report.raw_versions.append(rec)
            tainted.add((rec["artifact"], rec["key"]))
            relpaths |= {e["relpath"] for e in hits}
    changed = True
    while changed:  # propagate along recorded inputs until nothing new is reached
        changed = False
        for rec in records:
            ident = (rec["artifact"], rec["key"])
            if ident in tainted or not any((info["path"], info["md5"]) in tainted for info in rec.get("inputs", {}).values()):
                continue
            # A curation partition or corpus built from such a raw version holds the image only when it
            # lists it (a partition holds a slice of the inputs; a corpus, only faces it accepted).
            if rec.get("stage") in CONTENT_TABLES and not _lists_source(root, rec, relpaths):
                continue
            tainted.add(ident)
            report.downstream.append(rec)
            changed = True
    return report


# The table of a curation version that names its sources: a partition's inputs, a corpus's faces.
CONTENT_TABLES = {"curate_part": "inputs.parquet", "curate": "manifest.parquet"}


def _lists_source(root: Path, rec: dict[str, Any], relpaths: set[str]) -> bool:
    """Whether a curation version's table names one of `relpaths` (True when the table is not at hand:
    without the evidence, the version counts as built from the image)."""
    import io

    import pandas as pd

    table = version_file(root, rec["artifact"], rec["key"], CONTENT_TABLES[rec["stage"]])
    if table is None:
        return True
    # One column of an in-memory file: no Arrow thread pool. A `paco-fr lineage --uses` that had one
    # running exited once with "terminate called without an active exception" (rc != 0, its JSON
    # already printed) under the test suite's load.
    frame = pd.read_parquet(io.BytesIO(table.read_bytes()), columns=["source_path"], use_threads=False)
    return bool(frame["source_path"].isin(relpaths).any())


def _relative_to(image: Path, folder: Path) -> str | None:
    try:
        return image.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None
