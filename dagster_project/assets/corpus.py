"""The curated face corpus: partitions of the raw folder curated separately (DVC `curate_part@<i>`, one
Dagster partition each, so the instance's run launcher can put them on as many machines), then merged
into one corpus (DVC `curate`)."""

import dagster as dg

from dagster_project.assets.raw import raw_faces
from dagster_project.automation import stage_asset
from dagster_project.metadata import counts_table, image_md, lineage_metadata
from dagster_project.resources import DvcResource, PathsResource
from paco_fr.config import ProjectConfig
from paco_fr.io import read_json


def build_corpus_part(cfg: ProjectConfig) -> dg.AssetsDefinition:
    parts = [str(i) for i in range(cfg.curation.n_partitions)]

    @stage_asset(
        "curate",
        name="face_corpus_part",
        deps=[raw_faces],
        partitions_def=dg.StaticPartitionsDefinition(parts),
        group="data",
        kinds={"python", "mediapipe"},
        # A worker killed by the detector costs only its chunk; a killed run resumes the partition.
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
        description="One slice of the raw folder (a stable hash of each path; params curation.partitions) "
                    "curated by worker processes into chunks (`paco-fr curate-part`, DVC stage "
                    "`curate_part@<i>`); finished chunks survive a killed run.",
    )
    def face_corpus_part(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource
                         ) -> dg.MaterializeResult:
        part = context.partition_key
        artifact = paths.rel("corpus_parts", f"part-{part}")
        md5 = dvc.repro([f"curate_part@{part}"], context).outs[artifact]
        marker = read_json(paths.root / artifact / "part.json")
        return dg.MaterializeResult(
            metadata={"inputs": marker.get("inputs"), "candidate_faces": marker.get("faces"),
                      "rejected": marker.get("rejected"), **lineage_metadata(paths.root, artifact, md5)},
            data_version=dg.DataVersion(md5))

    return face_corpus_part


@stage_asset(
    "curate",
    deps=[raw_faces, dg.AssetDep("face_corpus_part")],
    group="data",
    kinds={"python"},
    description="Aligned face crops in tar shards (a seeded global order) with manifest.parquet / "
                "rejected.parquet: the merge of every partition, which decides duplicates across them, "
                "the splits and the shard order (`paco-fr curate-merge`, DVC stage `curate`). Every raw file "
                "is either a manifest row or a rejected row with a reason.",
)
def face_corpus(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource) -> dg.MaterializeResult:
    artifact = paths.rel("corpus")
    md5 = dvc.repro(["curate"], context).outs[artifact]
    corpus = paths.root / artifact
    summary = read_json(corpus / "summary.json")
    metadata = {
        "inputs": summary.get("inputs"),
        "faces": summary.get("faces"),
        "faces_synthetic": summary.get("faces_synthetic"),
        "faces_real": summary.get("faces_real"),
        "rejected_inputs": summary.get("rejected_inputs"),
        "rejected_by_reason": counts_table(summary.get("rejected_by_reason", {})),
        "faces_by_split": dg.MetadataValue.json(summary.get("faces_by_split", {})),
        "preview": image_md(corpus / "preview.png", "accepted crops with keypoints", root=paths.root, version=md5),
        **lineage_metadata(paths.root, artifact, md5),
    }
    return dg.MaterializeResult(metadata={k: v for k, v in metadata.items() if v is not None},
                                data_version=dg.DataVersion(md5))
