"""`paco-fr run`: the main job. Builds the whole pipeline through DVC, from the raw folder to the
comparison table, and prints the table at the end."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from paco_fr.cli import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline (raw -> corpus -> regions -> pre-training -> evaluation -> table)",
        description="Materialises the builtin raw folder if it is missing, versions it with `dvc add`, "
                    "then `dvc repro` (up-to-date stages are skipped) and prints the comparison table.",
    )
    p.add_argument("--full", action="store_true",
                   help="also pre-train the MAE baseline and every ablation (pipeline.full_presets)")
    p.add_argument("--force", action="store_true", help="rebuild every stage even if up to date")
    add_config_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from paco_fr.config import load_config
    from paco_fr.pipeline import PipelineError, dvc_repro, override_pairs, patched_params, repo_root

    root = repo_root()
    cfg = load_config(root / "params.yaml")
    raw = root / cfg.paths.raw_dir
    started = time.time()
    if not raw.exists():
        if cfg.curation.source != "builtin":
            print(f"paco-fr run: raw folder {raw} does not exist and curation.source is "
                  f"{cfg.curation.source!r}; point paths.raw_dir at your images", file=sys.stderr)
            return 2
        from paco_fr.data.builtin import write_builtin_raw

        print(f"[paco-fr] writing the builtin raw folder to {raw}", flush=True)
        write_builtin_raw(cfg.curation.builtin, raw)
    if raw.resolve().is_relative_to(root.resolve()):
        print(f"[paco-fr] versioning {cfg.paths.raw_dir} with dvc add", flush=True)
        subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(raw.relative_to(root))],
                       cwd=root, check=True)
    pairs = list(args.overrides)
    if args.full:
        pairs.append(f"pipeline.presets=[{', '.join(cfg.pipeline.full_presets)}]")
    if args.preset:
        pairs.append(f"pipeline.presets=[{args.preset}]")
    try:
        pairs = override_pairs(None, pairs, root) if pairs else []
        with patched_params(root, pairs) as env:
            dvc_repro([], root=root, force=args.force, env=env)
    except PipelineError as exc:
        print(f"paco-fr run: {exc}", file=sys.stderr)
        return 1
    summary = root / cfg.paths.data_dir / "summary"
    table = next(iter(sorted(summary.glob("*.md"))), None)
    print(f"\n[paco-fr] pipeline finished in {time.time() - started:.0f} s; outputs under {cfg.paths.data_dir}/")
    if table is not None:
        print(table.read_text())
    return 0
