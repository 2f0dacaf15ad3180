"""Resources: where the repository is, how DVC stages run, and where pre-training runs (a local Pipes
subprocess here; a Kubernetes GPU pod through dagster-k8s in dagster_project.k8s).

Production assets take every parameter from the committed params.yaml; a run with other parameters
is an experiment (dagster_project.experiments), never an override of a production asset.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import dagster as dg
from pydantic import Field

from dagster_project.project import default_repo_root, project_config
from paco_fr.pipeline import ReproResult, dvc_repro, stage_outputs
from paco_fr.train.cli import NPROC_ENV


class PathsResource(dg.ConfigurableResource):
    """The repository root (holding dvc.yaml and params.yaml); data paths come from params.yaml."""

    repo_root: str = Field(default_factory=default_repo_root)

    @property
    def root(self) -> Path:
        return Path(self.repo_root)

    def config(self):
        return project_config(self.repo_root)

    def data_dir(self) -> Path:
        return self.root / self.config().paths.data_dir

    def rel(self, *parts: str) -> str:
        """A path under data_dir, relative to the repository (as dvc.lock and lineage name it)."""
        return "/".join([self.config().paths.data_dir, *parts])


class DvcResource(dg.ConfigurableResource):
    """Runs DVC stages in the repository (`dvc repro --single-item`), streaming DVC's output into the
    run's logs; optionally pushes each stage's outputs to a remote."""

    repo_root: str = Field(default_factory=default_repo_root)
    remote: Optional[str] = Field(default=None, description="DVC remote name (default: the repo's default)")
    push: bool = Field(default=False, description="dvc push each stage's outputs after it runs")
    record_only: bool = Field(default=False, description="record what dvc.lock holds without running DVC "
                                                         "(after `paco-fr run` has just reproduced everything)")

    def repro(self, targets: list[str], context: dg.AssetExecutionContext | None = None) -> ReproResult:
        root = Path(self.repo_root)
        if self.record_only:
            return ReproResult(targets=list(targets), outs=stage_outputs(targets, root=root),
                               log="recorded from dvc.lock")
        if context is not None:
            context.log.info(f"dvc repro --single-item {' '.join(targets)}")
        env = {"PACO_FR_RUN_ID": context.run.run_id} if context is not None else {}
        relay = progress_relay(context.log.info) if context is not None else None
        result = dvc_repro(targets, root=root, single_item=True, env=env, stream=True, on_line=relay)
        if context is not None:
            context.log.info(f"ran: {', '.join(result.ran) or 'nothing: up to date'}")
        if self.push:
            import subprocess

            cmd = [sys.executable, "-m", "dvc", "push", *targets] + (["-r", self.remote] if self.remote else [])
            subprocess.run(cmd, cwd=root, check=True)
        return result


def progress_relay(log: Callable[[str], None], every_s: float = 10.0) -> Callable[[str], None]:
    """A line handler that puts stages' progress lines (JSON with an "event", e.g. curation's
    `curate_progress`) into the run log, at most one per `every_s` per event kind, the last always."""
    last: dict[str, float] = {}

    def handle(line: str) -> None:
        text = line.strip()
        if not (text.startswith("{") and '"event"' in text):
            return
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return
        event = str(record.get("event"))
        now = time.monotonic()
        final = record.get("done") is not None and record.get("done") == record.get("total")
        if final or now - last.get(event, -every_s) >= every_s:
            last[event] = now
            log(format_progress(record))

    return handle


def format_progress(record: dict[str, Any]) -> str:
    if record.get("event") == "curate_progress":
        eta = record.get("eta_s")
        return (f"{record.get('stage', 'curate')}: {record.get('done')}/{record.get('total')} inputs, "
                f"{record.get('faces')} faces, {record.get('rejected')} rejected, "
                f"{record.get('faces_per_s', 0):.1f} faces/s" + (f", ETA {eta:.0f} s" if eta is not None else ""))
    return json.dumps(record)


class TrainingLauncher(dg.ConfigurableResource):
    """Where pre-training runs. Subclasses build a command and launch it with Dagster Pipes."""

    def launch(self, context: dg.AssetExecutionContext, target: str):
        raise NotImplementedError


class RecordedTraining(TrainingLauncher):
    """Launches nothing: the encoder was trained by `paco-fr run`; its materialisation is recorded."""

    def launch(self, context: dg.AssetExecutionContext, target: str):
        return _Recorded()


class _Recorded:
    def get_materialize_result(self) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"ran": "recorded after `paco-fr run`"})


class LocalTrainingLauncher(TrainingLauncher):
    """Runs the pre-training DVC stage in a local subprocess speaking Dagster Pipes, with
    `nproc_per_node` training processes (torch.distributed.run: NCCL on GPUs, gloo on CPU). The process
    count is an execution setting handed to the stage by environment, not a DVC parameter: changing it
    does not make the encoder stale."""

    repo_root: str = Field(default_factory=default_repo_root)
    nproc_per_node: int = Field(default_factory=lambda: int(os.environ.get(NPROC_ENV, "1")),
                                description="training processes on this machine (GPUs, or CPU processes)")

    def command(self, target: str) -> list[str]:
        return [sys.executable, "-m", "dagster_project.pipes_entry", target]

    def env(self, context: dg.AssetExecutionContext) -> dict[str, str]:
        return {"PACO_FR_RUN_ID": context.run.run_id, NPROC_ENV: str(self.nproc_per_node)}

    def launch(self, context: dg.AssetExecutionContext, target: str):
        client = dg.PipesSubprocessClient(cwd=self.repo_root)
        return client.run(context=context, command=self.command(target), env=self.env(context))


def training_launcher_from_env() -> TrainingLauncher:
    """PACO_FR_LAUNCHER=k8s: Kubernetes pods (PACO_FR_IMAGE_REPOSITORY, PACO_FR_GPUS, PACO_FR_NAMESPACE,
    PACO_FR_DVC_REMOTE, PACO_FR_REMOTE_SECRET, PACO_FR_WANDB_SECRET); else local processes
    ($PACO_FR_NPROC_PER_NODE of them)."""
    if os.environ.get("PACO_FR_LAUNCHER", "local") == "k8s":
        from dagster_project.k8s import K8sTrainingLauncher

        settings = {"image_repository": "PACO_FR_IMAGE_REPOSITORY", "namespace": "PACO_FR_NAMESPACE",
                    "remote": "PACO_FR_DVC_REMOTE", "remote_secret": "PACO_FR_REMOTE_SECRET",
                    "wandb_secret": "PACO_FR_WANDB_SECRET"}
        return K8sTrainingLauncher(gpus=int(os.environ.get("PACO_FR_GPUS", "1")),
                                   **{k: os.environ[v] for k, v in settings.items() if v in os.environ})
    return LocalTrainingLauncher()
