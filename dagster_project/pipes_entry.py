"""The process a training launcher starts (a local subprocess or a Kubernetes pod).

It speaks Dagster Pipes to the orchestrator and runs the DVC stage, so training goes through the same
`dvc repro` -> `paco-fr pretrain` path as everything else. Progress is relayed by tailing the
stage's metrics.jsonl; the final model card becomes the materialisation's metadata.

    python -m dagster_project.pipes_entry pretrain@paco_fr [--set key=value ...] [--pull] [--push]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from dagster_pipes import PipesContext, open_dagster_pipes

from paco_fr.io import read_json
from paco_fr.pipeline import combined_version, dvc_repro, patched_params, repo_root


def _relay_progress(pipes: PipesContext, metrics: Path, stop: threading.Event) -> None:
    """Forward every `log_every`-th training record to the orchestrator's log as it is written."""
    offset = 0
    while not stop.wait(5.0):
        if not metrics.exists():
            continue
        with open(metrics, encoding="utf-8") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith("\n"):
                    break
                offset += len(line.encode("utf-8"))
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                shown = {k: record[k] for k in ("step", "epoch", "loss", "loss_rec", "images_per_s", "lr")
                         if k in record}
                pipes.log.info(f"training {json.dumps(shown)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.pipes_entry")
    parser.add_argument("targets", nargs="+", help="DVC stages, e.g. pretrain@paco_fr")
    parser.add_argument("--set", dest="pairs", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--pull", action="store_true", help="dvc pull the stage inputs first (pods)")
    parser.add_argument("--push", action="store_true", help="dvc push the outputs afterwards (pods)")
    args = parser.parse_args(argv)

    root = repo_root()
    with open_dagster_pipes() as pipes:
        import subprocess

        if args.pull:
            subprocess.run([sys.executable, "-m", "dvc", "pull", "--allow-missing", *args.targets],
                           cwd=root, check=True)
        stop = threading.Event()
        watchers = []
        for target in args.targets:
            stage, _, item = target.partition("@")
            if stage == "pretrain" and item:
                metrics = root / "data" / "encoders" / item / "metrics.jsonl"
                watcher = threading.Thread(target=_relay_progress, args=(pipes, metrics, stop), daemon=True)
                watcher.start()
                watchers.append(watcher)
        started = time.time()
        try:
            with patched_params(root, args.pairs) as env:
                result = dvc_repro(args.targets, root=root, single_item=True, env=env, stream=True)
        finally:
            stop.set()
        if args.push:
            subprocess.run([sys.executable, "-m", "dvc", "push", *args.targets], cwd=root, check=True)

        metadata: dict[str, object] = {"dvc_outs": {"raw_value": result.outs, "type": "json"},
                                       "wall_time_s": {"raw_value": round(time.time() - started, 1),
                                                       "type": "float"}}
        for out in result.outs:
            card_path = root / out / "model_card.json"
            if card_path.exists():
                card = read_json(card_path)
                metadata[f"{Path(out).name}_metrics"] = {"raw_value": card.get("metrics", {}), "type": "json"}
        pipes.report_asset_materialization(metadata=metadata, data_version=combined_version(result.outs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
