"""Training on a Kubernetes cluster: a GPU pod per run, data moved through the DVC remote by exact version.

    orchestrator                                       pod (an image of this repository at commit C)
    dvc push curate regions  ──▶ DVC remote ──▶  dvc pull curate regions (the versions in the extras)
    extras: commit C, params.yaml,                 refuse if the image is not commit C
            dvc.lock entries of the inputs         dvc repro --single-item pretrain@... (torchrun, N GPUs)
                                                   dvc push pretrain@...
    merge the pod's dvc.lock entry, write its  ◀── report: the stage's new dvc.lock entry, its small
    lineage/metrics files, dvc pull the encoder       git-tracked outputs (lineage log, metrics)

so the evaluation that follows scores exactly the encoder that was trained. The Kubernetes client is a
resource (`K8sClientResource`), so a test can swap it for one that runs the same pod command elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import yaml
from pydantic import Field

from dagster_project.project import default_repo_root
from dagster_project.resources import TrainingLauncher
from paco_fr.lineage import reruns_log
from paco_fr.pipeline import PipelineError, declared_outputs, lock_stages
from paco_fr.train.cli import NPROC_ENV

# Environment of this process handed on to a pod (what `wandb` and the stage read).
FORWARDED_ENV = ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_BASE_URL", "HF_HUB_OFFLINE")
# The stages whose outputs a training stage reads (dvc.yaml `deps`).
INPUT_STAGES = ("curate", "regions")


class K8sClientResource(dg.ConfigurableResource):
    """dagster-k8s' PipesK8sClient: creates the pod, streams its Pipes messages, waits for it."""

    load_incluster_config: Optional[bool] = None
    kubeconfig_file: Optional[str] = None
    kube_context: Optional[str] = None

    def run(self, *, context: dg.AssetExecutionContext, image: str, command: list[str], namespace: str,
            env: dict[str, str], extras: dict[str, Any], base_pod_meta: dict[str, Any],
            base_pod_spec: dict[str, Any]):
        from dagster_k8s import PipesK8sClient

        client = PipesK8sClient(load_incluster_config=self.load_incluster_config,
                                kubeconfig_file=self.kubeconfig_file, kube_context=self.kube_context)
        return client.run(context=context, image=image, command=command, namespace=namespace, env=env,
                          extras=extras, base_pod_meta=base_pod_meta, base_pod_spec=base_pod_spec)


