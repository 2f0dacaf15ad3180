"""A throw-away copy of the project repository with tiny settings, for end-to-end pipeline tests.

It holds the real dvc.yaml, params.yaml (patched to tiny sizes) and a copy of the library sources
(DVC hashes them as stage dependencies); the stage commands run the installed `paco-fr`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "curation.builtin.n_synthetic=36",
    "curation.builtin.n_identities=12",
    "curation.shard_size=16",
    "train.epochs=2",
    "train.max_steps=6",
    "train.batch_size=8",
    "train.warmup_steps=2",
    "train.num_workers=0",
    "train.log_every=2",
    "train.image_every=4",
    "train.checkpoint_every=3",
    "train.incubation_epochs=0",
    "model.codebook_size=32",
    "model.decoder_dim=32",
    "model.decoder_depth=1",
    "eval.n_train=40",
    "eval.n_val=16",
    "eval.n_test=24",
    "eval.bootstrap=50",
    "eval.benchmarks=[synthetic_expression, synthetic_parsing]",
    # One baseline row is enough to exercise the baseline stages; each one is a process per benchmark.
    "pipeline.baselines=[random]",
]


def patched_params_text(text: str, pairs: list[str]) -> str:
    """params.yaml text with `key=value` pairs applied, comments kept (ruamel round trip)."""
    from io import StringIO

    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    doc = rt.load(text)
    for pair in pairs:
        key, _, raw = pair.partition("=")
        node = doc
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(raw)
    out = StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def make_tiny_repo(dest: Path, extra: list[str] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("paco_fr", "dagster_project"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "workspace.yaml"):
        shutil.copy(ROOT / name, dest / name)
    params = patched_params_text((ROOT / "params.yaml").read_text(), [*TINY, *(extra or [])])
    (dest / "params.yaml").write_text(params)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dest, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], cwd=dest, check=True,
                   env=env)
    commit(dest, "tiny repository")
    return dest


def commit(repo: Path, message: str) -> None:
    """Commit everything git does not ignore (DVC experiments start from a commit)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@paco-fr.local",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@paco-fr.local"}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=repo, check=True, env=env)


def write_raw(repo: Path) -> Path:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(Path(sys.executable).parent / "paco-fr"), "raw", "--out", "data/raw"], cwd=repo,
                   check=True, env=env)
    return repo / "data" / "raw"


PACO_FR = str(Path(sys.executable).parent / "paco-fr")


def tool_env() -> dict[str, str]:
    """The environment a user's shell has: this interpreter's scripts on PATH, and no test-only lineage
    log (records go to the repository's own lineage/ logs)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PACO_FR_LINEAGE_LOG", None)
    return env


def paco_fr(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PACO_FR, *args], cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=1200)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=tool_env(), capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def copy_repo(repo: Path, dest: Path) -> Path:
    shutil.copytree(repo, dest, symlinks=True)
    return dest
