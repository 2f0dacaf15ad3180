"""The per-benchmark report: report.json (the record), report.md (for people) and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paco_fr.eval import plots
from paco_fr.eval.data import BenchmarkData
from paco_fr.eval.protocol_types import ProtocolOutput
from paco_fr.eval.scoring import Scores
from paco_fr.io import write_json_atomic, write_text_atomic

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
N_EXAMPLES = 4


def write_plots(out_dir: Path, data: BenchmarkData, out: ProtocolOutput, scores: Scores, title: str) -> list[str]:
    task, d = data.task, scores.details
    written: list[Path] = []
    te = out.test_index
    if task == "landmarks":
        written.append(plots.ced_plot(out_dir / "ced.png", d["ced"]["thresholds"], d["ced"]["fraction"], title))
        pick = te[:N_EXAMPLES]
        written.append(plots.landmark_examples_plot(out_dir / "landmark_examples.png", data.images[pick],
                                                    data.targets["landmarks"][pick],
                                                    out.predictions["landmarks"][:N_EXAMPLES], title))
    elif task in ("expression", "classification"):
        written.append(plots.confusion_plot(out_dir / "confusion.png", d["confusion_matrix"], d["class_names"], title))
    elif task == "verification":
        written.append(plots.roc_plot(out_dir / "roc.png", d["roc"]["far"], d["roc"]["tar"], title))
    elif task == "parsing":
        pick = te[:N_EXAMPLES]
        written.append(plots.parsing_examples_plot(out_dir / "parsing_examples.png", data.images[pick],
                                                   data.targets["label_map"][pick],
                                                   out.predictions["label_map"][:N_EXAMPLES],
                                                   _palette(data.meta["class_names"]), title))
    elif task == "attributes":
        names = data.meta["attribute_names"]
        ms = [scores.metrics[f"accuracy/{n}"] for n in names]
        written.append(plots.attribute_plot(out_dir / "attributes.png", names, [m.value for m in ms],
                                            [m.ci_low for m in ms], [m.ci_high for m in ms], title))
    return [p.name for p in written]


def _palette(class_names: list[str]) -> list[tuple[int, int, int]]:
    """Our regions' colours for our 9 classes; matplotlib's tab20 for a dataset's own classes."""
    from paco_fr.masks.regions_def import REGION_COLOURS, REGIONS

    if list(class_names) == list(REGIONS):
        return list(REGION_COLOURS)
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [(0, 0, 0)] + [tuple(int(255 * c) for c in cmap(i % 20)[:3]) for i in range(len(class_names) - 1)]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["metrics"]
    enc, card = report["encoder"], report.get("model_card", {}).get("encoder", {})
    bp = report.get("benchmark_protocol") or {}
    lines = [
        f"# {report['benchmark']}: {report['encoder_label']}",
        "",
        f"- task: **{report['task']}**; data: **{'synthetic' if report['synthetic'] else 'real'}**"
        + (f"; paper benchmark: {report['paper_name']}" if report.get("paper_name") else ""),
        f"- benchmark protocol: **{bp.get('key', '?')}** ({'standard' if bp.get('standard') else 'ours'}): "
        f"{bp.get('title', '')}" + ("" if bp.get("full_test_split") is not False
                                    else "; **test split subsampled** (not the whole official test split)"),
        f"- encoder: `{report['encoder_spec']}` (name {enc.get('name')}, preset {enc.get('preset')}, seed "
        f"{enc.get('seed')}; {card.get('name', '?')}, {card.get('img_size', '?')} px, patch {card.get('patch_size', '?')})",
        f"- data version: `{report['data_version']}`; items: {report['data']['counts']}",
        f"- probe: **{report['protocol']['name']}** ({report['protocol']['estimator']}); chosen on val: "
        f"{report['protocol']['chosen']}; refit on: {report['protocol']['refit_on']}",
    ]
    if report["protocol"].get("note"):
        lines.append(f"- note: {report['protocol']['note']}")
    if report["protocol"].get("chosen_at_grid_edge"):
        lines.append(f"- warning: {', '.join(report['protocol']['chosen_at_grid_edge'])} chosen at the edge of its "
                     "grid; the best value may lie outside it (widen the grid in params.yaml eval:)")
    lines += [
        f"- primary metric: **{report['primary_metric']}** "
        f"({'higher' if report['higher_is_better'] else 'lower'} is better)",
        "",
        "| metric | value | 95 % CI | n |",
        "|---|---|---|---|",
    ]
    for name, v in m.items():
        bold = "**" if name == report["primary_metric"] else ""
        sd = f" ± {_fmt(v['sd'])} (sd over folds)" if v.get("sd") is not None else ""
        lines.append(f"| {bold}{name}{bold} | {bold}{_fmt(v['value'])}{bold}{sd} | "
                     f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}] | {v['n']} |")
    ref = report.get("details", {}).get("reference")
    if ref:
        lines += ["", f"Reference without image features ({ref['name']}, fitted on train+val): "
                  f"{report['primary_metric']} = {_fmt(ref['value'])}."]
    lines += ["", "Intervals: percentile bootstrap over test items (pairs for verification), "
              f"{report['eval_config']['bootstrap']} resamples, seed {report['eval_config']['seed']}.", ""]
    for plot in report.get("plots", []):
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    json_path = write_json_atomic(out_dir / REPORT_JSON, report)
    md_path = write_text_atomic(out_dir / REPORT_MD, markdown(report))
    return json_path, md_path
