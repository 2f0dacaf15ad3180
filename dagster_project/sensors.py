"""A sensor that notices new or changed images in the raw folder and requests `ingest_raw` (dvc add).
It fingerprints file names, sizes and mtimes (cheap); the asset hashes content, and only a changed
data version moves anything downstream."""


import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from dagster_project.jobs import ingest_raw_job
from dagster_project.resources import PathsResource


def folder_fingerprint(folder: Path) -> tuple[str, int]:
    """(fingerprint, file count) from relative paths, sizes and modification times."""
    digest = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            count += 1
    return digest.hexdigest(), count


@dg.sensor(
    job=ingest_raw_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests an ingest_raw run (dvc add) when files in the raw folder are added, removed or changed.",
)
def new_raw_images(context: dg.SensorEvaluationContext, paths: PathsResource):
    raw = paths.root / paths.config().paths.raw_dir
    if not raw.exists():
        return dg.SkipReason(f"raw folder {raw} does not exist")
    fingerprint, count = folder_fingerprint(raw)
    previous = json.loads(context.cursor) if context.cursor else None
    if previous and previous["fingerprint"] == fingerprint:
        return dg.SkipReason(f"no change in {raw} ({count} files)")
    cursor = json.dumps({"fingerprint": fingerprint, "files": count})
    if previous is None:
        # The first evaluation only records the current state: existing data is not news.
        return dg.SensorResult(cursor=cursor, skip_reason=f"baseline recorded: {count} files")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=fingerprint[:16],
                                    tags={"paco-fr/trigger": "new_raw_images",
                                          "paco-fr/files_before": str(previous["files"]),
                                          "paco-fr/files_after": str(count)})],
        cursor=cursor,
    )
