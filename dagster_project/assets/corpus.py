"""The raw image folder (observed, not built) and the curated face corpus."""


import dagster as dg

from dagster_project.metadata import counts_table, image_md, lineage_metadata
from dagster_project.resources import DvcResource, ParamsOverrides, PathsResource
from paco_fr.io import read_json
from paco_fr.lineage import content_hash


@dg.observable_source_asset(
    group_name="data",
    description="The raw image folder (params `paths.raw_dir`, versioned with `dvc add`). Its data "
                "version is the DVC-style hash of its files, so new or changed images show up as a new "
                "version and make everything downstream stale.",
    tags={"dagster/kind/folder": "", "dagster/kind/dvc": ""},
    owners=["team:paco-fr"],
)
def raw_faces(paths: PathsResource) -> dg.ObserveResult:
    raw = paths.raw_dir()
    if not raw.exists():
        raise dg.Failure(f"raw folder {raw} does not exist: run `paco-fr raw --out {raw}` or point "
                         "params `paths.raw_dir` at your images")
    files = sum(1 for p in raw.rglob("*") if p.is_file() or p.is_symlink())
    return dg.ObserveResult(data_version=dg.DataVersion(content_hash(raw)),
                            metadata={"path": dg.MetadataValue.path(str(raw)), "files": files})


@dg.asset(
    deps=[raw_faces],
    group_name="data",
    kinds={"python", "dvc", "mediapipe"},
    owners=["team:paco-fr"],
    description="Aligned face crops in tar shards with manifest.parquet / rejected.parquet "
                "(`paco-fr curate`, DVC stage `curate`). Every raw file is either a manifest row or a "
                "rejected row with a reason.",
)
def face_corpus(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource,
                overrides: ParamsOverrides) -> dg.MaterializeResult:
    result = dvc.repro(["curate"], overrides.pairs(paths.root), context)
    corpus = paths.data_dir() / "corpus"
    summary = read_json(corpus / "summary.json")
    metadata = {
        "inputs": summary["inputs"],
        "faces": summary["faces"],
        "faces_synthetic": summary["faces_synthetic"],
        "faces_real": summary["faces_real"],
        "rejected_inputs": summary["rejected_inputs"],
        "rejected_by_reason": counts_table(summary["rejected_by_reason"]),
        "faces_by_split": dg.MetadataValue.json(summary["faces_by_split"]),
        "preview": image_md(corpus / "preview.png", "accepted crops with keypoints"),
        "path": dg.MetadataValue.path(str(corpus)),
        **lineage_metadata(result.outs),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.outs[_out(paths, "corpus")]))


def _out(paths: PathsResource, name: str) -> str:
    return f"{paths.config().paths.data_dir}/{name}"