class K8sTrainingLauncher(TrainingLauncher):
    """Runs the pre-training stage in a Kubernetes pod with GPUs; see the module doc."""

    repo_root: str = Field(default_factory=default_repo_root)
    image_repository: str = Field(default="ghcr.io/paco-fr/paco-fr",
                                  description="the worker image is <repository>:<git commit> (see Dockerfile)")
    namespace: str = "default"
    gpus: int = 1
    cpu: str = "8"
    memory: str = "64Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    service_account: Optional[str] = None
    workdir: str = "/workspace/paco-fr"
    remote: Optional[str] = Field(default=None, description="DVC remote both sides reach (default: the repo's)")
    remote_secret: Optional[str] = Field(default=None, description="Kubernetes secret with the remote's "
                                         "credentials (e.g. AWS_ACCESS_KEY_ID), as environment variables")
    wandb_secret: Optional[str] = Field(default=None, description="Kubernetes secret holding WANDB_API_KEY")
    client: K8sClientResource = Field(default_factory=K8sClientResource)

    # ------------------------------------------------------------------ what the pod receives

    def commit(self) -> str:
        root = Path(self.repo_root)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "paco_fr",
                                "dagster_project", "pyproject.toml"], cwd=root, capture_output=True, text=True)
        if dirty.stdout.strip():
            raise dg.Failure("the code has uncommitted changes: a worker image holds a commit, so commit (and "
                             "build and push the image) before training on the cluster")
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()

    def image(self, commit: str) -> str:
        return f"{self.image_repository}:{commit}"

    def command(self, target: str) -> list[str]:
        return ["python", "-m", "dagster_project.pipes_entry", target, "--worker"]

    def env(self, context: dg.AssetExecutionContext) -> dict[str, str]:
        import os

        env = {"PACO_FR_RUN_ID": context.run.run_id, NPROC_ENV: str(self.gpus)}
        return {**env, **{k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}}

    def extras(self, target: str, commit: str) -> dict[str, Any]:
        root = Path(self.repo_root)
        stages = lock_stages(root)
        missing = [s for s in INPUT_STAGES if s not in stages]
        if missing:
            raise dg.Failure(f"dvc.lock has no entry for {', '.join(missing)}: build the corpus and regions first")
        # The stage's git-tracked outputs (its lineage log, persisted across runs) and its log's re-runs as
        # they are here, so the pod appends to them rather than to the committed copy.
        small = {p: (root / p).read_text(encoding="utf-8") for p in with_reruns_logs(declared_outputs(target, root))
                 if (root / p).is_file()}
        return {"target": target, "commit": commit, "params_yaml": (root / "params.yaml").read_text(),
                "dvc_lock": {s: stages[s] for s in INPUT_STAGES}, "remote": self.remote, "small_outputs": small}

    def base_pod_spec(self) -> dict[str, Any]:
        resources = {"limits": {"nvidia.com/gpu": str(self.gpus), "cpu": self.cpu, "memory": self.memory},
                     "requests": {"cpu": self.cpu, "memory": self.memory}}
        secrets = [s for s in (self.remote_secret, self.wandb_secret) if s]
        container: dict[str, Any] = {
            "name": "paco-fr-train", "working_dir": self.workdir, "resources": resources,
            # NCCL needs more shared memory than a container's default 64 MiB.
            "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}],
            "env_from": [{"secret_ref": {"name": s}} for s in secrets]}
        spec: dict[str, Any] = {
            "containers": [container],
            "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory"}}],
            "restart_policy": "Never",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
        if self.node_selector:
            spec["node_selector"] = dict(self.node_selector)
        if self.service_account:
            spec["service_account_name"] = self.service_account
        return spec

    # ------------------------------------------------------------------ the round trip

    def launch(self, context: dg.AssetExecutionContext, target: str):
        root = Path(self.repo_root)
        commit = self.commit()
        extras = self.extras(target, commit)
        context.log.info(f"pushing the inputs of {target} ({', '.join(INPUT_STAGES)}) to the DVC remote")
        _dvc(root, "push", *INPUT_STAGES, *(["-r", self.remote] if self.remote else []))
        invocation = self.client.run(
            context=context, image=self.image(commit), command=self.command(target), namespace=self.namespace,
            env=self.env(context), extras=extras,
            base_pod_meta={"labels": {"app": "paco-fr", "stage": "pretrain", "commit": commit[:12]}},
            base_pod_spec=self.base_pod_spec())
        reported = invocation.get_materialize_result()
        receive_outputs(root, target, reported.metadata or {}, remote=self.remote)
        context.log.info(f"merged the pod's dvc.lock entry for {target} and pulled its outputs")
        return invocation


def receive_outputs(root: Path, target: str, metadata: dict[str, Any], *, remote: str | None) -> None:
    """Take the stage's new dvc.lock entry and its git-tracked outputs from the pod, pull the rest."""
    entry = _value(metadata.get("dvc_lock_entry"))
    files = _value(metadata.get("small_outputs")) or {}
    if not entry:
        raise dg.Failure(f"the training pod reported no dvc.lock entry for {target}")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    merge_lock_entry(root, target, entry)
    _dvc(root, "pull", target, *(["-r", remote] if remote else []))
    status = json.loads(subprocess.run([sys.executable, "-m", "dvc", "status", "--json", target], cwd=root,
                                       capture_output=True, text=True, check=True).stdout or "{}")
    if status:
        raise dg.Failure(f"after merging the pod's results, DVC still reports {target} as changed: {status}")


def with_reruns_logs(paths: list[str]) -> list[str]:
    """`paths` and, after each lineage log among them, the log of its version's re-runs."""
    out = []
    for path in paths:
        out.append(path)
        if path.startswith("lineage/") and path.endswith(".jsonl"):
            out.append(reruns_log(path).as_posix())
    return out


def merge_lock_entry(root: Path, stage: str, entry: dict[str, Any]) -> None:
    lock_file = root / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text()) if lock_file.exists() else {"schema": "2.0", "stages": {}}
    lock.setdefault("stages", {})[stage] = entry
    lock_file.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")


def _value(meta: Any) -> Any:
    return getattr(meta, "value", meta)


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"dvc {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
