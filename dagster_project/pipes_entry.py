"""The process a training launcher starts (a local subprocess or a Kubernetes pod).

It speaks Dagster Pipes to the orchestrator and runs the DVC stage, so training goes through the same
`dvc repro` -> `paco-fr pretrain` path as everything else. Progress (step, loss, images/s, ETA) is
relayed from the run's progress.jsonl as it is written; the materialisation it reports carries the
encoder's md5 from dvc.lock as its data version.

    python -m dagster_project.pipes_entry pretrain@paco_fr-0            # a local subprocess
    python -m dagster_project.pipes_entry pretrain@paco_fr-0 --worker   # a pod (dagster_project.k8s)

A worker refuses to run unless its code is the commit the orchestrator runs, takes params.yaml and
the dvc.lock entries of its inputs from the Pipes extras, pulls exactly those versions from the DVC
remote, trains, pushes its outputs, and reports its dvc.lock entry and its git-tracked outputs back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from dagster_pipes import PipesContext, open_dagster_pipes

from paco_fr.io import read_json
from paco_fr.pipeline import declared_outputs, dvc_repro, lock_stages, repo_root


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


# git-tracked outputs a worker sends back in its report (they are not in the DVC remote).
SMALL_OUTPUT_BYTES = 4_000_000


class WrongImage(RuntimeError):
    """The worker's code is not the commit the orchestrator asked for."""


def prepare_worker(root: Path, extras: dict, target: str) -> None:
    """Check the image's commit, then set up the exact inputs the orchestrator trains on."""
    commit = os.environ.get("PACO_FR_IMAGE_COMMIT") or subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    if commit != extras["commit"]:
        raise WrongImage(f"this worker runs commit {commit or 'unknown'} but the orchestrator runs {extras['commit']}: "
                         "build and push the image of that commit (see Dockerfile) and launch again")
    (root / "params.yaml").write_text(extras["params_yaml"], encoding="utf-8")
    from dagster_project.k8s import merge_lock_entry

    for stage, entry in extras["dvc_lock"].items():
        merge_lock_entry(root, stage, entry)
    for path, text in extras.get("small_outputs", {}).items():  # the stage's logs as the orchestrator has them
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    remote = ["-r", extras["remote"]] if extras.get("remote") else []
    subprocess.run([sys.executable, "-m", "dvc", "pull", *extras["dvc_lock"], *remote], cwd=root, check=True)


def worker_report(root: Path, target: str, remote: str | None) -> dict:
    """Push the stage's outputs; its dvc.lock entry and small git-tracked outputs for the report."""
    subprocess.run([sys.executable, "-m", "dvc", "push", target, *(["-r", remote] if remote else [])], cwd=root,
                   check=True)
    entry = lock_stages(root)[target]
    from dagster_project.k8s import with_reruns_logs

    small = {p: (root / p).read_text(encoding="utf-8") for p in with_reruns_logs([o["path"] for o in entry["outs"]])
             if (root / p).is_file() and (root / p).stat().st_size <= SMALL_OUTPUT_BYTES}
    return {"dvc_lock_entry": {"raw_value": entry, "type": "json"},
            "small_outputs": {"raw_value": small, "type": "json"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.pipes_entry")
    parser.add_argument("target", help="one DVC stage, e.g. pretrain@paco_fr-0")
    parser.add_argument("--worker", action="store_true",
                        help="a pod: inputs by exact version from the DVC remote (Pipes extras), outputs pushed back")
    args = parser.parse_args(argv)

    root = repo_root()
    with open_dagster_pipes() as pipes:
        if args.worker:
            prepare_worker(root, pipes.extras, args.target)
        out = artifact_out({p: "" for p in declared_outputs(args.target, root)})
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
        md5 = result.outs[out]
        card = read_json(root / out / "model_card.json")
        extra = worker_report(root, args.target, pipes.extras.get("remote")) if args.worker else {}
        pipes.report_asset_materialization(
            metadata={"dvc_md5": {"raw_value": md5, "type": "text"},
                      "ran": {"raw_value": ", ".join(result.ran) or "nothing: up to date", "type": "text"},
                      "wall_time_s": {"raw_value": round(time.time() - started, 1), "type": "float"},
                      "final_metrics": {"raw_value": card.get("metrics", {}), "type": "json"}, **extra},
            data_version=md5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
