"""Weekly retraining: rebuild the corpus from whatever is in the raw folder and pre-train again."""

from __future__ import annotations

import dagster as dg

from dagster_project.jobs import retrain_job

weekly_retraining = dg.ScheduleDefinition(
    name="weekly_retraining",
    job=retrain_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain every week; DVC skips unchanged stages, so a week without new data costs little.",
)
