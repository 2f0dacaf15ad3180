"""Shared test set-up: everything offline, no telemetry, temporary homes for Dagster and wandb."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before any test module imports torch: the same OpenMP waiting as the library sets (paco_fr/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402


def _session_dir(prefix: str) -> str:
    """A folder for this test session, removed when the session ends."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# Records a stage makes without a log of its own go to a temporary log, never to the developer's
# lineage/ (module- and session-scoped fixtures run before the per-test log below is set).
os.environ["PACO_FR_LINEAGE_LOG"] = os.path.join(_session_dir("paco-fr-lineage-"), "records.jsonl")

# Dagster insists on an existing absolute DAGSTER_HOME; tests never touch the developer's, even when
# the developer's shell sets one.
os.environ["DAGSTER_HOME"] = _session_dir("paco-fr-dagster-home-")


@pytest.fixture(autouse=True)
def _isolated_lineage_log(tmp_path_factory, monkeypatch):
    """Provenance records go to a per-test log, never to the developer's data/ folder."""
    log = tmp_path_factory.mktemp("lineage") / "records.jsonl"
    monkeypatch.setenv("PACO_FR_LINEAGE_LOG", str(log))
    yield log


def _build_tiny_repo(dest) -> None:
    from tiny_repo import commit, make_tiny_repo, paco_fr

    make_tiny_repo(dest)
    paco_fr(dest, "run")
    commit(dest, "pipeline built")


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory, worker_id):
    """A tiny repository after the README's main command (`paco-fr run`), committed. Tests copy it.
    Under pytest-xdist the workers share one build (the slowest fixture: every worker building its own
    would cost more than the second worker saves): the first builds it under a file lock in the run's
    common temporary folder, the others wait for it and read the marker it leaves when done."""
    if worker_id == "master":  # no xdist
        repo = tmp_path_factory.mktemp("built") / "repo"
        _build_tiny_repo(repo)
        return repo
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one per test run, common to its workers
    repo, done = shared / "built" / "repo", shared / "built" / "done"
    with FileLock(str(shared / "built.lock")):
        if not done.exists():
            shutil.rmtree(repo, ignore_errors=True)  # a build that failed in another worker
            _build_tiny_repo(repo)
            done.touch()
    return repo
