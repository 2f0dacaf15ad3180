"""Resources: where data lives, how DVC is driven, wandb settings, parameter overrides for a run, and
the training launcher (a local Pipes subprocess, or a Kubernetes GPU pod through dagster-k8s)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from paco_fr.config import load_config
from paco_fr.pipeline import ReproResult, dvc_repro, override_pairs, patched_params, repo_root


def default_repo_root() -> str:
    return str(repo_root(os.environ.get("PACO_FR_REPO", Path(__file__).resolve().parents[1])))


class ParamsOverrides(dg.ConfigurableResource):
    """Run-level overrides of params.yaml, set in the launchpad's `resources:` block. They are applied
    to every stage of the run and recorded in each artifact's provenance.json and in dvc.lock."""

    preset: Optional[str] = Field(default=None, description="pre-train this preset instead of pipeline.presets")
    epochs: Optional[int] = Field(default=None, description="train.epochs")
    benchmarks: Optional[list[str]] = Field(default=None, description="eval.benchmarks")
    set: list[str] = Field(default_factory=list, description="any other key=value overrides")

    def pairs(self, root: Path) -> list[str]:
        pairs: list[str] = []
        if self.preset:
            load_config(root / "params.yaml", preset=self.preset)  # fail early on an unknown preset
            pairs.append(f"pipeline.presets=[{self.preset}]")
        if self.epochs is not None:
            pairs.append(f"train.epochs={self.epochs}")
        if self.benchmarks is not None:
            pairs.append(f"eval.benchmarks=[{', '.join(self.benchmarks)}]")
        pairs += list(self.set)
        return override_pairs(None, pairs, root) if pairs else []


class PathsResource(dg.ConfigurableResource):
    """The repository root (holding dvc.yaml and params.yaml); data paths come from params.yaml."""

    repo_root: str = Field(default_factory=default_repo_root)

    @property
    def root(self) -> Path:
        return Path(self.repo_root)

    def config(self):
        return load_config(self.root / "params.yaml")

    def data_dir(self) -> Path:
        return self.root / self.config().paths.data_dir

    def raw_dir(self) -> Path:
        return self.root / self.config().paths.raw_dir


class DvcResource(dg.ConfigurableResource):
    """Runs DVC stages in the repository; optionally pushes outputs to the configured remote."""

    repo_root: str = Field(default_factory=default_repo_root)
    remote: Optional[str] = Field(default=None, description="DVC remote name (default: the repo's default)")
    push: bool = Field(default=False, description="dvc push each stage's outputs after it runs")

    def repro(self, targets: list[str], pairs: list[str], context: dg.AssetExecutionContext | None = None
              ) -> ReproResult:
        root = Path(self.repo_root)
        if context is not None:
            context.log.info(f"dvc repro --single-item {' '.join(targets)}"
                             + (f" with overrides {pairs}" if pairs else ""))
        with patched_params(root, pairs) as env:
            env = {**env, "PACO_FR_RUN_ID": context.run.run_id if context is not None else ""}
            result = dvc_repro(targets, root=root, single_item=True, env=env, stream=True)
        if self.push:
            import subprocess

            cmd = [sys.executable, "-m", "dvc", "push", *targets] + (["-r", self.remote] if self.remote else [])
            subprocess.run(cmd, cwd=root, check=True)
        return result


class WandbResource(dg.ConfigurableResource):
    """wandb settings handed to training (offline by default: runs sync later with `wandb sync`)."""

    mode: str = "offline"
    project: str = "paco-fr"

    def pairs(self) -> list[str]:
        return [f"train.wandb_mode={self.mode}", f"train.wandb_project={self.project}"]


class TrainingLauncher(dg.ConfigurableResource):
    """Where pre-training runs. Subclasses build a command and launch it with Dagster Pipes."""

    def launch(self, context: dg.AssetExecutionContext, targets: list[str], pairs: list[str]):
        raise NotImplementedError


class LocalTrainingLauncher(TrainingLauncher):
    """Runs the pre-training DVC stage in a local subprocess speaking Dagster Pipes. With more than one
    process, training runs under torchrun (DDP: gloo on CPU, NCCL on GPU)."""

    repo_root: str = Field(default_factory=default_repo_root)
    nproc_per_node: int = 1

    def command(self, targets: list[str], pairs: list[str]) -> list[str]:
        pairs = [*pairs, f"train.nproc_per_node={self.nproc_per_node}"] if self.nproc_per_node > 1 else pairs
        return [sys.executable, "-m", "dagster_project.pipes_entry", *targets,
                *[arg for pair in pairs for arg in ("--set", pair)]]

    def launch(self, context: dg.AssetExecutionContext, targets: list[str], pairs: list[str]):
        client = dg.PipesSubprocessClient(cwd=self.repo_root)
        return client.run(context=context, command=self.command(targets, pairs),
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

    def command(self, targets: list[str], pairs: list[str]) -> list[str]:
        pairs = [*pairs, f"train.nproc_per_node={self.gpus}"] if self.gpus > 1 else pairs
        return ["python", "-m", "dagster_project.pipes_entry", *targets, "--pull", "--push",
                *[arg for pair in pairs for arg in ("--set", pair)]]

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

    def pod_body(self, targets: list[str], pairs: list[str], env: dict[str, str] | None = None):
        """The V1Pod the launcher would submit (what the tests check; no cluster needed)."""
        from dagster_k8s.pipes import build_pod_body

        return build_pod_body(pod_name="paco-fr-pretrain", image=self.image,
                              command=self.command(targets, pairs), env_vars=env or {},
                              base_pod_meta={"labels": {"app": "paco-fr", "stage": "pretrain"}},
                              base_pod_spec=self.base_pod_spec())

    def launch(self, context: dg.AssetExecutionContext, targets: list[str], pairs: list[str]):
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient().run(context=context, namespace=self.namespace,
                                    command=self.command(targets, pairs),
                                    base_pod_meta={"labels": {"app": "paco-fr", "stage": "pretrain"}},
                                    base_pod_spec=self.base_pod_spec())


def training_launcher_from_env() -> TrainingLauncher:
    """PACO_FR_LAUNCHER=k8s selects Kubernetes pods (image from PACO_FR_IMAGE); local otherwise."""
    if os.environ.get("PACO_FR_LAUNCHER", "local") == "k8s":
        return K8sTrainingLauncher(image=os.environ.get("PACO_FR_IMAGE", K8sTrainingLauncher().image),
                                   gpus=int(os.environ.get("PACO_FR_GPUS", "1")))
    return LocalTrainingLauncher()
