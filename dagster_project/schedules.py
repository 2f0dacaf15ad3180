"""Weekly retraining: version the raw folder every Monday; what changed rebuilds by automation."""

from __future__ import annotations

import dagster as dg

from dagster_project.jobs import ingest_raw_job

weekly_retraining = dg.ScheduleDefinition(
    name="weekly_retraining",
    job=ingest_raw_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Monday: `dvc add` the raw folder. A week without new images gives the same data version "
                "and launches no training or evaluation; new images rebuild exactly the chain below them.",
)
