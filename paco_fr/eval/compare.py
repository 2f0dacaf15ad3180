"""The `compare` stage: many report folders -> one table across encoders and benchmarks.

Rows are encoders (their label: the pre-training preset, `random`, `pixels`), columns are
benchmarks, each cell the benchmark's primary metric with its 95 % interval, in percent.
Synthetic benchmarks are marked with `*`. For the paper's benchmarks, the PaCo-FR paper's and
FaRL's reported numbers are added as rows labelled "reported, ViT-B/16 scale" (n/a where no
number could be checked). Beside the table: which encoders beat `random` with non-overlapping
intervals on which benchmarks, and each encoder's gain over `random` on the same test items with a
paired-bootstrap interval (paco_fr.eval.paired; reports without `test_items.npz` are left out of it).

Writes compare.md, compare.csv (wide: value and interval columns per benchmark), compare.json and
compare.png (a heat-table coloured per column, better = darker, in each metric's direction).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from paco_fr.eval import paired, reported
from paco_fr.eval.registry import REGISTRY
from paco_fr.eval.report import REPORT_JSON
from paco_fr.io import atomic_dir, read_json, write_json_atomic, write_text_atomic

BASELINE_ORDER = ("random", "pixels")
PRIOR_LABEL = "no image features (prior)"
PAIRED_RESAMPLES = 1000
PAIRED_SEED = 0
SYNTHETIC_MARK = "*"


@dataclass
class CompareResult:
    out_dir: Path
    table_md: Path
    table_csv: Path
    table_png: Path
    table_json: Path
    n_reports: int
    encoders: list[str]
    benchmarks: list[str]


def find_reports(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Report folders: each path is a report folder or a folder searched recursively for them."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / REPORT_JSON).is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(f.parent for f in p.rglob(REPORT_JSON) if not any(part.startswith(".") for part in f.parts))
        else:
            raise FileNotFoundError(f"{p}: neither a report folder nor a directory of report folders")
    unique = list(dict.fromkeys(f.resolve() for f in found))
    if not unique:
        raise FileNotFoundError(f"no {REPORT_JSON} found under {', '.join(map(str, paths))}")
    return unique


def _load(paths: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        rep = read_json(path / REPORT_JSON)
        for key in ("benchmark", "encoder_label", "metrics", "primary_metric"):
            if key not in rep:
                raise ValueError(f"{path / REPORT_JSON}: not an evaluation report (no {key!r})")
        key = (rep["encoder_label"], rep["benchmark"])
        if key in cells:
            raise ValueError(f"two reports for encoder {key[0]!r} on {key[1]!r}: {cells[key]['_dir']} and {path}")
        rep["_dir"] = str(path)
        cells[key] = rep
    return cells


def _order(values: Iterable[str], preferred: Iterable[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    pref = [v for v in preferred if v in values]
    return pref + sorted(v for v in values if v not in pref)


def _row_order(encoders: Iterable[str]) -> list[str]:
    encoders = list(dict.fromkeys(encoders))
    head = sorted(e for e in encoders if e not in BASELINE_ORDER)
    if "paco_fr" in head:
        head.remove("paco_fr")
        head.insert(0, "paco_fr")
    return head + [b for b in BASELINE_ORDER if b in encoders]


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def _cell(metric: dict[str, Any] | None) -> str:
    if metric is None:
        return "—"
    return f"{_pct(metric['value'])} [{_pct(metric['ci_low'])}, {_pct(metric['ci_high'])}]"


def _beats(a: dict[str, Any], b: dict[str, Any], higher: bool) -> bool:
    if any(v is None for v in (a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"])):
        return False
    return a["ci_low"] > b["ci_high"] if higher else a["ci_high"] < b["ci_low"]


def compare(report_dirs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> CompareResult:
    paths = find_reports(list(report_dirs))
    cells = _load(paths)
    encoders = _row_order(e for e, _ in cells)
    benchmarks = _order((b for _, b in cells), REGISTRY)
    info = {}
    for b in benchmarks:
        rep = next(r for (e, bb), r in cells.items() if bb == b)
        info[b] = {"synthetic": bool(rep.get("synthetic")), "paper_name": rep.get("paper_name"),
                   "primary": rep["primary_metric"], "higher": bool(rep.get("higher_is_better", True)),
                   "task": rep.get("task"), "reference": (rep.get("details") or {}).get("reference")}
    paper_cols = [b for b in benchmarks if info[b]["paper_name"]]

    def header(b: str) -> str:
        arrow = "↑" if info[b]["higher"] else "↓"
        return f"{b}{SYNTHETIC_MARK if info[b]['synthetic'] else ''} ({info[b]['primary']} %, {arrow})"

    # Best measured value per column (bold in Markdown).
    best: dict[str, str] = {}
    for b in benchmarks:
        vals = [(cells[(e, b)]["metrics"][info[b]["primary"]]["value"], e) for e in encoders if (e, b) in cells]
        vals = [(v, e) for v, e in vals if v is not None]
        if vals:
            best[b] = (max if info[b]["higher"] else min)(vals)[1]

    md_rows = []
    for e in encoders:
        row = [e]
        for b in benchmarks:
            m = cells.get((e, b), {}).get("metrics", {}).get(info[b]["primary"]) if (e, b) in cells else None
            text = _cell(m)
            row.append(f"**{text}**" if best.get(b) == e else text)
        md_rows.append(row)
    prior_row = [PRIOR_LABEL] + [_pct(info[b]["reference"]["value"]) if info[b]["reference"] else "—"
                                 for b in benchmarks]
    reported_rows = []
    if paper_cols:
        for label, table in (("PaCo-FR", reported.PACO_FR), ("FaRL", reported.FARL)):
            row = [f"{label} ({reported.LABEL_SUFFIX})"]
            for b in benchmarks:
                if b in paper_cols:
                    r = table.get(info[b]["paper_name"])
                    row.append("n/a" if r is None or r.value is None else f"{r.value:g}")
                else:
                    row.append("—")
            reported_rows.append(row)

    # Encoders that beat `random` with non-overlapping intervals.
    versus_random: dict[str, dict[str, bool]] = {}
    if "random" in encoders:
        for e in encoders:
            if e == "random":
                continue
            versus_random[e] = {}
            for b in benchmarks:
                if (e, b) in cells and ("random", b) in cells:
                    p = info[b]["primary"]
                    versus_random[e][b] = _beats(cells[(e, b)]["metrics"][p], cells[("random", b)]["metrics"][p],
                                                 info[b]["higher"])

    paired_vs_random = _paired_versus_random(cells, encoders, benchmarks, info)

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        md = _markdown(benchmarks, header, md_rows + [prior_row], reported_rows, versus_random, info, cells, encoders)
        md += _paired_markdown(paired_vs_random, benchmarks, info)
        md_path = write_text_atomic(tmp / "compare.md", md)
        csv_path = write_text_atomic(tmp / "compare.csv", _csv(encoders, benchmarks, cells, info, paper_cols))
        json_path = write_json_atomic(tmp / "compare.json", {
            "encoders": encoders, "benchmarks": benchmarks, "columns": info,
            "cells": {f"{e}|{b}": {"metric": info[b]["primary"], **cells[(e, b)]["metrics"][info[b]["primary"]],
                                   "data_version": cells[(e, b)].get("data_version"),
                                   "protocol": cells[(e, b)].get("protocol", {}).get("name"),
                                   "report_dir": cells[(e, b)]["_dir"]}
                      for e in encoders for b in benchmarks if (e, b) in cells},
            "reported": {b: {"paper_name": info[b]["paper_name"],
                             "PaCo-FR": _reported_dict(reported.PACO_FR.get(info[b]["paper_name"])),
                             "FaRL": _reported_dict(reported.FARL.get(info[b]["paper_name"]))} for b in paper_cols},
            "beats_random_non_overlapping_ci": versus_random,
            "paired_gain_over_random": paired_vs_random,
            "reports": [str(p) for p in paths],
        })
        png_path = _heat_table(tmp / "compare.png", encoders, benchmarks, cells, info, header)
    return CompareResult(out_dir=out_dir, table_md=out_dir / md_path.name, table_csv=out_dir / csv_path.name,
                         table_png=out_dir / png_path.name, table_json=out_dir / json_path.name,
                         n_reports=len(paths), encoders=encoders, benchmarks=benchmarks)


def _paired_versus_random(cells, encoders, benchmarks, info) -> dict[str, dict[str, dict[str, Any]]]:
    """encoder -> benchmark -> paired gain over `random` (see paco_fr.eval.paired), where both
    reports kept their per-item arrays and were computed on the same benchmark data version."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if "random" not in encoders:
        return out
    for b in benchmarks:
        base = cells.get(("random", b))
        base_items = paired.load_items(base["_dir"]) if base else None
        if base_items is None:
            continue
        for e in encoders:
            if e == "random" or (e, b) not in cells:
                continue
            rep = cells[(e, b)]
            if rep.get("data_version") != base.get("data_version"):
                continue
            items = paired.load_items(rep["_dir"])
            if items is None:
                continue
            try:
                out.setdefault(e, {})[b] = paired.paired_difference(
                    items, base_items, higher_is_better=info[b]["higher"], n_resamples=PAIRED_RESAMPLES,
                    seed=PAIRED_SEED)
            except ValueError as exc:
                out.setdefault(e, {})[b] = {"error": str(exc)}
    return out


