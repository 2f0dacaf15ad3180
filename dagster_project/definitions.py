"""Dagster Definitions for PaCo-FR (`paco-fr-ui`, or `dagster dev -w workspace.yaml`).

Assets run their DVC stages (`paco-fr <stage>`), so `dvc repro` alone reproduces the same outputs, and
an asset's data version is its DVC md5; this module only wires assets, checks, resources, jobs and
automation together, for the repository at $PACO_FR_REPO (default: the one holding this package).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from dagster_project.assets import build_assets
from dagster_project.checks import corpus_expectations, regions_expectations
from dagster_project.experiments import experiment
from dagster_project.jobs import ingest_raw_job
from dagster_project.project import default_repo_root, project_config
from dagster_project.resources import (DvcResource, LocalTrainingLauncher, PathsResource, RecordedTraining,
                                       training_launcher_from_env)
from dagster_project.schedules import weekly_retraining
from dagster_project.sensors import new_raw_images

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def build_defs(root: str | os.PathLike[str], *, training_launcher=None, record_only: bool = False
               ) -> dg.Definitions:
    """The Definitions of the repository at `root`. `record_only`: the assets record what dvc.lock holds
    instead of running their stages (dagster_project.record, after `paco-fr run`)."""
    root = str(Path(root).resolve())
    launcher = training_launcher or (RecordedTraining() if record_only else training_launcher_from_env())
    if isinstance(launcher, LocalTrainingLauncher):
        launcher = LocalTrainingLauncher(repo_root=root, nproc_per_node=launcher.nproc_per_node)
    automation = dg.AutomationConditionSensorDefinition(
        name="rebuild_on_change",
        target=dg.AssetSelection.all() - dg.AssetSelection.keys("raw_faces"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds an asset when one of its inputs got a new data version (or its code changed): "
                    "unchanged inputs launch nothing.",
    )
    return dg.Definitions(
        assets=build_assets(project_config(root)),
        asset_checks=[corpus_expectations, regions_expectations],
        jobs=[ingest_raw_job, experiment],
        schedules=[weekly_retraining],
        sensors=[new_raw_images, automation],
        resources={"paths": PathsResource(repo_root=root), "dvc": DvcResource(repo_root=root, record_only=record_only),
                   "training_launcher": launcher},
        executor=dg.in_process_executor,
    )


defs = build_defs(default_repo_root())
