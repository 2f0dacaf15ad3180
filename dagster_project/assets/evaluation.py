"""Per-benchmark evaluation reports (one static partition per benchmark) and the comparison table."""


from pathlib import Path

import dagster as dg

from dagster_project.assets.training import pretrained_encoder
from dagster_project.metadata import image_md, lineage_metadata
from dagster_project.resources import DvcResource, ParamsOverrides, PathsResource, default_repo_root
from paco_fr.config import load_config
from paco_fr.io import read_json
from paco_fr.pipeline import combined_version


def _benchmarks() -> list[str]:
    return list(load_config(Path(default_repo_root()) / "params.yaml").eval.benchmarks)


BENCHMARK_PARTITIONS = dg.StaticPartitionsDefinition(_benchmarks())


@dg.asset(
    deps=[pretrained_encoder],
    partitions_def=BENCHMARK_PARTITIONS,
    group_name="evaluation",
    kinds={"pytorch", "dvc"},
    owners=["team:paco-fr"],
    automation_condition=dg.AutomationCondition.eager(),
    description="One benchmark's report for every pre-trained encoder and baseline: metrics with 95% "
                "bootstrap confidence intervals, plots, the encoder's model card and the data version "
                "(`paco-fr evaluate`, DVC stages `evaluate@<preset>-<benchmark>` and "
                "`evaluate_baseline@<baseline>-<benchmark>`).",
)
def eval_report(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource,
                overrides: ParamsOverrides) -> dg.MaterializeResult:
    benchmark = context.partition_key
    pairs = overrides.pairs(paths.root)
    cfg = load_config(paths.root / "params.yaml", overrides=pairs)
    targets = [f"evaluate@{preset}-{benchmark}" for preset in cfg.pipeline.presets]
    targets += [f"evaluate_baseline@{baseline}-{benchmark}" for baseline in cfg.pipeline.baselines]
    result = dvc.repro(targets, pairs, context)

    rows, metadata = [], {}
    for encoder in [*cfg.pipeline.presets, *cfg.pipeline.baselines]:
        report_dir = paths.root / cfg.paths.data_dir / "reports" / encoder / benchmark
        report = read_json(report_dir / "report.json")
        for name, metric in report.get("metrics", {}).items():
            if isinstance(metric, dict) and "value" in metric:
                rows.append(f"| {encoder} | {name} | {metric['value']:.4f} | "
                            f"[{metric.get('ci_low', float('nan')):.4f}, {metric.get('ci_high', float('nan')):.4f}]"
                            f" | {metric.get('n', '')} |")
        for png in sorted(report_dir.glob("*.png"))[:2]:
            metadata[f"{encoder}/{png.stem}"] = image_md(png, f"{encoder}: {png.stem}")
        metadata["synthetic"] = bool(report.get("synthetic", False))
    table = "| encoder | metric | value | 95% CI | n |\n|---|---|---|---|---|\n" + "\n".join(rows)
    metadata["metrics"] = dg.MetadataValue.md(table)
    metadata.update(lineage_metadata(result.outs))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(combined_version(result.outs)))


@dg.asset(
    deps=[eval_report],
    group_name="evaluation",
    kinds={"pandas", "dvc"},
    owners=["team:paco-fr"],
    automation_condition=dg.AutomationCondition.eager(),
    description="One table across encoders and benchmarks (Markdown, CSV, PNG; `paco-fr compare`, DVC "
                "stage `compare`), with the paper's and FaRL's reported numbers beside where they exist.",
)
def benchmark_summary(context: dg.AssetExecutionContext, dvc: DvcResource, paths: PathsResource,
                      overrides: ParamsOverrides) -> dg.MaterializeResult:
    result = dvc.repro(["compare"], overrides.pairs(paths.root), context)
    summary = paths.data_dir() / "summary"
    table_md = next(iter(sorted(summary.glob("*.md"))), None)
    metadata = {
        "table": dg.MetadataValue.md(table_md.read_text() if table_md else "*no table*"),
        "plot": image_md(next(iter(sorted(summary.glob("*.png"))), summary / "missing.png"), "comparison"),
        "path": dg.MetadataValue.path(str(summary)),
        **lineage_metadata(result.outs),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(combined_version(result.outs)))
