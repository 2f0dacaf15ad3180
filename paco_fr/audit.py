"""Audit questions over provenance records: where did this come from, what used this image, and
erasure of one raw image (remove it, then report what is now stale).

Records come from two places: the `provenance.json` of artifacts that exist now, and the append-only
log (`paco_fr.lineage.lineage_log_path()`), which also remembers versions overwritten since.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from paco_fr.io import atomic_path, sha256_file
from paco_fr.lineage import (PROVENANCE_FILE, content_hash, display_path, lineage_log_path, read_provenance,
                             record_provenance, sources_index_dir)


class AuditError(ValueError):
    """The audit question cannot be answered as asked (no record, unknown image)."""


def load_records(search_roots: Iterable[Path] = ()) -> list[dict[str, Any]]:
    """Every known provenance record, newest last, de-duplicated by (run_id, artifact, artifact_hash)."""
    records: list[dict[str, Any]] = []
    log = lineage_log_path()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash; the provenance files still have it
    for root in search_roots:
        if Path(root).exists():
            for prov in sorted(Path(root).rglob(PROVENANCE_FILE)):
                records.append(json.loads(prov.read_text()))
    seen, unique = set(), []
    for rec in records:
        key = (rec.get("run_id"), rec.get("artifact"), rec.get("artifact_hash"))
        if key not in seen:
            seen.add(key)
            unique.append(rec)
    return sorted(unique, key=lambda r: r.get("created_at", ""))


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
        if self.current_hash is None:
            return "missing"
        if self.recorded_hash is None:
            return "untracked"
        return "current" if self.current_hash == self.recorded_hash else "changed since"


def lineage_chain(path: str | os.PathLike[str]) -> list[ChainLink]:
    """The chain from an artifact back to the raw files, depth-first along recorded inputs."""
    start = Path(path)
    record = read_provenance(start)
    if record is None:
        raise AuditError(f"no {PROVENANCE_FILE} at {start if start.is_dir() else start.parent}: "
                         "it was not produced by a paco-fr stage")
    links: list[ChainLink] = []

    def visit(name: str, p: Path, recorded: str | None, depth: int, rec: dict[str, Any] | None) -> None:
        current = content_hash(p) if p.exists() else None
        links.append(ChainLink(depth, name, display_path(p), rec.get("stage") if rec else None,
                               recorded, current, rec))
        if rec is None or depth > 16:
            return
        for input_name, info in rec.get("inputs", {}).items():
            ip = Path(info["path"])
            visit(input_name, ip, info.get("hash"), depth + 1, read_provenance(ip) if ip.is_dir() else None)

    root_dir = start if start.is_dir() else start.parent
    visit(record.get("stage", "artifact"), root_dir, record.get("artifact_hash"), 0, record)
    return links


def format_chain(links: list[ChainLink], *, manifest_rows: int = 0) -> str:
    lines = []
    for link in links:
        rec = link.record or {}
        head = f"{'  ' * link.depth}{'└─ ' if link.depth else ''}{link.name}: {link.path}"
        details = [f"hash {link.recorded_hash or link.current_hash or '-'} ({link.status})"]
        if rec:
            details.append(f"stage {rec.get('stage')}, run {str(rec.get('run_id'))[:12]}, "
                           f"{rec.get('created_at')}, git {str((rec.get('git') or {}).get('commit'))[:10]}")
            if rec.get("overrides"):
                details.append(f"overrides {', '.join(rec['overrides'])}")
        lines.append(head)
        lines.extend(f"{'  ' * link.depth}     {d}" for d in details)
        manifest = Path(link.path) / "manifest.parquet"
        if manifest_rows and manifest.exists():
            import pandas as pd

            table = pd.read_parquet(manifest, columns=["source_path", "source_sha256"]).drop_duplicates()
            lines.append(f"{'  ' * link.depth}     raw files: {len(table)}")
            for row in table.head(manifest_rows).itertuples():
                lines.append(f"{'  ' * link.depth}       {row.source_sha256[:12]}  {row.source_path}")
            if len(table) > manifest_rows:
                lines.append(f"{'  ' * link.depth}       ... {len(table) - manifest_rows} more")
    return "\n".join(lines)


@dataclass
class UsesReport:
    image: str
    sha256: str | None
    corpora: list[dict[str, Any]] = field(default_factory=list)
    downstream: list[dict[str, Any]] = field(default_factory=list)

    def format(self) -> str:
        out = [f"{self.image} (sha256 {self.sha256 or 'unknown: file gone, matched by path'})"]
        if not self.corpora:
            out.append("  used by no recorded corpus version")
            return "\n".join(out)
        out.append(f"  corpus versions that contain it: {len(self.corpora)}")
        for rec in self.corpora:
            out.append(f"    {rec['artifact']}  {rec['artifact_hash']}  ({rec.get('created_at')}, "
                       f"faces {', '.join(rec.get('_face_ids', []))})")
        by_stage: dict[str, list[dict[str, Any]]] = {}
        for rec in self.downstream:
            by_stage.setdefault(rec.get("stage", "?"), []).append(rec)
        for stage, recs in by_stage.items():
            out.append(f"  {stage} artifacts built from them: {len(recs)}")
            for rec in recs:
                out.append(f"    {rec['artifact']}  {rec['artifact_hash']}  ({rec.get('created_at')})")
        return "\n".join(out)


def _source_hits(sha: str | None, image_path: str, corpus_rec: dict[str, Any]) -> list[str]:
    """Face ids of the image in that corpus version (from the sources index or the live manifest)."""
    import pandas as pd

    candidates = [sources_index_dir() / f"{corpus_rec['artifact_hash'].replace('.dir', '')}.parquet"]
    live = Path(corpus_rec["artifact"]) / "manifest.parquet"
    if live.exists() and content_hash(live.parent) == corpus_rec["artifact_hash"]:
        candidates.append(live)
    for table_path in candidates:
        if table_path.exists():
            table = pd.read_parquet(table_path, columns=["face_id", "source_path", "source_sha256"])
            hit = table["source_sha256"] == sha if sha else table["source_path"].map(
                lambda p: Path(p).name == Path(image_path).name and p.endswith(Path(image_path).name))
            return sorted(table.loc[hit, "face_id"].astype(str))
    return []


def find_uses(image: str | os.PathLike[str], search_roots: Iterable[Path] = ()) -> UsesReport:
    """Every recorded corpus version that holds `image`, and every artifact downstream of them."""
    image = Path(image)
    sha = sha256_file(image) if image.is_file() else None
    records = load_records(search_roots)
    report = UsesReport(image=display_path(image), sha256=sha)
    tainted: set[str] = set()
    for rec in records:
        if rec.get("stage") in ("curate", "forget"):
            faces = _source_hits(sha, str(image), rec)
            if faces:
                report.corpora.append({**rec, "_face_ids": faces})
                tainted.add(rec["artifact_hash"])
    # A record is identified by its content hash, and also by (artifact path, run id): an input
    # records both, and the second survives files appended to an artifact after it was recorded.
    tainted_runs = {(rec["artifact"], rec.get("run_id")) for rec in report.corpora}
    changed = True
    while changed:  # propagate along recorded inputs until nothing new is reached
        changed = False
        for rec in records:
            if rec["artifact_hash"] in tainted or rec.get("stage") in ("curate", "forget"):
                continue
            if any(info.get("hash") in tainted or (info.get("path"), info.get("provenance_run_id")) in tainted_runs
                   for info in rec.get("inputs", {}).values()):
                tainted.add(rec["artifact_hash"])
                tainted_runs.add((rec["artifact"], rec.get("run_id")))
                report.downstream.append(rec)
                changed = True
    return report


@dataclass
class ForgetReport:
    image: str
    removed_files: list[str]
    removed_faces: list[str]
    rewritten: list[str]
    stale: list[dict[str, Any]]
    notes: list[str]

    def format(self) -> str:
        out = [f"forgot {self.image}"]
        out += [f"  removed file: {p}" for p in self.removed_files]
        out.append(f"  removed faces: {', '.join(self.removed_faces) or 'none (not in the current corpus)'}")
        out += [f"  rewritten: {p}" for p in self.rewritten]
        if self.stale:
            out.append("  now stale, rebuild with `dvc repro` (or materialise in Dagster):")
            out += [f"    {r.get('stage')}: {r['artifact']}" for r in self.stale]
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)


SIDECAR_SUFFIXES = (".pts", ".gt.json", ".labels.png")


def forget_image(image: str | os.PathLike[str], *, corpus_dir: Path, regions_dir: Path | None,
                 search_roots: Iterable[Path] = ()) -> ForgetReport:
    """Remove a raw image (and its annotation sidecars) from the raw folder, its faces from the corpus
    (shards, manifest) and their region maps; report every recorded artifact that is now stale."""
    image = Path(image)
    if not image.exists() and not image.is_symlink():
        raise AuditError(f"{image} does not exist")
    uses = find_uses(image, [*search_roots, corpus_dir.parent])
    removed_files, rewritten, removed_faces = [], [], []
    face_ids: set[str] = set()
    manifest_path = corpus_dir / "manifest.parquet"
    if manifest_path.exists():
        import pandas as pd

        manifest = pd.read_parquet(manifest_path)
        hit = manifest["source_sha256"] == uses.sha256 if uses.sha256 else manifest["source_path"] == str(image)
        face_ids = set(manifest.loc[hit, "face_id"].astype(str))
        if face_ids:
            for shard in sorted(set(manifest.loc[hit, "shard"].astype(str))):
                shard_path = corpus_dir / "shards" / shard if not shard.startswith("shards/") else corpus_dir / shard
                if _drop_members(shard_path, face_ids):
                    rewritten.append(display_path(shard_path))
            with atomic_path(manifest_path) as tmp:
                manifest.loc[~hit].to_parquet(tmp, index=False)
            rewritten.append(display_path(manifest_path))
            removed_faces = sorted(face_ids)
    if regions_dir is not None and face_ids and regions_dir.exists():
        for tar_path in sorted(regions_dir.glob("regions-*.tar")):
            if _drop_members(tar_path, face_ids):
                rewritten.append(display_path(tar_path))
        table_path = regions_dir / "regions.parquet"
        if table_path.exists():
            import pandas as pd

            table = pd.read_parquet(table_path)
            with atomic_path(table_path) as tmp:
                table.loc[~table["face_id"].astype(str).isin(face_ids)].to_parquet(tmp, index=False)
            rewritten.append(display_path(table_path))
    stem = image.name
    for suffix in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for sidecar in [image, *(image.with_name(stem + s) for s in SIDECAR_SUFFIXES)]:
        if sidecar.exists() or sidecar.is_symlink():
            sidecar.unlink()
            removed_files.append(display_path(sidecar))
    if face_ids:
        record_provenance(corpus_dir, "forget", inputs={}, params={"image": uses.image, "sha256": uses.sha256,
                                                                   "faces": sorted(face_ids)})
    notes = ["earlier versions of the raw folder and the corpus still hold the image in the DVC cache "
             "and remote: after rebuilding, run `dvc gc --workspace --cloud` to purge them"]
    stale = [r for r in uses.downstream] + [r for r in uses.corpora if r["artifact_hash"] != content_hash(corpus_dir)]
    return ForgetReport(image=uses.image, removed_files=removed_files, removed_faces=removed_faces,
                        rewritten=rewritten, stale=_latest_per_artifact(stale), notes=notes)


def _latest_per_artifact(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in records:
        latest[rec["artifact"]] = rec
    return list(latest.values())


def _drop_members(tar_path: Path, face_ids: set[str]) -> bool:
    """Rewrite a tar shard without the members of `face_ids` (member name `<face_id>.<ext>`)."""
    if not tar_path.exists():
        return False
    with tarfile.open(tar_path) as src:
        members = src.getmembers()
        keep = [m for m in members if m.name.split("/")[-1].split(".")[0] not in face_ids]
        if len(keep) == len(members):
            return False
        with atomic_path(tar_path) as tmp:
            with tarfile.open(tmp, "w") as dst:
                for member in keep:
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return True
