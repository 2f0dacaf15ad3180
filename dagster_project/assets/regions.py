"""Facial-region label maps for every corpus face (the input of structured masking)."""

import dagster as dg

from dagster_project.assets.corpus import face_corpus
from dagster_project.automation import stage_asset
from dagster_project.metadata import image_md, lineage_metadata
from dagster_project.resources import DvcResource, PathsResource
from paco_fr.io import read_json


@stage_asset(
    "regions",
    deps=[face_corpus],
    group="data",
    kinds={"python", "mediapipe"},
    description="A region label map per face (background, head_other, skin, brows, eyes, nose, mouth) "
                "from landmarks and selfie segmentation (`paco-fr regions`, DVC stage `regions`).",
)
def face_regions(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource) -> dg.MaterializeResult:
    artifact = paths.rel("regions")
    md5 = dvc.repro(["regions"], context).outs[artifact]
    regions = paths.root / artifact
    summary = read_json(regions / "regions_summary.json")
    rows = [f"| {name} | {stats['mean']:.3f} | {stats.get('min', float('nan')):.3f} | "
            f"{stats.get('fraction_empty', stats.get('empty_fraction', 0.0)):.3f} |"
            for name, stats in summary.get("classes", summary).items() if isinstance(stats, dict) and "mean" in stats]
    table = "| class | mean coverage | min | fraction empty |\n|---|---|---|---|\n" + "\n".join(rows)
    return dg.MaterializeResult(
        metadata={"faces": summary.get("faces", summary.get("n_faces")),
                  "coverage": dg.MetadataValue.md(table),
                  "preview": image_md(regions / "preview.png", "regions and patch grid", root=paths.root, version=md5),
                  **lineage_metadata(paths.root, artifact, md5)},
        data_version=dg.DataVersion(md5))