def _paired_markdown(paired_vs_random, benchmarks, info) -> str:
    if not paired_vs_random:
        return ""
    lines = ["", "## Paired gain over random initialisation", "",
             "Primary metric of the encoder minus that of `random` on the same test items, in percentage points, "
             "oriented so that positive is better (random minus encoder for NME); 95 % interval of a paired "
             f"bootstrap ({PAIRED_RESAMPLES} resamples of test items, the same for both encoders). "
             "✓: the interval is above 0; ✗: below 0. Like every interval here it covers the sampling of test "
             "items only, not the probe's training data or the pre-training seed: a ✓ at a few hundred items can "
             "reverse on a larger benchmark (docs/results.md has such a case).", "",
             "| encoder | " + " | ".join(benchmarks) + " |", "|" + "---|" * (len(benchmarks) + 1)]
    for e, per in paired_vs_random.items():
        row = [e]
        for b in benchmarks:
            d = per.get(b)
            if d is None or "error" in d:
                row.append("—")
                continue
            mark = " ✓" if d["better"] else (" ✗" if d["worse"] else "")
            row.append(f"{100 * d['gain']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]{mark}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for e, per in paired_vs_random.items():
        wins = [b for b, d in per.items() if d.get("better")]
        lines.append(f"- **{e}**: better than `random` on {len(wins)}/{len(per)} by the paired interval"
                     + (f" ({', '.join(wins)})" if wins else ""))
    return "\n".join(lines) + "\n"


def _reported_dict(r: reported.Reported | None) -> dict[str, Any] | None:
    return None if r is None else {"value": r.value, "metric": r.metric, "source": r.source}


def _markdown(benchmarks, header, rows, reported_rows, versus_random, info, cells, encoders) -> str:
    cols = ["encoder", *[header(b) for b in benchmarks]]
    lines = ["# Encoder comparison", "",
             "Primary metric per benchmark on its test split, in percent, with its 95 % bootstrap interval; "
             "best measured value in bold.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows + reported_rows]
    lines += ["", f"`{SYNTHETIC_MARK}` synthetic benchmark (procedural faces; a test of the pipeline, not of "
              "real-world face analysis).",
              f"`{PRIOR_LABEL}`: a predictor fitted on train+val that never sees the test image (majority class per "
              "attribute, majority class, mean shape, per-pixel majority label map, chance AUC)."]
    if reported_rows:
        lines += ["Reported rows: numbers published for ViT-B/16 models fine-tuned at full resolution on the full "
                  "official datasets and label sets (sources in paco_fr/eval/reported.py); they are context, not "
                  "comparable one to one with the probes above. n/a: no number could be checked."]
    protocols = sorted({cells[(e, b)].get("protocol", {}).get("name", "?") for e in encoders for b in benchmarks
                        if (e, b) in cells})
    lines += [f"Protocol(s): {', '.join(protocols)} (hyperparameters chosen on val; see each report.md)."]
    if versus_random:
        lines += ["", "## Against random initialisation", "",
                  "Benchmarks where the encoder beats `random` with non-overlapping 95 % intervals:", ""]
        for e, per in versus_random.items():
            wins = [b for b, ok in per.items() if ok]
            lines.append(f"- **{e}**: {len(wins)}/{len(per)}" + (f" ({', '.join(wins)})" if wins else ""))
    return "\n".join(lines) + "\n"


def _csv(encoders, benchmarks, cells, info, paper_cols) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    head = ["encoder"]
    for b in benchmarks:
        head += [b, f"{b}_ci_low", f"{b}_ci_high", f"{b}_n"]
    writer.writerow(head)
    writer.writerow(["# metric"] + sum(([f"{info[b]['primary']}{' (synthetic)' if info[b]['synthetic'] else ''}",
                                         "", "", ""] for b in benchmarks), []))
    for e in encoders:
        row = [e]
        for b in benchmarks:
            m = cells.get((e, b), {}).get("metrics", {}).get(info[b]["primary"])
            row += ["", "", "", ""] if m is None else [m["value"], m["ci_low"], m["ci_high"], m["n"]]
        writer.writerow(row)
    writer.writerow([PRIOR_LABEL] + sum(([info[b]["reference"]["value"] if info[b]["reference"] else "", "", "", ""]
                                          for b in benchmarks), []))
    for label, table in (("PaCo-FR", reported.PACO_FR), ("FaRL", reported.FARL)):
        if not paper_cols:
            break
        row = [f"{label} ({reported.LABEL_SUFFIX}, source units)"]
        for b in benchmarks:
            r = table.get(info[b]["paper_name"]) if b in paper_cols else None
            row += ["n/a" if b in paper_cols and (r is None or r.value is None) else (r.value if r else ""), "", "", ""]
        writer.writerow(row)
    return buf.getvalue()


def _heat_table(path: Path, encoders, benchmarks, cells, info, header) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paco_fr.io import atomic_path

    values = np.full((len(encoders), len(benchmarks)), np.nan)
    for i, e in enumerate(encoders):
        for j, b in enumerate(benchmarks):
            m = cells.get((e, b), {}).get("metrics", {}).get(info[b]["primary"])
            if m is not None and m["value"] is not None:
                values[i, j] = m["value"]
    shade = np.full_like(values, np.nan)
    for j, b in enumerate(benchmarks):
        col = values[:, j]
        ok = np.isfinite(col)
        if ok.sum() >= 1:
            lo, hi = np.nanmin(col), np.nanmax(col)
            norm = (col - lo) / (hi - lo) if hi > lo else np.full_like(col, 0.5)
            shade[:, j] = norm if info[b]["higher"] else 1 - norm
    fig_w = 2.0 + 1.9 * len(benchmarks)
    fig, ax = plt.subplots(figsize=(fig_w, 0.9 + 0.5 * len(encoders)))
    ax.imshow(np.ma.masked_invalid(shade), cmap="Greens", vmin=-0.15, vmax=1.25, aspect="auto")
    for i, e in enumerate(encoders):
        for j, b in enumerate(benchmarks):
            m = cells.get((e, b), {}).get("metrics", {}).get(info[b]["primary"])
            dark = np.isfinite(shade[i, j]) and shade[i, j] > 0.6
            ax.text(j, i, _cell(m).replace(" [", "\n["), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(benchmarks)), [header(b).replace(" (", "\n(") for b in benchmarks], fontsize=7)
    ax.set_yticks(range(len(encoders)), encoders, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_title("primary metric (%), 95 % CI; * synthetic; darker = better in each column", fontsize=8, pad=28)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
