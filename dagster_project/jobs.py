"""Jobs. `ingest_raw` versions the raw folder (what the schedule and the sensor launch); everything
downstream follows by declarative automation, and only where an input's data version changed."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets import raw_faces

ingest_raw_job = dg.define_asset_job(
    name="ingest_raw",
    selection=dg.AssetSelection.assets(raw_faces),
    description="`dvc add` the raw folder. New or changed images give a new data version, and the corpus, "
                "region maps, encoders, reports and the summary rebuild by automation; unchanged images "
                "launch nothing more.",
)
