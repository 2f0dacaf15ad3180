"""Resources: where the repository is, how DVC stages run, and where pre-training runs (a local Pipes
subprocess, or a Kubernetes GPU pod through dagster-k8s).

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
from paco_fr.pipeline import ReproResult, dvc_repro


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

    def repro(self, targets: list[str], context: dg.AssetExecutionContext | None = None) -> ReproResult:
        root = Path(self.repo_root)
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


class LocalTrainingLauncher(TrainingLauncher):
    """Runs the pre-training DVC stage in a local subprocess speaking Dagster Pipes."""

    repo_root: str = Field(default_factory=default_repo_root)

    def command(self, target: str) -> list[str]:
        return [sys.executable, "-m", "dagster_project.pipes_entry", target]

    def launch(self, context: dg.AssetExecutionContext, target: str):
        client = dg.PipesSubprocessClient(cwd=self.repo_root)
        return client.run(context=context, command=self.command(target),
                          env={"PACO_FR_RUN_ID": context.run.run_id})


class K8sTrainingLauncher(TrainingLauncher):
    """Runs the pre-training stage in a Kubernetes pod with GPUs (dagster-k8s PipesK8sClient). The image
    holds this repository and its environment; data moves through the DVC remote (pull, then push)."""

    image: str = "ghcr.io/paco-fr/paco-fr:latest"
    namespace: str = "default"
    gpus: int = 1
    cpu: str = "8"
    memory: str = "64Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    service_account: Optional[str] = None
    workdir: str = "/workspace/paco-fr"

    def command(self, target: str) -> list[str]:
        return ["python", "-m", "dagster_project.pipes_entry", target, "--pull", "--push"]

    def base_pod_spec(self) -> dict[str, Any]:
        resources = {"limits": {"nvidia.com/gpu": str(self.gpus), "cpu": self.cpu, "memory": self.memory},
                     "requests": {"cpu": self.cpu, "memory": self.memory}}
        spec: dict[str, Any] = {
            "containers": [{"name": "paco-fr-train", "image": self.image, "working_dir": self.workdir,
                            "resources": resources,
                            # NCCL needs more shared memory than a container's default 64 MiB.
                            "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}]}],
            "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory"}}],
            "restart_policy": "Never",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
        if self.node_selector:
            spec["node_selector"] = dict(self.node_selector)
        if self.service_account:
            spec["service_account_name"] = self.service_account
        return spec

    def pod_body(self, target: str, env: dict[str, str] | None = None):
        """The V1Pod the launcher would submit."""
        from dagster_k8s.pipes import build_pod_body

        return build_pod_body(pod_name="paco-fr-pretrain", image=self.image, command=self.command(target),
                              env_vars=env or {}, base_pod_meta={"labels": {"app": "paco-fr", "stage": "pretrain"}},
                              base_pod_spec=self.base_pod_spec())

    def launch(self, context: dg.AssetExecutionContext, target: str):
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient().run(context=context, namespace=self.namespace, command=self.command(target),
                                    base_pod_meta={"labels": {"app": "paco-fr", "stage": "pretrain"}},
                                    base_pod_spec=self.base_pod_spec())


def training_launcher_from_env() -> TrainingLauncher:
    """PACO_FR_LAUNCHER=k8s selects Kubernetes pods (image from PACO_FR_IMAGE); local otherwise."""
    if os.environ.get("PACO_FR_LAUNCHER", "local") == "k8s":
        return K8sTrainingLauncher(image=os.environ.get("PACO_FR_IMAGE", K8sTrainingLauncher().image),
                                   gpus=int(os.environ.get("PACO_FR_GPUS", "1")))
    return LocalTrainingLauncher()
