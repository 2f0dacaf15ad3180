"""Erasure: `paco-fr forget IMAGE` removes a raw image and every byte derived from it.

What holds the image or a picture of its face, and how each is found from the lineage log:

    raw folder versions          the image file and its sidecars           (the version's .dir listing)
    curation partition versions  the chunk tars holding its crops           (each chunk's faces table)
    corpus versions              the shard tars holding its crops, preview  (the version's manifest)
    region-map versions          the region tars of those shards, preview   (tar member names)
    encoder versions             reconstruction grids and image samples     (every PNG but the loss curve)
    run folders (runs/)          wandb media of those encoders' runs
    Dagster's storage            pictures in those versions' materialisations (a `paco_fr.forget_hooks` hook)

Forgetting removes the image from the raw folder and versions it again (`dvc add`), rebuilds the data
stages (curation and region maps) so that dvc.lock and the workspace hold no trace of it, deletes
exactly those objects from the DVC cache and the default remote (other versions' objects are left
alone, so an old version that held the image can no longer be checked out whole, and nothing else
changes), appends its own record to lineage/forget.jsonl, and lists the encoders and reports that
were built from the image and must be retrained.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from paco_fr.audit import AuditError, cache_object, dir_listing, find_uses, workspace_versions
from paco_fr.lineage import content_hash, record_provenance

FORGET_LOG = Path("lineage") / "forget.jsonl"
# The stages whose outputs hold crops of the faces: rebuilt by forget itself.
DATA_STAGES = ("curate_part", "curate", "regions")
FORGET_HOOKS = "paco_fr.forget_hooks"
SIDECAR_SUFFIXES = (".pts", ".gt.json", ".labels.png")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass
class Purge:
    """One object that held the image or a picture of its face."""

    md5: str
    artifact: str
    version: str
    relpath: str
    why: str


@dataclass
class ForgetReport:
    image: str
    md5: str
    removed_files: list[str] = field(default_factory=list)
    purged: list[Purge] = field(default_factory=list)
    purged_from: list[str] = field(default_factory=list)       # caches and remotes the objects left
    affected: dict[str, set[str]] = field(default_factory=dict)  # artifact -> versions built from the image
    rebuilt: dict[str, str] = field(default_factory=dict)        # artifact -> new version
    retrain: list[str] = field(default_factory=list)             # workspace artifacts now stale
    hooks: list[str] = field(default_factory=list)

    def format(self) -> str:
        out = [f"forgot {self.image} (md5 {self.md5})"]
        out += [f"  removed: {p}" for p in self.removed_files]
        out.append(f"  purged {len(self.purged)} objects from {', '.join(self.purged_from) or 'no cache'}:")
        out += [f"    {p.md5}  {p.artifact}@{p.version[:12]}:{p.relpath}  ({p.why})" for p in self.purged]
        out += [f"  rebuilt {artifact}: now {md5}" for artifact, md5 in sorted(self.rebuilt.items())]
        out += [f"  {hook}" for hook in self.hooks]
        if self.retrain:
            out.append("  built from the image, to retrain (`paco-fr run`, `dvc repro`, or materialise in Dagster):")
            out += [f"    {artifact}" for artifact in self.retrain]
        return "\n".join(out)


def forget_image(image: str | Path, *, root: Path, raw_dir: str, rebuild: bool = True) -> ForgetReport:
    """Erase `image` (a file of the raw folder `raw_dir` of the repository at `root`); see the module doc."""
    from paco_fr.pipeline import dvc_repro, lock_stages, version_raw

    image = Path(image).resolve()
    raw = (root / raw_dir).resolve()
    if not image.is_relative_to(raw):
        raise AuditError(f"{image} is not in the raw folder {raw}: only raw images are forgotten")
    relpath = image.relative_to(raw).as_posix()
    # An image already gone (an erasure interrupted after removing it) is matched by its path.
    uses = find_uses(image, root)
    if not image.is_file() and not uses.raw_versions:
        raise AuditError(f"{image} is not a file and no recorded raw folder version holds {relpath}")
    report = ForgetReport(image=f"{raw_dir}/{relpath}", md5=uses.md5 or _recorded_md5(root, uses, relpath))
    report.affected = _affected_versions(uses)
    report.purged = _objects_to_purge(root, relpath, report.affected)

    for path in _with_sidecars(image):
        if path.exists():
            path.unlink()
            report.removed_files.append(path.relative_to(root).as_posix())
    version_raw(root, raw_dir)
    if rebuild:  # curation and region maps hold crops: rebuilt now, without the image
        dvc_repro(["regions"], root=root, stream=False)
        report.rebuilt = {out["path"]: out["md5"] for name, stage in lock_stages(root).items()
                          if name.split("@")[0] in DATA_STAGES for out in stage["outs"]
                          if not out["path"].startswith("lineage/")}
    report.removed_files += _remove_workspace_pictures(root, report.affected)
    report.removed_files += _remove_run_media(uses.downstream)
    report.purged_from = _purge_objects(root, {p.md5 for p in report.purged})
    for hook in metadata.entry_points(group=FORGET_HOOKS):
        report.hooks.append(hook.load()(root, report.affected))
    current = workspace_versions(root)
    report.retrain = sorted(a for a, versions in report.affected.items()
                            if current.get(a) in versions and a not in report.rebuilt)
    record_provenance(raw, "forget", inputs={}, key=current.get(raw_dir), log=root / FORGET_LOG,
                      params={"image": report.image, "md5": report.md5},
                      extra={"purged": [vars(p) for p in report.purged], "retrain": report.retrain,
                             "affected": {a: sorted(v) for a, v in report.affected.items()}})
    return report


def _recorded_md5(root: Path, uses, relpath: str) -> str:
    for rec in uses.raw_versions:
        for entry in dir_listing(root, rec["key"]) or []:
            if entry["relpath"] == relpath:
                return entry["md5"]
    return "unknown"


def _affected_versions(uses) -> dict[str, set[str]]:
    affected: dict[str, set[str]] = {}
    for rec in [*uses.raw_versions, *uses.downstream]:
        affected.setdefault(rec["artifact"], set()).add(rec["key"])
    return affected


def _with_sidecars(image: Path) -> list[Path]:
    stem = image.name
    for suffix in IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return [image, *(image.with_name(stem + s) for s in SIDECAR_SUFFIXES)]


# --------------------------------------------------------------------------------------------- #
# which objects hold the image


def _objects_to_purge(root: Path, relpath: str, affected: dict[str, set[str]]) -> list[Purge]:
    """Every cached object of an affected version that holds the image, its sidecars or its crops."""
    from paco_fr.lineage import iter_records

    stages = {(r["artifact"], r["key"]): r["stage"] for r in iter_records(root=root)}
    stem = _stem(relpath)
    purges: list[Purge] = []
    face_ids: set[str] = set()
    for artifact, versions in sorted(affected.items()):
        for version in sorted(versions):
            listing = dir_listing(root, version) or []
            stage = stages.get((artifact, version))
            if stage == "raw":
                purges += [Purge(e["md5"], artifact, version, e["relpath"], "the image or its annotation")
                           for e in listing if e["relpath"] == relpath or _stem(e["relpath"]) == stem]
            elif stage in ("curate_part", "curate"):
                ids, holders = _crop_holders(root, listing, relpath, stage)
                face_ids |= ids
                purges += [Purge(e["md5"], artifact, version, e["relpath"], why) for e, why in holders]
    for artifact, versions in sorted(affected.items()):
        for version in sorted(versions):
            stage = stages.get((artifact, version))
            listing = dir_listing(root, version) or []
            if stage == "regions":
                purges += [Purge(e["md5"], artifact, version, e["relpath"], why)
                           for e, why in _region_holders(root, listing, face_ids)]
            elif stage == "pretrain":  # samples of the training faces: any of them may show it
                purges += [Purge(e["md5"], artifact, version, e["relpath"], "reconstructions of training faces")
                           for e in listing if e["relpath"].endswith(".png") and "loss_curve" not in e["relpath"]]
    return purges


def _stem(relpath: str) -> str:
    name = relpath
    for suffix in (*SIDECAR_SUFFIXES, *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_object(root: Path, md5: str) -> bytes | None:
    obj = cache_object(root, md5)
    return obj.read_bytes() if obj.exists() else None


def _crop_holders(root: Path, listing: list[dict[str, str]], relpath: str, stage: str):
    """Face ids of the image in a partition or corpus version, and the entries holding their crops."""
    by_path = {e["relpath"]: e for e in listing}
    tables = [e for e in listing if e["relpath"].endswith("faces.parquet") or e["relpath"] == "manifest.parquet"]
    ids: set[str] = set()
    for entry in tables:
        data = _read_object(root, entry["md5"])
        if data is None:
            continue
        table = pd.read_parquet(io.BytesIO(data), columns=["face_id", "source_path"])
        ids |= set(table.loc[table["source_path"] == relpath, "face_id"].astype(str))
    holders = []
    for entry in listing:
        if entry["relpath"].endswith(".tar") and _tar_holds(root, entry["md5"], ids):
            holders.append((entry, "crops of its faces"))
    if ids and "preview.png" in by_path:
        holders.append((by_path["preview.png"], "preview of the corpus's faces"))
    return ids, holders


def _region_holders(root: Path, listing: list[dict[str, str]], face_ids: set[str]):
    holders = [(e, "region maps of its faces") for e in listing
               if e["relpath"].endswith(".tar") and _tar_holds(root, e["md5"], face_ids)]
    previews = [e for e in listing if e["relpath"] == "preview.png"]
    return holders + [(e, "preview of region maps") for e in previews] if holders else holders


def _tar_holds(root: Path, md5: str, face_ids: set[str]) -> bool:
    if not face_ids:
        return False
    data = _read_object(root, md5)
    if data is None:
        return False
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return any(name.split("/")[-1].split(".")[0] in face_ids for name in tar.getnames())


# --------------------------------------------------------------------------------------------- #
# removing


def _remove_workspace_pictures(root: Path, affected: dict[str, set[str]]) -> list[str]:
    """PNGs of encoders in the workspace that were trained on the image (the encoder is stale anyway)."""
    current = workspace_versions(root)
    removed = []
    for artifact, versions in affected.items():
        folder = root / artifact
        if current.get(artifact) in versions and (folder / "model_card.json").exists():
            for png in sorted(folder.rglob("*.png")):
                if png.name != "loss_curve.png":
                    png.unlink()
                    removed.append(png.relative_to(root).as_posix())
    return removed


def _remove_run_media(records: Iterable[dict[str, Any]]) -> list[str]:
    """wandb media (reconstruction grids) of the runs that trained affected encoders."""
    run_dirs = {Path(rec["run"]["run_dir"]) for rec in records
                if rec.get("stage") == "pretrain" and rec.get("run", {}).get("run_dir")}
    removed = []
    for run_dir in sorted(run_dirs):
        for media in sorted(run_dir.glob("wandb/*/files/media")):
            shutil.rmtree(media, ignore_errors=True)
            removed.append(str(media))
    return removed


def _purge_objects(root: Path, md5s: set[str]) -> list[str]:
    """Delete the objects from the local DVC cache and the default remote (when one is configured)."""
    from dvc.repo import Repo

    places = []
    with Repo(str(root)) as repo:
        odbs = [("local cache", repo.cache.local)]
        remote = repo.config.get("core", {}).get("remote")
        if remote:
            odbs.append((f"remote {remote}", repo.cloud.get_remote_odb(remote)))
        for name, odb in odbs:
            for md5 in md5s:
                path = odb.oid_to_path(md5)
                if odb.fs.exists(path):
                    odb.fs.rm(path)
            places.append(name)
    return places
