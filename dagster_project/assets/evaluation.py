"""Per-benchmark reports, one partition per DVC evaluation stage, and the comparison table.

`eval_report` is partitioned encoder x benchmark (DVC `evaluate@<preset>-<seed>-<benchmark>`) and
depends on exactly its own encoder partition; `baseline_report` holds the reference rows (random
initialisation, raw pixels, HOG) per baseline x benchmark (DVC `evaluate_baseline@...`).
"""

import warnings
from pathlib import Path

import dagster as dg

from dagster_project.assets.training import encoder_partitions
from dagster_project.automation import stage_asset
from dagster_project.metadata import image_md, lineage_metadata
from dagster_project.project import baseline_stage, evaluate_stage
from dagster_project.resources import DvcResource, PathsResource
from paco_fr.config import ProjectConfig
from paco_fr.io import read_json


def _report_metadata(report_dir: Path, root: Path, md5: str) -> dict[str, dg.MetadataValue]:
    report = read_json(report_dir / "report.json")
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731 - an undefined interval is written as null
    rows = [f"| {name} | {fmt(m['value'])} | [{fmt(m.get('ci_low'))}, {fmt(m.get('ci_high'))}] | {m.get('n', '')} |"
            for name, m in report.get("metrics", {}).items() if isinstance(m, dict) and "value" in m]
    primary = report["metrics"][report["primary_metric"]]
    out: dict[str, dg.MetadataValue] = {
        "primary_metric": dg.MetadataValue.text(report["primary_metric"]),
        "value": dg.MetadataValue.float(float(primary["value"])),
        "metrics": dg.MetadataValue.md("| metric | value | 95% CI | n |\n|---|---|---|---|\n" + "\n".join(rows)),
        "synthetic": dg.MetadataValue.bool(bool(report.get("synthetic", False))),
    }
    protocol = report.get("benchmark_protocol") or {}
    if protocol.get("key"):
        out["protocol"] = dg.MetadataValue.text(protocol["key"])
    for png in sorted(report_dir.glob("*.png"))[:2]:
        out[f"plot_{png.stem}"] = image_md(png, png.stem, root=root, version=md5)
    return out


def _report(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource, encoder: str,
            benchmark: str, stage: str) -> dg.MaterializeResult:
    """Run one report's DVC stage; its metadata, with the report's md5 as data version."""
    artifact = paths.rel("reports", encoder, benchmark)
    md5 = dvc.repro([stage], context).outs[artifact]
    return dg.MaterializeResult(
        metadata={**_report_metadata(paths.root / artifact, paths.root, md5), **lineage_metadata(paths.root, artifact, md5)},
        data_version=dg.DataVersion(md5))


def build_evaluation_assets(cfg: ProjectConfig, pretrained_encoder: dg.AssetsDefinition
                            ) -> list[dg.AssetsDefinition]:
    benchmarks = dg.StaticPartitionsDefinition(list(cfg.eval.benchmarks))
    eval_partitions = dg.MultiPartitionsDefinition({"benchmark": benchmarks, "encoder": encoder_partitions(cfg)})
    baseline_partitions = dg.MultiPartitionsDefinition(
        {"baseline": dg.StaticPartitionsDefinition(list(cfg.pipeline.baselines)), "benchmark": benchmarks})

    with warnings.catch_warnings():  # beta API: the mapping is what DVC's matrix means, so we accept it
        warnings.simplefilter("ignore")
        by_encoder = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="encoder")

    @stage_asset(
        "evaluate",
        deps=[dg.AssetDep(pretrained_encoder, partition_mapping=by_encoder)],
        partitions_def=eval_partitions,
        group="evaluation",
        kinds={"pytorch"},
        description="One encoder's report on one benchmark: metrics with 95% bootstrap intervals, plots, the "
                    "protocol, the encoder's model card (`paco-fr evaluate`, DVC stage "
                    "`evaluate@<preset>-<seed>-<benchmark>`).",
    )
    def eval_report(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        return _report(context, dvc, paths, keys["encoder"], keys["benchmark"],
                       evaluate_stage(keys["encoder"], keys["benchmark"]))

    @stage_asset(
        "evaluate",
        partitions_def=baseline_partitions,
        group="evaluation",
        kinds={"pytorch"},
        description="Reference rows on one benchmark: a randomly initialised encoder, raw pixels, a classical "
                    "HOG descriptor, through the same probes and splits (DVC stage "
                    "`evaluate_baseline@<baseline>-<benchmark>`).",
    )
    def baseline_report(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        return _report(context, dvc, paths, keys["baseline"], keys["benchmark"],
                       baseline_stage(keys["baseline"], keys["benchmark"]))

    @stage_asset(
        "compare",
        deps=[eval_report, baseline_report],
        group="evaluation",
        kinds={"pandas"},
        description="One table across encoders and benchmarks (Markdown, CSV, PNG; `paco-fr compare`, DVC stage "
                    "`compare`), with reference numbers beside where the protocol is the same.",
    )
    def benchmark_summary(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource) -> dg.MaterializeResult:
        artifact = paths.rel("summary")
        md5 = dvc.repro(["compare"], context).outs[artifact]
        summary = paths.root / artifact
        table_md = summary / "compare.md"
        return dg.MaterializeResult(
            metadata={"table": dg.MetadataValue.md(table_md.read_text() if table_md.exists() else "*no table*"),
                      "plot": image_md(summary / "compare.png", "comparison", root=paths.root, version=md5),
                      **lineage_metadata(paths.root, artifact, md5)},
            data_version=dg.DataVersion(md5))

    return [eval_report, baseline_report, benchmark_summary]
