"""Jobs: the unpartitioned chain from raw images to the pre-trained encoder. Evaluation partitions and
the summary follow by declarative automation (eager) once the encoder changes."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets import face_corpus, face_regions, pretrained_encoder

retrain_job = dg.define_asset_job(
    name="retrain",
    selection=dg.AssetSelection.assets(face_corpus, face_regions, pretrained_encoder),
    description="Curate the raw folder, rebuild region maps and pre-train (DVC skips what is up to date).",
    executor_def=dg.in_process_executor,
)
