"""The `compare` stage: many report folders -> one table across encoders and benchmarks.

Rows are presets (the pre-training preset recorded in each report's ``encoder`` identity) and the
baselines (`random`, `pixels`, `hog`); columns are benchmarks, each with its named benchmark
protocol. Reports of one preset trained with different seeds (``encoder.seed``) are repeats of one
row: a cell is the single value with its 95 % bootstrap interval when there is one seed, and mean
+- sd over seeds when there are several. Folder names are never relied on.

Beside the table: each row's paired gain over `random` (paco_fr.eval.paired) per seed and, with
several seeds, its mean +- sd and a verdict whether it exceeds the seed-to-seed spread; the same
against the reference preset (`paco_fr`); published numbers (paco_fr.eval.reported) where the
protocol is the same and the whole test split was scored.

Seed rule (also printed): with n >= 2 paired differences d_s (one per pre-training seed), the
difference exceeds the seed-to-seed spread when the 95 % t interval mean(d) +- t(0.975, n-1) sd(d)
/ sqrt(n) excludes 0, i.e. a paired t-test over seeds at 5 %. Seeds are paired by their value; a
row with a single report (random, pixels, hog) pairs with every seed of the other. With one seed
the verdict is the paired bootstrap over test items, which says nothing about seeds.

Writes compare.md, compare.csv, compare.json and compare.png (a heat-table coloured per column,
better = darker, in each metric's direction).
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
from paco_fr.eval.metrics import repeat_summary
from paco_fr.eval.registry import REGISTRY
from paco_fr.eval.report import REPORT_JSON
from paco_fr.io import atomic_dir, read_json, write_json_atomic, write_text_atomic
from paco_fr.lineage import display_path

BASELINE_ORDER = ("random", "pixels", "hog")
REFERENCE_PRESET = "paco_fr"
PRIOR_LABEL = "no image features (prior)"
PAIRED_RESAMPLES = 1000
PAIRED_SEED = 0
SYNTHETIC_MARK = "*"
SECONDARY_MARK = "†"


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


def identity(rep: dict[str, Any]) -> tuple[str, Any]:
    """(row, seed) of a report: its encoder identity's preset and seed (reports written before the
    identity was recorded: the encoder label, one seed)."""
    enc = rep.get("encoder") or {}
    if "preset" in enc:
        return str(enc["preset"]), enc.get("seed")
    return str(rep["encoder_label"]), None


def _load(paths: list[Path]) -> dict[tuple[str, str], dict[Any, dict[str, Any]]]:
    """(row, benchmark) -> seed -> report."""
    cells: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}
    for path in paths:
        rep = read_json(path / REPORT_JSON)
        for key in ("benchmark", "encoder_label", "metrics", "primary_metric"):
            if key not in rep:
                raise ValueError(f"{path / REPORT_JSON}: not an evaluation report (no {key!r})")
        row, seed = identity(rep)
        group = cells.setdefault((row, rep["benchmark"]), {})
        if seed in group:
            what = f"encoder {row!r}" + (f" (seed {seed})" if seed is not None else "")
            raise ValueError(f"two reports for {what} on {rep['benchmark']!r}: {group[seed]['_dir']} and {path}")
        rep["_dir"] = str(path)
        group[seed] = rep
    for (row, bench), group in cells.items():
        versions = {r.get("data_version") for r in group.values()}
        if len(versions) > 1:
            raise ValueError(f"the seeds of {row!r} on {bench!r} were evaluated on different benchmark data "
                             f"({len(versions)} data versions); they cannot be averaged")
    return cells


def _protocol_key(rep: dict[str, Any]) -> str | None:
    return (rep.get("benchmark_protocol") or {}).get("key")


def _columns(cells, benchmarks) -> dict[str, dict[str, Any]]:
    info = {}
    for b in benchmarks:
        reps = [r for (_, bb), group in cells.items() if bb == b for r in group.values()]
        keys = {_protocol_key(r) for r in reps}
        if len(keys) > 1:
            raise ValueError(f"reports on {b!r} were made under different benchmark protocols "
                             f"({', '.join(sorted(map(str, keys)))}); they cannot share a column")
        rep = reps[0]
        bp = rep.get("benchmark_protocol") or {}
        info[b] = {"synthetic": bool(rep.get("synthetic")), "paper_name": rep.get("paper_name"),
                   "primary": rep["primary_metric"], "higher": bool(rep.get("higher_is_better", True)),
                   "task": rep.get("task"), "reference": (rep.get("details") or {}).get("reference"),
                   "protocol_key": bp.get("key"), "protocol_title": bp.get("title"),
                   "standard": bool(bp.get("standard")),
                   "full_test_split": _full_test_split(reps)}
    return info


def _full_test_split(reps: list[dict[str, Any]]) -> bool | None:
    """True when every report scored the whole official test split, False when one did not, None for
    benchmarks without an official split (the embedded ones)."""
    flags = [(r.get("benchmark_protocol") or {}).get("full_test_split") for r in reps]
    if any(f is False for f in flags):
        return False
    return True if flags and all(f is True for f in flags) else None


def _order(values: Iterable[str], preferred: Iterable[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    pref = [v for v in preferred if v in values]
    return pref + sorted(v for v in values if v not in pref)


def _row_order(rows: Iterable[str]) -> list[str]:
    rows = list(dict.fromkeys(rows))
    head = sorted(e for e in rows if e not in BASELINE_ORDER)
    if REFERENCE_PRESET in head:
        head.remove(REFERENCE_PRESET)
        head.insert(0, REFERENCE_PRESET)
    return head + [b for b in BASELINE_ORDER if b in rows]


def _seed_sort_key(seed: Any) -> tuple[int, str]:
    return (0, f"{seed:012d}") if isinstance(seed, int) else (1, str(seed))


def _summary(group: dict[Any, dict[str, Any]], metric: str) -> dict[str, Any]:
    """One cell: the single report's value and bootstrap interval, or mean +- sd over seeds with
    the t interval of the mean."""
    seeds = sorted(group, key=_seed_sort_key)
    per_seed = [{"seed": s, **group[s]["metrics"][metric], "data_version": group[s].get("data_version"),
                 "report_dir": display_path(group[s]["_dir"])} for s in seeds]
    if len(seeds) == 1:
        m = group[seeds[0]]["metrics"][metric]
        return {"value": m["value"], "ci_low": m["ci_low"], "ci_high": m["ci_high"], "sd": None, "n": m["n"],
                "n_seeds": 1, "seeds": seeds, "interval": "bootstrap over test items", "per_seed": per_seed}
    values = [group[s]["metrics"][metric]["value"] for s in seeds]
    if any(v is None for v in values):
        return {"value": None, "ci_low": None, "ci_high": None, "sd": None, "n": None, "n_seeds": len(seeds),
                "seeds": seeds, "interval": "undefined for some seed", "per_seed": per_seed}
    s = repeat_summary(values)
    return {"value": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"], "sd": s["sd"],
            "n": group[seeds[0]]["metrics"][metric]["n"], "n_seeds": len(seeds), "seeds": seeds,
            "interval": "t over seeds", "per_seed": per_seed}


def compare(report_dirs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> CompareResult:
    paths = find_reports(list(report_dirs))
    cells = _load(paths)
    rows = _row_order(e for e, _ in cells)
    benchmarks = _order((b for _, b in cells), REGISTRY)
    info = _columns(cells, benchmarks)
    table = {(e, b): _summary(cells[(e, b)], info[b]["primary"]) for e in rows for b in benchmarks if (e, b) in cells}

    versus_random = _non_overlap_versus_random(table, rows, benchmarks, info)
    gains_random = _gains_versus(cells, rows, benchmarks, info, "random")
    others = [e for e in rows if e not in BASELINE_ORDER and e != REFERENCE_PRESET]
    gains_reference = (_gains_versus(cells, [REFERENCE_PRESET, *others], benchmarks, info, REFERENCE_PRESET)
                       if REFERENCE_PRESET in rows and others else {})

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        md = _markdown(rows, benchmarks, info, table, cells)
        md += _versus_random_markdown(versus_random)
        md += _gains_markdown(gains_random, benchmarks, "random", "Paired gain over random initialisation")
        md += _gains_markdown(gains_reference, benchmarks, REFERENCE_PRESET,
                              f"Difference to {REFERENCE_PRESET} (the full method)")
        md_path = write_text_atomic(tmp / "compare.md", md)
        csv_path = write_text_atomic(tmp / "compare.csv", _csv(rows, benchmarks, table, info))
        json_path = write_json_atomic(tmp / "compare.json", {
            "encoders": rows, "benchmarks": benchmarks, "columns": info,
            "cells": {f"{e}|{b}": {"metric": info[b]["primary"], **table[(e, b)],
                                   "protocol": _probe_names(cells[(e, b)]),
                                   "benchmark_protocol": info[b]["protocol_key"]}
                      for e in rows for b in benchmarks if (e, b) in table},
            "reported": _reported_json(benchmarks, info),
            "beats_random_non_overlapping_ci": versus_random,
            "paired_gain_over_random": gains_random,
            f"difference_to_{REFERENCE_PRESET}": gains_reference,
            "seed_rule": "paired differences over >= 2 seeds: the 95 % t interval mean +- t(0.975, n-1) sd / sqrt(n) "
                         "excludes 0; one seed: the paired bootstrap interval over test items excludes 0",
            "reports": [display_path(p) for p in paths],  # repository-relative: the same bytes in every clone
        })
        png_path = _heat_table(tmp / "compare.png", rows, benchmarks, table, info)
    return CompareResult(out_dir=out_dir, table_md=out_dir / md_path.name, table_csv=out_dir / csv_path.name,
                         table_png=out_dir / png_path.name, table_json=out_dir / json_path.name,
                         n_reports=len(paths), encoders=rows, benchmarks=benchmarks)


def _probe_names(group: dict[Any, dict[str, Any]]) -> str:
    return ", ".join(sorted({(r.get("protocol") or {}).get("name", "?") for r in group.values()}))


# --- comparisons ----------------------------------------------------------------------------------

def _non_overlap_versus_random(table, rows, benchmarks, info) -> dict[str, dict[str, bool]]:
    """Rows with one seed that beat a one-seed `random` with non-overlapping bootstrap intervals."""
    out: dict[str, dict[str, bool]] = {}
    for e in rows:
        if e == "random":
            continue
        for b in benchmarks:
            a, r = table.get((e, b)), table.get(("random", b))
            if a is None or r is None or a["n_seeds"] != 1 or r["n_seeds"] != 1:
                continue
            out.setdefault(e, {})[b] = _beats(a, r, info[b]["higher"])
    return out


def _beats(a: dict[str, Any], b: dict[str, Any], higher: bool) -> bool:
    if any(v is None for v in (a["ci_low"], a["ci_high"], b["ci_low"], b["ci_high"])):
        return False
    return a["ci_low"] > b["ci_high"] if higher else a["ci_high"] < b["ci_low"]


def _match_seeds(mine: dict[Any, dict], theirs: dict[Any, dict]) -> list[tuple[Any, dict, dict]]:
    """Seed-paired reports: a single report on the other side pairs with every seed; otherwise seeds
    pair by value (unmatched seeds are left out)."""
    if len(theirs) == 1:
        (other,) = theirs.values()
        return [(s, mine[s], other) for s in sorted(mine, key=_seed_sort_key)]
    return [(s, mine[s], theirs[s]) for s in sorted(mine, key=_seed_sort_key) if s in theirs]


def _gains_versus(cells, rows, benchmarks, info, base: str) -> dict[str, dict[str, dict[str, Any]]]:
    """row -> benchmark -> the paired gain of the row over `base` (positive = better), per seed and
    summarised over seeds, where both reports kept their per-item arrays and share the data version."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for b in benchmarks:
        if (base, b) not in cells:
            continue
        for e in rows:
            if e == base or (e, b) not in cells:
                continue
            per_seed, error = [], None
            for seed, mine, theirs in _match_seeds(cells[(e, b)], cells[(base, b)]):
                if mine.get("data_version") != theirs.get("data_version"):
                    continue
                a, c = paired.load_items(mine["_dir"]), paired.load_items(theirs["_dir"])
                if a is None or c is None:
                    continue
                try:
                    d = paired.paired_difference(a, c, higher_is_better=info[b]["higher"],
                                                 n_resamples=PAIRED_RESAMPLES, seed=PAIRED_SEED)
                except ValueError as exc:
                    error = str(exc)
                    continue
                per_seed.append({"seed": seed, **d})
            if per_seed:
                out.setdefault(e, {})[b] = _gain_summary(per_seed)
            elif error:
                out.setdefault(e, {})[b] = {"error": error}
    return out


