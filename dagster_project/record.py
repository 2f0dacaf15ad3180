"""Recording a `paco-fr run` in the project's Dagster instance, so the UI shows what was built
whichever way it was built.

After `paco-fr run` has reproduced the pipeline with one `dvc repro`, every asset partition DVC built
is materialised once more through Dagster with `record_only` resources: the same asset functions
(metadata, pictures, blocking checks, data version = dvc.lock md5, code version) run, but read what
dvc.lock holds instead of running DVC. Each partition is its own run, tagged as a recording. A
partition whose latest materialisation already records the newest DVC run of the same version (data
version, lineage run id and code version alike) is left alone, so an up-to-date `paco-fr run` records
nothing and a run that rebuilt three stages records three partitions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml

from dagster_project.definitions import build_defs
from dagster_project.project import artifact_for, project_config, stage_for
from dagster_project.ui import prepare_dagster_home
from paco_fr.lineage import find_records
from paco_fr.pipeline import stage_outputs

RECORDED_TAG = "paco-fr/recorded"


def project_instance(root: Path) -> dg.DagsterInstance:
    """The instance `paco-fr-ui` shows: <repo>/.dagster_home."""
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(root)))


def record_pipeline(root: Path, instance: dg.DagsterInstance | None = None) -> list[tuple[str, str | None]]:
    """Materialise, in record-only mode, every asset partition whose DVC stage has run and is up to date
    (`dvc status`); returns them. Stale or missing ones are left as Dagster last saw them."""
    root = Path(root).resolve()
    stale = set(json.loads(subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root,
                                          capture_output=True, text=True, check=True).stdout or "{}"))
    defs = build_defs(root, record_only=True)
    cfg = project_config(root)
    data_dir, raw_dir = cfg.paths.data_dir, cfg.paths.raw_dir
    built = stage_outputs(root=root)  # DVC output -> md5
    raw_dvc = root / f"{raw_dir}.dvc"
    if raw_dvc.exists():
        built[raw_dir] = yaml.safe_load(raw_dvc.read_text())["outs"][0]["md5"]
    graph = defs.resolve_asset_graph()
    recorded = []
    own = instance is None
    instance = instance or project_instance(root)
    try:
        for key in graph.toposorted_asset_keys:
            node = graph.get(key)
            partitions = list(node.partitions_def.get_partition_keys()) if node.partitions_def else [None]
            for partition in partitions:
                artifact = artifact_for(key.to_user_string(), partition, data_dir)
                stage = stage_for(key.to_user_string(), partition)
                if (artifact and artifact not in built) or (stage or f"{raw_dir}.dvc") in stale:
                    continue  # not built by this pipeline (yet), or out of date
                artifact = artifact or raw_dir
                if artifact in built and _recorded_already(instance, node, partition, artifact, built[artifact], root):
                    continue
                job = defs.resolve_implicit_job_def_def_for_assets([key])
                result = job.execute_in_process(instance=instance, partition_key=partition, asset_selection=[key],
                                                tags={RECORDED_TAG: "paco-fr run"}, raise_on_error=False)
                if not result.success:
                    raise RuntimeError(f"recording {key.to_user_string()} {partition or ''} in Dagster failed")
                recorded.append((key.to_user_string(), partition))
    finally:
        if own:
            instance.dispose()
    return recorded


def _recorded_already(instance: dg.DagsterInstance, node, partition: str | None, artifact: str, md5: str,
                      root: Path) -> bool:
    """Dagster's latest materialisation of this partition is the newest DVC run of version `md5`, made
    by the asset's current code version: recording it again would add nothing."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=node.key, asset_partitions=[partition] if partition else None), limit=1).records
    runs = find_records(artifact, md5, root=root)
    if not records or not runs:
        return False
    event = records[0].asset_materialization
    newest = max(runs, key=lambda r: r["run"].get("created_at", ""))
    last_run = event.metadata.get("last_run")
    # An asset without a code version (raw_faces) gets its run's id as one: nothing to compare.
    same_code = node.code_version is None or event.tags.get("dagster/code_version") == node.code_version
    return (event.tags.get("dagster/data_version") == md5 and same_code and last_run is not None and last_run.value.get("run_id") == newest["run"].get("run_id"))


def record_after_run(root: Path) -> None:
    """The `paco_fr.run_hooks` entry point: called by a production `paco-fr run` once DVC is done."""
    started = time.time()
    try:
        recorded = record_pipeline(root)
    except RuntimeError as exc:  # the pipeline itself succeeded; say why the UI does not show it
        print(f"[paco-fr] {exc}", flush=True)
        return
    print(f"[paco-fr] recorded {len(recorded)} asset partitions in Dagster ({root / '.dagster_home'}) in "
          f"{time.time() - started:.0f} s: `paco-fr-ui` shows them", flush=True)
