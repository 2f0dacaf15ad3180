"""`paco-fr pretrain`: the command line of the pre-training stage (also what `torchrun` launches)."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from paco_fr.cli import add_config_args, add_lineage_arg

    parser = sub.add_parser("pretrain", help="pre-train a PaCo-FR face encoder (torchrun-compatible)",
                            description="Pre-train the encoder on CORPUS with its REGIONS; writes the encoder, "
                                        "model card, metrics and checkpoints to OUT. Launch with "
                                        "`torchrun --nproc_per_node N` for DDP; rank 0 writes.")
    parser.add_argument("--corpus", required=True, metavar="DIR", help="face corpus (output of `curate`)")
    parser.add_argument("--regions", required=True, metavar="DIR", help="region maps (output of `regions`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN_DIR/checkpoints/last.pt if present")
    parser.add_argument("--run-dir", default=None, metavar="DIR",
                        help="facts of this run: checkpoints, progress.jsonl, wandb (default: runs/<OUT>)")
    parser.add_argument("--metrics", default=None, metavar="FILE",
                        help="also write the final metrics as JSON here (for `dvc metrics`)")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help="also write the training losses per step as CSV here (for `dvc plots`)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK if any)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(parser)
    add_lineage_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args
    from paco_fr.config import to_dict
    from paco_fr.train.stage import pretrain

    cfg = config_from_args(args)
    result = pretrain(cfg, args.corpus, args.regions, args.out, resume=args.resume,
                      progress=not args.no_progress, device=args.device, run_dir=args.run_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        from paco_fr.io import write_json_atomic
        from paco_fr.lineage import record_provenance
        from paco_fr.train.tracking import read_metrics, write_loss_csv

        params = {k: to_dict(getattr(cfg, k)) for k in ("seed", "masking", "model", "train")}
        record_provenance(result.out_dir, "pretrain", inputs={"corpus": args.corpus, "regions": args.regions},
                          params=params, overrides=cfg.applied,
                          extra={**result.run,
                                 "metrics": {k: v for k, v in result.metrics.items() if not isinstance(v, dict)}},
                          log=args.lineage)
        if args.metrics:
            write_json_atomic(args.metrics, result.metrics)
        if args.plot:
            write_loss_csv(read_metrics(result.out_dir), args.plot)
        m = result.metrics
        print(f"pretrain: {m.get('steps')} steps; encoder -> {result.encoder_path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m paco_fr.train ...`: the pretrain command alone, without the other stages' imports."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    parser = argparse.ArgumentParser(prog="python -m paco_fr.train")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register(sub)
    args = parser.parse_args(["pretrain", *(sys.argv[1:] if argv is None else argv)])
    from paco_fr.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"paco-fr pretrain: configuration error: {exc}", file=sys.stderr)
        return 2
