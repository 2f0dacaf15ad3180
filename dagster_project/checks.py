"""Blocking data-quality checks: the Great Expectations suites of the corpus and of the region maps.
A failing check stops the run before anything downstream (training) is materialised."""


import dagster as dg

from dagster_project.assets import face_corpus, face_regions
from dagster_project.resources import PathsResource


def _check_result(report) -> dg.AssetCheckResult:
    failures = [f.describe() if hasattr(f, "describe") else str(f) for f in report.failures]
    return dg.AssetCheckResult(
        passed=bool(report.success),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "expectations": int(report.to_dict()["n_expectations"]),
            "failed": len(failures),
            "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures[:50]) or "none"),
        },
    )


@dg.asset_check(asset=face_corpus, blocking=True,
                description="Great Expectations suite on manifest.parquet: unique ids, required columns, "
                            "keypoints inside the crop, scores in range, split proportions.")
def corpus_expectations(paths: PathsResource) -> dg.AssetCheckResult:
    import pandas as pd

    from paco_fr.data.validation import validate_manifest

    cfg = paths.config()
    manifest = pd.read_parquet(paths.data_dir() / "corpus" / "manifest.parquet")
    return _check_result(validate_manifest(manifest, cfg.curation))


@dg.asset_check(asset=face_regions, blocking=True,
                description="Great Expectations suite on the region maps: no face without skin, each "
                            "class's coverage within its documented range.")
def regions_expectations(paths: PathsResource) -> dg.AssetCheckResult:
    import pandas as pd

    from paco_fr.masks.validation import validate_regions

    cfg = paths.config()
    table = pd.read_parquet(paths.data_dir() / "regions" / "regions.parquet")
    return _check_result(validate_regions(table, cfg.regions))
