"""Driving a real Dagster instance the way its daemon and UI do, for end-to-end tests: materialise one
asset partition as a launched run would, and let declarative automation launch runs tick after tick
until it requests nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg


@dataclass
class Launched:
    runs: list[tuple[str, str | None]] = field(default_factory=list)  # (asset, partition) per run

    def assets(self) -> set[str]:
        return {asset for asset, _ in self.runs}


def partition_keys(defs: dg.Definitions, key: dg.AssetKey) -> list[str | None]:
    node = defs.resolve_asset_graph().get(key)
    return list(node.partitions_def.get_partition_keys()) if node.partitions_def else [None]


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
            ) -> dg.ExecuteInProcessResult:
    """One run of one asset partition (with its checks), as a launched run would execute it."""
    job = defs.resolve_implicit_job_def_def_for_assets([key])
    return job.execute_in_process(instance=instance, partition_key=partition, asset_selection=[key])


def run_automation(defs: dg.Definitions, instance: dg.DagsterInstance, cursor, max_ticks: int = 12):
    """Evaluate the automation conditions and execute what they request, tick after tick, until a tick
    requests nothing. Returns the new cursor and every run launched."""
    launched = Launched()
    graph = defs.resolve_asset_graph()
    for _ in range(max_ticks):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        requested = [(key, partition) for key in graph.toposorted_asset_keys
                     for partition in sorted(result.get_requested_partitions(key), key=str)]
        if not requested:
            return cursor, launched
        for key, partition in requested:
            run = execute(defs, instance, key, partition)
            assert run.success, (key, partition)
            launched.runs.append((key.to_user_string(), partition))
    raise AssertionError(f"automation still requesting runs after {max_ticks} ticks")


def data_versions(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[tuple[str, str | None], str]:
    """(asset, partition) -> the data version of its latest materialisation."""
    out = {}
    for key in defs.resolve_asset_graph().toposorted_asset_keys:
        for partition in partition_keys(defs, key):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1)
            if records.records:
                event = records.records[0].asset_materialization
                out[(key.to_user_string(), partition)] = event.tags["dagster/data_version"]
    return out
