"""`paco-fr evaluate`, `paco-fr compare` and `paco-fr benchmarks`: the command line of evaluation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from paco_fr.cli import add_config_args, add_lineage_arg

    ev = sub.add_parser(
        "evaluate",
        help="evaluate an encoder on a benchmark -> report.json, report.md, plots",
        description="Evaluate one encoder on one benchmark (or every benchmark of params eval.benchmarks "
                    "with --benchmark all, into OUT/<benchmark>). The benchmark is materialised once into "
                    "eval.cache_dir; the protocol (eval.protocol) chooses its hyperparameters on val and "
                    "reports test metrics with 95 %% bootstrap intervals. --list shows the registry.",
    )
    ev.add_argument("--encoder", metavar="DIR|random|random:DIR|pixels|hog",
                    help="a pre-trained encoder folder; 'random' (architecture of params model:, fixed seed); "
                         "'random:DIR' (architecture of that encoder); 'pixels' (raw-pixel sanity baseline); "
                         "'hog' (histograms of oriented gradients, the classical baseline)")
    ev.add_argument("--benchmark", metavar="NAME|all", help="a registry name (see --list) or 'all'")
    ev.add_argument("--out", metavar="DIR", help="report folder")
    ev.add_argument("--data-root", default=None, metavar="DIR",
                    help="dataset folder in its official layout (standard benchmarks such as celeba_attributes)")
    ev.add_argument("--list", action="store_true", help="list the benchmark registry and exit")
    ev.add_argument("--metrics", default=None, metavar="FILE",
                    help="also write the primary metric with its interval as JSON here (for `dvc metrics`)")
    add_config_args(ev)
    add_lineage_arg(ev)
    ev.set_defaults(func=_evaluate)

    bm = sub.add_parser("benchmarks", help="list the benchmark registry",
                        description="List every benchmark: task, where its data comes from, the paper "
                                    "benchmark it corresponds to, and its primary metric.")
    bm.set_defaults(func=_list)

    cmp_ = sub.add_parser(
        "compare",
        help="one table across encoders and benchmarks from report folders",
        description="Collect report folders (each DIR is a report folder or is searched recursively) into "
                    "OUT/compare.md, compare.csv, compare.json and compare.png.",
    )
    cmp_.add_argument("--reports", nargs="+", required=True, metavar="DIR", help="report folders or their parents")
    cmp_.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_config_args(cmp_)
    add_lineage_arg(cmp_)
    cmp_.set_defaults(func=_compare)


def _list(args: argparse.Namespace) -> int:
    from paco_fr.eval.registry import describe

    print(describe())
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.list:
        return _list(args)
    missing = [flag for flag, value in (("--encoder", args.encoder), ("--benchmark", args.benchmark),
                                         ("--out", args.out)) if not value]
    if missing:
        print(f"paco-fr evaluate: {', '.join(missing)} required (or --list)", file=sys.stderr)
        return 2
    from paco_fr.cli import config_from_args
    from paco_fr.config import to_dict
    from paco_fr.eval.data import BenchmarkDataError
    from paco_fr.eval.registry import REGISTRY
    from paco_fr.eval.stage import evaluate
    from paco_fr.lineage import record_provenance

    cfg = config_from_args(args)
    names = list(cfg.eval.benchmarks) if args.benchmark == "all" else [args.benchmark]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        print(f"paco-fr evaluate: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}",
              file=sys.stderr)
        return 2
    status = 0
    for name in names:
        out = Path(args.out) / name if args.benchmark == "all" else Path(args.out)
        try:
            result = evaluate(cfg.eval, args.encoder, name, out, data_root=args.data_root, model_cfg=cfg.model,
                              fallback_zoom=cfg.curation.template_zoom)
        except (BenchmarkDataError, FileNotFoundError, ValueError) as exc:
            print(f"paco-fr evaluate: {name}: {exc}", file=sys.stderr)
            status = 1
            continue
        inputs = {"benchmark_data": result.benchmark_cache}
        if result.encoder_dir is not None:
            inputs["encoder"] = result.encoder_dir
        record_provenance(out, "evaluate", inputs=inputs, params=to_dict(cfg.eval), overrides=cfg.applied,
                          extra={"encoder": args.encoder, "benchmark": name, "data_version": result.data_version,
                                 **result.run}, log=args.lineage)
        m = result.primary
        if args.metrics:
            from paco_fr.io import write_json_atomic

            write_json_atomic(args.metrics, {"benchmark": name, "metric": result.primary_metric,
                                             **{k: m[k] for k in ("value", "ci_low", "ci_high", "n") if k in m}})
        print(f"evaluate: {result.encoder_label} on {name}: {result.primary_metric} = {m['value']:.4f} "
              f"[{m['ci_low']:.4f}, {m['ci_high']:.4f}] (n={m['n']}) in {result.wall_time_s:.1f} s -> {out}",
              file=sys.stderr)
    return status


def _compare(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args
    from paco_fr.config import to_dict
    from paco_fr.eval.compare import compare, find_reports
    from paco_fr.lineage import record_provenance

    cfg = config_from_args(args)
    try:
        result = compare(args.reports, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"paco-fr compare: {exc}", file=sys.stderr)
        return 1
    # One input per report folder (not the folders given), so that lineage links the table to
    # each report's own provenance record.
    reports = find_reports(args.reports)
    record_provenance(result.out_dir, "compare",
                      inputs={f"{d.parent.name}/{d.name}": d for d in reports},
                      params=to_dict(cfg.eval), overrides=cfg.applied, log=args.lineage)
    print(result.table_md.read_text(encoding="utf-8"))
    print(f"compare: {result.n_reports} reports, {len(result.encoders)} encoders x {len(result.benchmarks)} "
          f"benchmarks -> {result.out_dir}", file=sys.stderr)
    return 0
