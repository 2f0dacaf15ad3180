"""Pre-trained encoders, one partition per DVC `pretrain` stage (preset x seed), trained by the
configured launcher: a local Pipes subprocess, or a Kubernetes GPU pod."""

import os

import dagster as dg

from dagster_project.assets.regions import face_regions
from dagster_project.automation import stage_asset
from dagster_project.metadata import image_md, lineage_metadata
from dagster_project.project import encoder_ids, pretrain_stage
from dagster_project.resources import PathsResource, TrainingLauncher
from paco_fr.config import ProjectConfig
from paco_fr.io import read_json
from paco_fr.pipeline import stage_output


def encoder_partitions(cfg: ProjectConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(encoder_ids(cfg))


def training_pool() -> str:
    """Local training takes the repository's DVC lock like every stage; pods run DVC in their own clone,
    so only the cluster's GPUs limit them."""
    return "gpu" if os.environ.get("PACO_FR_LAUNCHER", "local") == "k8s" else "dvc"


def build_pretrained_encoder(cfg: ProjectConfig) -> dg.AssetsDefinition:
    @stage_asset(
        "pretrain",
        name="pretrained_encoder",
        deps=[face_regions],
        partitions_def=encoder_partitions(cfg),
        group="training",
        kinds={"pytorch", "wandb"},
        pool=training_pool(),
        # A preempted or killed run is retried; training resumes from its last checkpoint (runs/).
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
        description="One pre-trained encoder per partition `<preset>-s<seed>` (DVC stage "
                    "`pretrain@<preset>-<seed>`): encoder.safetensors loadable by timm, model_card.json, "
                    "metrics, loss curves, reconstructions.",
    )
    def pretrained_encoder(context: dg.AssetExecutionContext, paths: PathsResource,
                           training_launcher: TrainingLauncher) -> dg.MaterializeResult:
        encoder = context.partition_key
        artifact = paths.rel("encoders", encoder)
        invocation = training_launcher.launch(context, pretrain_stage(encoder))
        reported = invocation.get_materialize_result()
        md5 = stage_output(pretrain_stage(encoder), artifact, paths.root)
        if reported.data_version is not None and reported.data_version.value != md5:
            raise dg.Failure(f"the training process reported version {reported.data_version.value} of {artifact} "
                             f"but dvc.lock here records {md5}")
        enc = paths.root / artifact
        card = read_json(enc / "model_card.json")
        metadata = {
            "final_metrics": dg.MetadataValue.json(card.get("metrics", {})),
            "loss_curve": image_md(enc / "loss_curve.png", f"{encoder} training curves", root=paths.root, version=md5),
            "reconstructions": image_md(enc / "reconstructions.png", f"{encoder} reconstructions", root=paths.root,
                                        version=md5),
            **{k: v for k, v in (reported.metadata or {}).items() if k in ("ran", "wall_time_s")},
            **lineage_metadata(paths.root, artifact, md5),
        }
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(md5))

    return pretrained_encoder
