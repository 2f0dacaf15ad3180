"""Erasure in Dagster's storage: the `paco_fr.forget_hooks` entry point of `paco-fr forget`.

Materialisations show pictures (corpus previews, region maps, reconstructions) from the picture store,
one folder per artifact version (dagster_project.metadata). After an image is forgotten, the folders of
every version built from it are deleted, and so is every run that materialised such a version (its
events named those pictures); the assets' cached latest events are cleared and the SQLite files
vacuumed so that deleted rows do not linger in free pages.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import dagster as dg

from dagster_project.definitions import build_defs
from dagster_project.metadata import pictures_root
from dagster_project.project import artifact_for, project_config


def purge_versions(root: Path, affected: dict[str, set[str]], instance: dg.DagsterInstance | None = None) -> str:
    """Delete the runs whose materialisations are of `affected` versions (artifact -> md5s)."""
    from dagster_project.record import project_instance

    root = Path(root).resolve()
    defs = build_defs(root, record_only=True)
    cfg = project_config(root)
    own = instance is None
    instance = instance or project_instance(root)
    runs: set[str] = set()
    keys: set[dg.AssetKey] = set()
    try:
        graph = defs.resolve_asset_graph()
        for key in graph.toposorted_asset_keys:
            node = graph.get(key)
            for partition in (node.partitions_def.get_partition_keys() if node.partitions_def else [None]):
                versions = affected.get(artifact_for(key.to_user_string(), partition, cfg.paths.data_dir)
                                        or cfg.paths.raw_dir, set())
                if not versions:
                    continue
                for record in _all_materializations(instance, key, partition):
                    if record.asset_materialization.tags.get("dagster/data_version") in versions:
                        runs.add(record.run_id)
                        keys.add(key)
        for run_id in sorted(runs):
            instance.delete_run(run_id)
        if keys:  # the cached latest materialisation of each asset holds its metadata too
            instance.wipe_asset_cached_status(sorted(keys, key=str))
        storage = getattr(instance, "root_directory", None)
    finally:
        if own:
            instance.dispose()
    vacuumed = _vacuum(Path(storage)) if storage else 0
    removed = 0
    for versions in affected.values():
        for md5 in versions:
            folder = pictures_root(root) / md5.replace(".dir", "")
            if folder.is_dir():
                shutil.rmtree(folder)
                removed += 1
    return (f"Dagster: deleted {len(runs)} run(s) that materialised those versions and {removed} picture folder(s); "
            f"vacuumed {vacuumed} SQLite file(s)")


def _all_materializations(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None):
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor)
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def _vacuum(home: Path) -> int:
    count = 0
    for db in sorted(home.rglob("*.db")):
        with sqlite3.connect(db, timeout=30) as conn:
            conn.execute("VACUUM")
        count += 1
    return count


def forget_hook(root: Path, affected: dict[str, set[str]]) -> str:
    return purge_versions(root, affected)