def _gain_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    if len(per_seed) == 1:
        d = per_seed[0]
        return {**{k: d[k] for k in ("gain", "ci_low", "ci_high", "n", "better", "worse", "n_resamples")},
                "sd": None, "n_seeds": 1, "basis": "paired bootstrap over test items (one seed)", "per_seed": per_seed}
    s = repeat_summary([d["gain"] for d in per_seed])
    return {"gain": s["mean"], "sd": s["sd"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
            "n": per_seed[0]["n"], "better": bool(s["ci_low"] > 0), "worse": bool(s["ci_high"] < 0),
            "n_seeds": s["n"], "basis": "t interval over seeds of the paired per-seed gains", "per_seed": per_seed}


# --- Markdown -------------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    if cell["n_seeds"] == 1:
        return f"{_pct(cell['value'])} [{_pct(cell['ci_low'])}, {_pct(cell['ci_high'])}]"
    return f"{_pct(cell['value'])} ± {_pct(cell['sd'])} ({cell['n_seeds']} seeds)"


def _header(b: str, info) -> str:
    arrow = "↑" if info[b]["higher"] else "↓"
    return f"{b}{SYNTHETIC_MARK if info[b]['synthetic'] else ''} ({info[b]['primary']} %, {arrow})"


def _reported_cell(method: str, b: str, info) -> str:
    key = info[b]["protocol_key"]
    r = reported.lookup(method, key) if key else None
    if r is None:
        return "—"
    if r.value is None:
        return "n/a"
    if info[b]["full_test_split"] is not True:
        return "— (test subsampled)"
    return f"{r.value:g}{SECONDARY_MARK if r.secondary else ''}"


def _markdown(rows, benchmarks, info, table, cells) -> str:
    best: dict[str, str] = {}
    for b in benchmarks:
        vals = [(table[(e, b)]["value"], e) for e in rows if (e, b) in table and table[(e, b)]["value"] is not None]
        if vals:
            best[b] = (max if info[b]["higher"] else min)(vals)[1]
    cols = ["encoder", *[_header(b, info) for b in benchmarks]]
    lines = ["# Encoder comparison", "",
             "Primary metric per benchmark on its test split, in percent. One pre-training seed: the value with "
             "its 95 % bootstrap interval over test items. Several seeds: mean ± sd over seeds (n seeds). "
             "Best measured value in bold.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for e in rows:
        texts = [_cell_text(table.get((e, b))) for b in benchmarks]
        lines.append("| " + " | ".join([e] + [f"**{t}**" if best.get(b) == e else t
                                              for b, t in zip(benchmarks, texts)]) + " |")
    lines.append("| " + " | ".join([PRIOR_LABEL] + [_pct(info[b]["reference"]["value"]) if info[b]["reference"]
                                                    else "—" for b in benchmarks]) + " |")
    show_reported = any(info[b]["standard"] for b in benchmarks)
    if show_reported:
        for method in reported.METHODS:
            lines.append("| " + " | ".join([f"{method} ({reported.LABEL_SUFFIX})"]
                                           + [_reported_cell(method, b, info) for b in benchmarks]) + " |")
    lines += ["", f"`{SYNTHETIC_MARK}` synthetic benchmark (procedural faces; a test of the pipeline, not of "
              "real-world face analysis).",
              f"`{PRIOR_LABEL}`: a predictor fitted on train+val that never sees the test image (majority class per "
              "attribute, majority class, mean shape, per-pixel majority label map, chance)."]
    if show_reported:
        lines += [_reported_legend(benchmarks, info)]
    probes = sorted({_probe_names(cells[(e, b)]) for e in rows for b in benchmarks if (e, b) in cells})
    lines += [f"Probe(s): {', '.join(probes)} (hyperparameters chosen on val; see each report.md).", ""]
    lines += _protocols_markdown(benchmarks, info) + _seeds_markdown(rows, benchmarks, table)
    return "\n".join(lines) + "\n"


def _reported_legend(benchmarks, info) -> str:
    shown = []
    for method in reported.METHODS:
        for b in benchmarks:
            r = reported.lookup(method, info[b]["protocol_key"]) if info[b]["protocol_key"] else None
            if r is not None and r.value is not None and info[b]["full_test_split"] is True:
                shown.append(f"{method} {b}: {r.value:g} ({r.metric}; {r.source})")
    text = ("Reported rows: published numbers of ViT-B/16 models fine-tuned at full resolution, printed only where "
            "the benchmark protocol (id and version) is the one they were measured under and the whole official "
            "test split was scored; — otherwise, n/a where no number could be checked; "
            f"{SECONDARY_MARK} secondary source. Context, not a target for CPU-scale probes.")
    return text + ((" Sources: " + "; ".join(shown) + ".") if shown else "")


def _protocols_markdown(benchmarks, info) -> list[str]:
    lines = ["## Benchmark protocols", "", "| benchmark | protocol | kind | whole test split | what is measured |",
             "|---|---|---|---|---|"]
    for b in benchmarks:
        i = info[b]
        kind = "standard" if i["standard"] else "ours"
        whole = {True: "yes", False: "no"}.get(i["full_test_split"], "— (own split)")
        lines.append(f"| {b} | `{i['protocol_key'] or 'unrecorded'}` | {kind} | {whole} | {i['protocol_title'] or ''} |")
    return lines + [""]


def _seeds_markdown(rows, benchmarks, table) -> list[str]:
    lines = ["Seeds per row (pre-training seed; random: its initialisation seed; pixels and hog have none):"]
    for e in rows:
        seeds = sorted({s for b in benchmarks if (e, b) in table for s in table[(e, b)]["seeds"]}, key=_seed_sort_key)
        lines.append(f"- {e}: {', '.join('none' if s is None else str(s) for s in seeds)}")
    return lines


def _versus_random_markdown(versus_random) -> str:
    if not versus_random:
        return ""
    lines = ["", "## Against random initialisation (one seed)", "",
             "Benchmarks where a one-seed row beats `random` with non-overlapping 95 % bootstrap intervals:", ""]
    for e, per in versus_random.items():
        wins = [b for b, ok in per.items() if ok]
        lines.append(f"- **{e}**: {len(wins)}/{len(per)}" + (f" ({', '.join(wins)})" if wins else ""))
    return "\n".join(lines) + "\n"


def _gain_text(d: dict[str, Any] | None) -> str:
    if d is None or "error" in d:
        return "—"
    mark = " ✓" if d["better"] else (" ✗" if d["worse"] else "")
    if d["n_seeds"] == 1:
        return f"{100 * d['gain']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]{mark}"
    return f"{100 * d['gain']:+.1f} ± {100 * d['sd']:.1f} ({d['n_seeds']} seeds){mark}"


def _gains_markdown(gains, benchmarks, base: str, title: str) -> str:
    if not gains:
        return ""
    lines = ["", f"## {title}", "",
             f"Primary metric of the row minus that of `{base}` on the same test items, in percentage points, "
             f"oriented so that positive is better (`{base}` minus the row for NME). One seed: the 95 % interval of "
             f"a paired bootstrap ({PAIRED_RESAMPLES} resamples of test items, the same for both), which covers "
             "test-item sampling only. Several seeds: mean ± sd of the per-seed paired gains (seeds paired by value; "
             "a row with one report pairs with every seed); ✓/✗ when the 95 % t interval over seeds, mean ± "
             "t(0.975, n-1) · sd / √n, lies above/below 0, i.e. the difference exceeds the seed-to-seed spread "
             "(a paired t-test at 5 %). Neither covers the probe's own training sample.", "",
             "| row | " + " | ".join(benchmarks) + " |", "|" + "---|" * (len(benchmarks) + 1)]
    for e, per in gains.items():
        lines.append("| " + " | ".join([e] + [_gain_text(per.get(b)) for b in benchmarks]) + " |")
    lines.append("")
    for e, per in gains.items():
        wins = [b for b, d in per.items() if d.get("better")]
        losses = [b for b, d in per.items() if d.get("worse")]
        lines.append(f"- **{e}**: better than `{base}` on {len(wins)}/{len(per)}" + (f" ({', '.join(wins)})" if wins else "")
                     + (f"; worse on {', '.join(losses)}" if losses else ""))
    return "\n".join(lines) + "\n"


# --- CSV, JSON, PNG -------------------------------------------------------------------------------

def _reported_json(benchmarks, info) -> dict[str, Any]:
    out = {}
    for b in benchmarks:
        key = info[b]["protocol_key"]
        entries = {m: reported.lookup(m, key) for m in reported.METHODS} if key else {}
        shown = {m: {"value": r.value, "metric": r.metric, "source": r.source, "secondary": r.secondary,
                     "printed": r.value is not None and info[b]["full_test_split"] is True}
                 for m, r in entries.items() if r is not None}
        if shown:
            out[b] = {"protocol": key, **shown}
    return out


def _csv(rows, benchmarks, table, info) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    head = ["encoder"]
    for b in benchmarks:
        head += [b, f"{b}_ci_low", f"{b}_ci_high", f"{b}_n", f"{b}_sd", f"{b}_seeds"]
    writer.writerow(head)
    writer.writerow(["# metric"] + sum(([f"{info[b]['primary']}{' (synthetic)' if info[b]['synthetic'] else ''}",
                                         "one seed: bootstrap CI; several: t interval over seeds", "", "test items",
                                         "over seeds", ""] for b in benchmarks), []))
    writer.writerow(["# protocol"] + sum(([info[b]["protocol_key"] or "", "", "", "", "", ""] for b in benchmarks), []))
    for e in rows:
        row = [e]
        for b in benchmarks:
            c = table.get((e, b))
            row += ([""] * 6 if c is None else
                    [c["value"], c["ci_low"], c["ci_high"], c["n"], "" if c["sd"] is None else c["sd"], c["n_seeds"]])
        writer.writerow(row)
    writer.writerow([PRIOR_LABEL] + sum(([info[b]["reference"]["value"] if info[b]["reference"] else "",
                                          "", "", "", "", ""] for b in benchmarks), []))
    if any(info[b]["standard"] for b in benchmarks):
        for method in reported.METHODS:
            writer.writerow([f"{method} ({reported.LABEL_SUFFIX}, source units)"]
                            + sum(([_reported_cell(method, b, info), "", "", "", "", ""] for b in benchmarks), []))
    return buf.getvalue()


def _heat_table(path: Path, rows, benchmarks, table, info) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paco_fr.io import atomic_path

    values = np.full((len(rows), len(benchmarks)), np.nan)
    for i, e in enumerate(rows):
        for j, b in enumerate(benchmarks):
            c = table.get((e, b))
            if c is not None and c["value"] is not None:
                values[i, j] = c["value"]
    shade = np.full_like(values, np.nan)
    for j, b in enumerate(benchmarks):
        col = values[:, j]
        if np.isfinite(col).any():
            lo, hi = np.nanmin(col), np.nanmax(col)
            norm = (col - lo) / (hi - lo) if hi > lo else np.full_like(col, 0.5)
            shade[:, j] = norm if info[b]["higher"] else 1 - norm
    fig_w = 2.0 + 1.9 * len(benchmarks)
    fig, ax = plt.subplots(figsize=(fig_w, 0.9 + 0.5 * len(rows)))
    ax.imshow(np.ma.masked_invalid(shade), cmap="Greens", vmin=-0.15, vmax=1.25, aspect="auto")
    for i, e in enumerate(rows):
        for j, b in enumerate(benchmarks):
            dark = np.isfinite(shade[i, j]) and shade[i, j] > 0.6
            text = _cell_text(table.get((e, b))).replace(" [", "\n[").replace(" ± ", "\n± ")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(benchmarks)), [_header(b, info).replace(" (", "\n(") for b in benchmarks], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_title("primary metric (%): one seed 95 % CI, several seeds mean ± sd; * synthetic; darker = better",
                 fontsize=8, pad=28)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
