"""`paco-fr run`: the main job. Builds the whole pipeline through DVC, from the raw folder to the
comparison table, and prints the table at the end.

Without overrides it is a production run: the committed params.yaml, results in the workspace. With
`--set`, `--preset`, `--full` or `--seeds` it is a DVC experiment (`dvc exp run`, in a git worktree of its own): the
workspace and params.yaml are left as they are and `dvc exp show` lists the result.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import metadata
from pathlib import Path

from paco_fr.cli import add_config_args

# Entry points of this group run after a production `paco-fr run` with the repository root; the
# orchestration package registers one that records the run's materialisations in Dagster.
RUN_HOOKS = "paco_fr.run_hooks"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline (raw -> corpus -> regions -> pre-training -> evaluation -> table)",
        description="Materialises the builtin raw folder if it is missing, versions it with `dvc add`, "
                    "then `dvc repro` (up-to-date stages are skipped) and prints the comparison table. "
                    "With --set/--preset/--full/--seeds the run is a DVC experiment instead: params.yaml and "
                    "the workspace's artifacts are left untouched and `dvc exp show` lists the result.",
    )
    p.add_argument("--full", action="store_true",
                   help="also pre-train the MAE baseline and every ablation (pipeline.full_presets), as an experiment")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="pre-train every preset with seeds 0..N-1 (an experiment; compare reports mean +- sd)")
    p.add_argument("--name", default=None, help="experiment name (with overrides)")
    p.add_argument("--force", action="store_true", help="rebuild every stage even if up to date (production)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="cores' worth of stages to run at once (default: pipeline.jobs; 0: every core; 1: one "
                        "`dvc repro`). A stage marked `meta: {cores: all}` in dvc.yaml runs alone. An experiment "
                        "(--set, --full, --seeds) runs its stages one at a time")
    p.add_argument("--background", action=argparse.BooleanOptionalAction, default=None,
                   help="while a stage that takes every core runs, run one ready one-core stage beside it at idle "
                        "CPU priority (default: pipeline.background; docs/orchestration.md)")
    add_config_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from paco_fr.config import load_config
    from paco_fr.pipeline import PipelineError, override_pairs, repo_root

    root = repo_root()
    if args.params:
        print("paco-fr run: --params is not for the pipeline (it always reads the repository's params.yaml); "
              "use --set KEY=VALUE for an experiment", file=sys.stderr)
        return 2
    cfg = load_config(root / "params.yaml")
    pairs = list(args.overrides)
    if args.full:
        pairs.append(f"pipeline.presets=[{', '.join(cfg.pipeline.full_presets)}]")
    if args.preset:
        pairs.append(f"pipeline.presets=[{args.preset}]")
    if args.seeds is not None:
        if args.seeds < 1:
            print("paco-fr run: --seeds needs at least 1", file=sys.stderr)
            return 2
        pairs.append(f"pipeline.seeds=[{', '.join(str(s) for s in range(args.seeds))}]")
    if args.jobs is not None and args.jobs < 0:
        print("paco-fr run: --jobs needs 0 (every core) or more", file=sys.stderr)
        return 2
    started = time.time()
    try:
        pairs = override_pairs(None, pairs, root) if pairs else []
        _ensure_raw(root, cfg)
        if pairs:
            return _experiment(root, cfg, pairs, args.name, started)
        jobs = cfg.pipeline.jobs if args.jobs is None else args.jobs
        background = cfg.pipeline.background if args.background is None else args.background
        return _production(root, cfg, args.force, jobs, background, started)
    except PipelineError as exc:
        print(f"paco-fr run: {exc}", file=sys.stderr)
        return 1


def _ensure_raw(root: Path, cfg) -> None:
    """Write the builtin raw folder when it is missing, then version it (dvc add + lineage record)."""
    from paco_fr.config import to_dict
    from paco_fr.pipeline import PipelineError, version_raw

    raw = root / cfg.paths.raw_dir
    builtin = cfg.curation.source == "builtin"
    if not raw.exists():
        if not builtin:
            raise PipelineError(f"raw folder {raw} does not exist and curation.source is {cfg.curation.source!r}; "
                                "point paths.raw_dir at your images")
        from paco_fr.data.builtin import write_builtin_raw

        print(f"[paco-fr] writing the builtin raw folder to {raw}", flush=True)
        write_builtin_raw(cfg.curation.builtin, raw)
    print(f"[paco-fr] versioning {cfg.paths.raw_dir} with dvc add", flush=True)
    version_raw(root, cfg.paths.raw_dir, params=to_dict(cfg.curation.builtin) if builtin else {})


def _production(root: Path, cfg, force: bool, jobs: int, background: bool, started: float) -> int:
    from paco_fr.io import available_cores
    from paco_fr.pipeline import dvc_repro
    from paco_fr.scheduler import repro_parallel

    slots = jobs or available_cores()
    if slots > 1:
        print(f"[paco-fr] dvc repro, up to {slots} cores' worth of stages at once", flush=True)
        result = repro_parallel(root, slots, force=force, background=background)
    else:
        result = dvc_repro([], root=root, force=force)
    for hook in metadata.entry_points(group=RUN_HOOKS):
        hook.load()(root)
    summary = root / cfg.paths.data_dir / "summary"
    table = next(iter(sorted(summary.glob("*.md"))), None)
    ran = ", ".join(result.ran) or "nothing (everything up to date)"
    print(f"\n[paco-fr] pipeline finished in {time.time() - started:.0f} s; ran {ran}; outputs under "
          f"{cfg.paths.data_dir}/", flush=True)
    if table is not None:
        print(table.read_text())
    return 0


def _experiment(root: Path, cfg, pairs: list[str], name: str | None, started: float) -> int:
    from paco_fr.pipeline import read_experiment_file, run_experiment

    # One `dvc exp run`: its stages run one at a time. (`dvc exp save` after our own parallel run
    # would do, but DVC 3.67's commits its temporary .dvc/tmp/repro.dat into the experiment.)
    print(f"[paco-fr] experiment with {' '.join(pairs)} (dvc exp run in a worktree of its own: params.yaml "
          "and the workspace are not touched; its stages run one at a time)", flush=True)
    result = run_experiment(root, pairs, name=name)
    print(f"\n[paco-fr] experiment {result.name} ({result.rev[:10]}) finished in {time.time() - started:.0f} s",
          flush=True)
    try:
        print(read_experiment_file(root, result.rev, f"{cfg.paths.data_dir}/summary/compare.md").decode())
    except Exception as exc:  # the table is a convenience; the experiment itself succeeded
        print(f"(no comparison table in the experiment: {exc})")
    print(f"See it with `dvc exp show`; bring its outputs into the workspace with `dvc exp apply {result.name}` "
          f"or keep it on a branch with `dvc exp branch {result.name} <branch>`.")
    return 0
