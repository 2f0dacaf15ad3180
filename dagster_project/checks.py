"""Blocking data-quality checks: the Great Expectations validation each stage ran on what it built.

The stage validates its own output with the configuration it ran with and writes the result beside
it (validation.json); the check reports that result for the version now in the workspace, with the
parameters its lineage record names. It does not rebuild the suite from params.yaml: a corpus built
with other settings (224-px crops) is judged by the settings it was built with. A failing check stops
the run before anything downstream (training) is materialised.
"""

import dagster as dg

from dagster_project.assets import face_corpus, face_regions
from dagster_project.resources import PathsResource
from paco_fr.io import read_json
from paco_fr.lineage import content_hash, find_record


def _validation_result(paths: PathsResource, name: str) -> dg.AssetCheckResult:
    artifact = paths.rel(name)
    folder = paths.root / artifact
    validation_file = folder / "validation.json"
    if not validation_file.exists():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata={"reason": f"{artifact} has no validation.json: the stage did not validate"})
    report = read_json(validation_file)
    md5 = content_hash(folder)
    record = find_record(artifact, md5, root=paths.root)
    failures = report.get("failed") or [f.get("expectation", str(f)) if isinstance(f, dict) else str(f)
                                        for f in report.get("failures", [])]
    metadata = {
        "suite": report.get("suite", ""),
        "expectations": int(report.get("n_expectations", 0)),
        "failed": int(report.get("n_failed", len(failures))),
        "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures[:50]) or "none"),
        "version": md5,
        "validated_with": dg.MetadataValue.json(record["params"] if record else {"unknown": "no lineage record"}),
    }
    return dg.AssetCheckResult(passed=bool(report.get("success")), severity=dg.AssetCheckSeverity.ERROR,
                               metadata=metadata)


@dg.asset_check(asset=face_corpus, blocking=True,
                description="The Great Expectations suite curation ran on manifest.parquet (unique ids, required "
                            "columns, keypoints inside the crop, scores in range, split proportions), with the "
                            "configuration the corpus was built with.")
def corpus_expectations(paths: PathsResource) -> dg.AssetCheckResult:
    return _validation_result(paths, "corpus")


@dg.asset_check(asset=face_regions, blocking=True,
                description="The Great Expectations suite the regions stage ran on its maps (no face without skin, "
                            "each class's coverage within its range), with the configuration they were built with.")
def regions_expectations(paths: PathsResource) -> dg.AssetCheckResult:
    return _validation_result(paths, "regions")
