"""The per-benchmark report: report.json (the record), report.md (for people) and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paco_fr.eval import plots
from paco_fr.eval.data import BenchmarkData
from paco_fr.eval.protocols import ProtocolOutput
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
        from paco_fr.masks.regions_def import REGION_COLOURS

        pick = te[:N_EXAMPLES]
        written.append(plots.parsing_examples_plot(out_dir / "parsing_examples.png", data.images[pick],
                                                   data.targets["label_map"][pick],
                                                   out.predictions["label_map"][:N_EXAMPLES],
                                                   list(REGION_COLOURS), title))
    elif task == "attributes":
        names = data.meta["attribute_names"]
        ms = [scores.metrics[f"accuracy/{n}"] for n in names]
        written.append(plots.attribute_plot(out_dir / "attributes.png", names, [m.value for m in ms],
                                            [m.ci_low for m in ms], [m.ci_high for m in ms], title))
    return [p.name for p in written]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["metrics"]
    lines = [
        f"# {report['benchmark']}: {report['encoder_label']}",
        "",
        f"- task: **{report['task']}**; data: **{'synthetic' if report['synthetic'] else 'real'}**"
        + (f"; paper benchmark: {report['paper_name']}" if report.get("paper_name") else ""),
        f"- encoder: `{report['encoder_spec']}` ({report['encoder'].get('encoder', {}).get('name', '?')}, "
        f"{report['encoder'].get('encoder', {}).get('img_size', '?')} px, patch "
        f"{report['encoder'].get('encoder', {}).get('patch_size', '?')})",
        f"- data version: `{report['data_version']}`; items: {report['data']['counts']}",
        f"- protocol: **{report['protocol']['name']}** ({report['protocol']['estimator']}); chosen on val: "
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
        lines.append(f"| {bold}{name}{bold} | {bold}{_fmt(v['value'])}{bold} | "
                     f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}] | {v['n']} |")
    ref = report.get("details", {}).get("reference")
    if ref:
        lines += ["", f"Reference without image features ({ref['name']}, fitted on train+val): "
                  f"{report['primary_metric']} = {_fmt(ref['value'])}."]
    lines += ["", "Intervals: percentile bootstrap over test items (pairs for verification), "
              f"{report['eval_config']['bootstrap']} resamples, seed {report['eval_config']['seed']}.", ""]
    t = report["timing"]
    lines.append(f"Timing: materialise {t['materialise_s']:.1f} s ({'cache' if t['from_cache'] else 'built'}), "
                 f"features {t['features_s']:.1f} s, protocol {t['protocol_s']:.1f} s, total {t['total_s']:.1f} s.")
    for plot in report.get("plots", []):
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    json_path = write_json_atomic(out_dir / REPORT_JSON, report)
    md_path = write_text_atomic(out_dir / REPORT_MD, markdown(report))
    return json_path, md_path
