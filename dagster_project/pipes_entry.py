"""The process a training launcher starts (a local subprocess or a Kubernetes pod).

It speaks Dagster Pipes to the orchestrator and runs the DVC stage, so training goes through the same
`dvc repro` -> `paco-fr pretrain` path as everything else. Progress (step, loss, images/s, ETA) is
relayed from the run's progress.jsonl as it is written; the materialisation it reports carries the
encoder's md5 from dvc.lock as its data version.

    python -m dagster_project.pipes_entry pretrain@paco_fr-0 [--pull] [--push]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from dagster_pipes import PipesContext, open_dagster_pipes

from paco_fr.io import read_json
from paco_fr.pipeline import dvc_repro, repo_root, stage_outputs


def artifact_out(outs: dict[str, str]) -> str:
    """The stage's artifact among its outputs (not its lineage log or metrics files)."""
    found = [p for p in outs if not p.startswith(("lineage/", "metrics/"))]
    if len(found) != 1:
        raise RuntimeError(f"expected one artifact output, found {found}")
    return found[0]


def relay_progress(pipes: PipesContext, progress: Path, stop: threading.Event, every_s: float = 5.0) -> None:
    """Forward the lines of progress.jsonl to the orchestrator's log as they are written."""
    offset = 0
    while not stop.wait(every_s):
        if not progress.exists():
            continue
        with open(progress, encoding="utf-8") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith("\n"):
                    break
                offset += len(line.encode("utf-8"))
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                pipes.log.info("training step {step}/{total_steps}: loss {loss:.4f}, {images_per_s:.1f} images/s, "
                               "ETA {eta_s:.0f} s".format(**{k: (v if v is not None else float("nan"))
                                                            for k, v in record.items()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.pipes_entry")
    parser.add_argument("target", help="one DVC stage, e.g. pretrain@paco_fr-0")
    parser.add_argument("--pull", action="store_true", help="dvc pull the stage inputs first (pods)")
    parser.add_argument("--push", action="store_true", help="dvc push the outputs afterwards (pods)")
    args = parser.parse_args(argv)

    root = repo_root()
    with open_dagster_pipes() as pipes:
        if args.pull:
            subprocess.run([sys.executable, "-m", "dvc", "pull", "--allow-missing", args.target], cwd=root, check=True)
        out = artifact_out({p: "" for p in _declared_outs(root, args.target)})
        stop = threading.Event()
        watcher = threading.Thread(target=relay_progress, args=(pipes, root / "runs" / out / "progress.jsonl", stop),
                                   daemon=True)
        watcher.start()
        started = time.time()
        try:
            result = dvc_repro([args.target], root=root, single_item=True, stream=True)
        finally:
            stop.set()
            watcher.join(timeout=10)
        if args.push:
            subprocess.run([sys.executable, "-m", "dvc", "push", args.target], cwd=root, check=True)
        md5 = result.outs[out]
        card = read_json(root / out / "model_card.json")
        pipes.report_asset_materialization(
            metadata={"dvc_md5": {"raw_value": md5, "type": "text"},
                      "ran": {"raw_value": ", ".join(result.ran) or "nothing: up to date", "type": "text"},
                      "wall_time_s": {"raw_value": round(time.time() - started, 1), "type": "float"},
                      "final_metrics": {"raw_value": card.get("metrics", {}), "type": "json"}},
            data_version=md5)
    return 0


def _declared_outs(root: Path, target: str) -> list[str]:
    """The outputs dvc.yaml declares for `target` (known before the stage has ever run)."""
    outs = stage_outputs([target], root=root)
    if outs:
        return list(outs)
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stage = repo.stage.collect(target)[0]
        return [str(Path(o.fs_path).relative_to(root)) for o in stage.outs]


if __name__ == "__main__":
    sys.exit(main())
