"""The PaCo-FR pre-trained encoder, trained by the configured launcher (local Pipes subprocess or a
Kubernetes GPU pod). The `gpu` concurrency pool keeps to one training run at a time."""


import dagster as dg

from dagster_project.assets.regions import face_regions
from dagster_project.metadata import image_md, lineage_metadata
from dagster_project.resources import ParamsOverrides, PathsResource, TrainingLauncher, WandbResource
from paco_fr.config import load_config
from paco_fr.io import read_json
from paco_fr.pipeline import stage_outputs


@dg.asset(
    deps=[face_regions],
    group_name="training",
    kinds={"pytorch", "dvc", "wandb"},
    owners=["team:paco-fr"],
    pool="gpu",
    description="Encoders pre-trained with PaCo-FR (one per preset in `pipeline.presets`; DVC stages "
                "`pretrain@<preset>`): encoder.safetensors loadable by timm, model_card.json, curves, "
                "reconstructions, checkpoints, the offline wandb run.",
)
def pretrained_encoder(context: dg.AssetExecutionContext, paths: PathsResource, overrides: ParamsOverrides,
                       wandb: WandbResource, training_launcher: TrainingLauncher) -> dg.MaterializeResult:
    root = paths.root
    pairs = overrides.pairs(root) + wandb.pairs()
    cfg = load_config(root / "params.yaml", overrides=pairs)
    targets = [f"pretrain@{preset}" for preset in cfg.pipeline.presets]
    invocation = training_launcher.launch(context, targets, pairs)
    child = invocation.get_materialize_result()

    outs = stage_outputs(targets, root=root)
    metadata: dict[str, object] = dict(child.metadata or {})
    for preset in cfg.pipeline.presets:
        enc = root / cfg.paths.data_dir / "encoders" / preset
        card_path = enc / "model_card.json"
        if card_path.exists():
            card = read_json(card_path)
            metadata[f"{preset}/final_metrics"] = dg.MetadataValue.json(card.get("metrics", {}))
            metadata[f"{preset}/wall_time_s"] = float(card.get("wall_time_s", 0.0))
        metadata[f"{preset}/loss_curve"] = image_md(enc / "loss_curve.png", f"{preset} training curves")
        metadata[f"{preset}/reconstructions"] = image_md(enc / "reconstructions.png", f"{preset} reconstructions")
        metadata[f"{preset}/path"] = dg.MetadataValue.path(str(enc))
    metadata.update(lineage_metadata(outs))
    version = child.data_version or None
    return dg.MaterializeResult(metadata=metadata, data_version=version)
