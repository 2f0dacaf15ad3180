"""`paco-fr pretrain`: the command line of the pre-training stage (also what `torchrun` launches)."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from paco_fr.cli import add_config_args, add_lineage_arg

    parser = sub.add_parser("pretrain", help="pre-train a PaCo-FR face encoder (one or many processes)",
                            description="Pre-train the encoder on CORPUS with its REGIONS; writes the encoder, "
                                        "model card, metrics and loss curves to OUT (checkpoints and run facts "
                                        "to the run folder). With --nproc-per-node N (or $PACO_FR_NPROC_PER_NODE) "
                                        "it runs itself under torch.distributed.run with N processes (DDP: NCCL on "
                                        "GPUs, gloo on CPU); rank 0 writes. The process count is how the run is "
                                        "executed, not a parameter of the encoder: the data order is fixed by "
                                        "train.loader_groups/loader_streams.")
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
    parser.add_argument("--nproc-per-node", type=int, default=int(os.environ.get(NPROC_ENV, "1")), metavar="N",
                        help=f"processes on this machine (default: ${NPROC_ENV} or 1); >1 runs under torchrun")
    parser.add_argument("--nnodes", type=int, default=int(os.environ.get(NNODES_ENV, "1")), metavar="N",
                        help=f"machines (default: ${NNODES_ENV} or 1); >1 needs --rdzv-endpoint")
    parser.add_argument("--rdzv-endpoint", default=os.environ.get(RDZV_ENV), metavar="HOST:PORT",
                        help=f"rendezvous of a multi-node run (default: ${RDZV_ENV})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(parser)
    add_lineage_arg(parser)
    parser.set_defaults(func=run)


NPROC_ENV = "PACO_FR_NPROC_PER_NODE"
NNODES_ENV = "PACO_FR_NNODES"
RDZV_ENV = "PACO_FR_RDZV_ENDPOINT"


def run(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args
    from paco_fr.config import to_dict
    from paco_fr.train.stage import pretrain

    cfg = config_from_args(args)  # checked before any process is started
    if (args.nproc_per_node > 1 or args.nnodes > 1) and "RANK" not in os.environ:
        return _launch_distributed(args)
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


def _launch_distributed(args: argparse.Namespace) -> int:
    """Run this same command under torch.distributed.run: one user command, no torchrun line to keep
    in sync with it. The children see RANK and train; this process waits and passes on the exit code."""
    import subprocess

    if args.nnodes > 1 and not args.rdzv_endpoint:
        print("paco-fr pretrain: --nnodes > 1 needs --rdzv-endpoint HOST:PORT", file=sys.stderr)
        return 2
    topology = (["--standalone"] if args.nnodes == 1 else
                ["--nnodes", str(args.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", args.rdzv_endpoint])
    cmd = [sys.executable, "-m", "torch.distributed.run", *topology, "--nproc-per-node", str(args.nproc_per_node),
           "-m", "paco_fr.train", *_forwarded(args)]
    print(f"pretrain: {args.nproc_per_node} process(es) x {args.nnodes} node(s): {' '.join(cmd)}", file=sys.stderr,
          flush=True)
    return subprocess.run(cmd).returncode


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The command-line arguments of `args`, for the processes torchrun starts."""
    out = ["--corpus", args.corpus, "--regions", args.regions, "--out", args.out]
    for flag, value in (("--run-dir", args.run_dir), ("--metrics", args.metrics), ("--plot", args.plot),
                        ("--device", args.device), ("--params", args.params), ("--preset", args.preset),
                        ("--lineage", args.lineage)):
        if value is not None:
            out += [flag, str(value)]
    out += [a for kv in args.overrides for a in ("--set", kv)]
    out += [flag for flag, on in (("--resume", args.resume), ("--no-progress", args.no_progress)) if on]
    return out


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
