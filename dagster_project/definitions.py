"""Dagster Definitions for PaCo-FR: `dagster dev -m dagster_project.definitions`.

Assets call the library through DVC stages (`paco-fr <stage>`), so `dvc repro` alone reproduces the
same outputs; this module only wires assets, checks, resources and automation together.
"""

from __future__ import annotations

import os

import dagster as dg

from dagster_project.assets import (benchmark_summary, eval_report, face_corpus, face_regions,
                                    pretrained_encoder, raw_faces)
from dagster_project.checks import corpus_expectations, regions_expectations
from dagster_project.jobs import retrain_job
from dagster_project.resources import (DvcResource, ParamsOverrides, PathsResource, WandbResource,
                                       training_launcher_from_env)
from dagster_project.schedules import weekly_retraining
from dagster_project.sensors import new_raw_images

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

evaluation_automation = dg.AutomationConditionSensorDefinition(
    name="evaluation_automation",
    target=dg.AssetSelection.assets(eval_report, benchmark_summary),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-evaluates every benchmark partition and the summary after the encoder changes.",
)

defs = dg.Definitions(
    assets=[raw_faces, face_corpus, face_regions, pretrained_encoder, eval_report, benchmark_summary],
    asset_checks=[corpus_expectations, regions_expectations],
    jobs=[retrain_job],
    schedules=[weekly_retraining],
    sensors=[new_raw_images, evaluation_automation],
    resources={
        "paths": PathsResource(),
        "dvc": DvcResource(),
        "overrides": ParamsOverrides(),
        "wandb": WandbResource(),
        "training_launcher": training_launcher_from_env(),
    },
    executor=dg.in_process_executor,
)
