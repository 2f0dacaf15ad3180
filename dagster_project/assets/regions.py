"""Facial-region label maps for every corpus face (the input of structured masking)."""


import dagster as dg

from dagster_project.assets.corpus import _out, face_corpus
from dagster_project.metadata import image_md, lineage_metadata
from dagster_project.resources import DvcResource, ParamsOverrides, PathsResource
from paco_fr.io import read_json


@dg.asset(
    deps=[face_corpus],
    group_name="data",
    kinds={"python", "dvc", "mediapipe"},
    owners=["team:paco-fr"],
    description="A region label map per face (background, head_other, skin, brows, eyes, nose, mouth) "
                "from landmarks and selfie segmentation (`paco-fr regions`, DVC stage `regions`).",
)
def face_regions(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource,
                 overrides: ParamsOverrides) -> dg.MaterializeResult:
    result = dvc.repro(["regions"], overrides.pairs(paths.root), context)
    regions = paths.data_dir() / "regions"
    summary = read_json(regions / "regions_summary.json")
    coverage = summary.get("classes", summary)
    rows = []
    for name, stats in coverage.items():
        if isinstance(stats, dict) and "mean" in stats:
            rows.append(f"| {name} | {stats['mean']:.3f} | {stats.get('min', float('nan')):.3f} | "
                        f"{stats.get('fraction_empty', stats.get('empty_fraction', 0.0)):.3f} |")
    table = "| class | mean coverage | min | fraction empty |\n|---|---|---|---|\n" + "\n".join(rows)
    return dg.MaterializeResult(
        metadata={
            "faces": summary.get("faces", summary.get("n_faces")),
            "coverage": dg.MetadataValue.md(table),
            "preview": image_md(regions / "preview.png", "regions and patch grid"),
            "path": dg.MetadataValue.path(str(regions)),
            **lineage_metadata(result.outs),
        },
        data_version=dg.DataVersion(result.outs[_out(paths, "regions")]),
    )
