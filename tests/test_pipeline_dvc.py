"""The DVC driving layer, on a tiny real DVC repository (git + dvc init) with a one-stage pipeline:
repro, the raw folder's versioning, and experiments that never write the workspace."""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from paco_fr.config import ConfigError
from paco_fr.lineage import content_hash, find_record
from paco_fr.pipeline import (PipelineError, dvc_repro, lock_stages, override_pairs, run_experiment, stage_outputs,
                              version_raw)
from tiny_repo import commit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dvc_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    # One stage that writes the value of a parameter, so we can see which value produced the output.
    (repo / "stage.py").write_text(
        "import json, pathlib, yaml\n"
        "epochs = yaml.safe_load(open('params.yaml'))['train']['epochs']\n"
        "pathlib.Path('out').mkdir(exist_ok=True)\n"
        "pathlib.Path('out/epochs.txt').write_text(str(epochs))\n"
        "json.dump({'epochs': epochs}, open('metrics.json', 'w'))\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  echo_epochs:\n"
        f"    cmd: {sys.executable} stage.py\n"
        "    deps:\n      - stage.py\n"
        "    params:\n      - train.epochs\n"
        "    outs:\n      - out\n"
        "    metrics:\n      - metrics.json:\n          cache: false\n")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    commit(repo, "toy pipeline")
    return repo


def _epochs(repo):
    return str(yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"])


def test_dvc_lock_reads_follow_its_bytes_and_return_copies(tmp_path):
    """lock_stages caches the parsed dvc.lock: a rewrite of the same size within one clock tick (same
    mtime) must still be seen, and a caller changing what it got must not change the next read."""
    lock = tmp_path / "dvc.lock"
    entry = "schema: '2.0'\nstages:\n  a:\n    cmd: run\n    outs:\n    - path: out\n      md5: {}\n"
    lock.write_text(entry.format("a" * 32))
    assert lock_stages(tmp_path) == yaml.safe_load(lock.read_text())["stages"]
    stat = lock.stat()
    lock.write_text(entry.format("b" * 32))
    os.utime(lock, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert stage_outputs(root=tmp_path) == {"out": "b" * 32}
    lock_stages(tmp_path)["a"]["outs"].clear()
    assert stage_outputs(root=tmp_path) == {"out": "b" * 32}
    lock.unlink()
    assert lock_stages(tmp_path) == {} and stage_outputs(root=tmp_path) == {}


def test_repro_runs_once_then_skips_and_reports_output_hashes(dvc_repo):
    first = dvc_repro([], root=dvc_repo, stream=False)
    assert first.ran == ["echo_epochs"]
    assert (dvc_repo / "out" / "epochs.txt").read_text() == _epochs(dvc_repo)
    assert first.outs["out"] == content_hash(dvc_repo / "out") and first.outs["out"].endswith(".dir")
    second = dvc_repro([], root=dvc_repo, stream=False)
    assert second.ran == [] and "didn't change, skipping" in second.log
    assert second.outs == first.outs == stage_outputs(root=dvc_repo)
    with pytest.raises(PipelineError, match="failed with exit code"):
        dvc_repro(["no_such_stage"], root=dvc_repo, stream=False)


def test_the_raw_folder_is_versioned_and_recorded_once_per_version(dvc_repo):
    raw = dvc_repo / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "a.png").write_bytes(b"a")
    md5 = version_raw(dvc_repo, "data/raw")
    assert md5 == content_hash(raw) == yaml.safe_load((dvc_repo / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
    cache = dvc_repo / ".dvc" / "cache" / "files" / "md5"
    assert (cache / md5[:2] / md5[2:]).exists() and (cache / content_hash(raw / "a.png")[:2]).is_dir()
    assert find_record("data/raw", md5, root=dvc_repo)["stage"] == "raw"
    assert version_raw(dvc_repo, "data/raw") == md5
    assert len((dvc_repo / "lineage" / "raw.jsonl").read_text().splitlines()) == 1  # same version: no new record
    (raw / "b.png").write_bytes(b"b")
    assert version_raw(dvc_repo, "data/raw") != md5
    with pytest.raises(PipelineError, match="does not exist"):
        version_raw(dvc_repo, "data/elsewhere")


def test_an_experiment_leaves_params_yaml_and_the_workspace_alone(dvc_repo):
    dvc_repro([], root=dvc_repo, stream=False)
    commit(dvc_repo, "built")
    production = (dvc_repo / "out" / "epochs.txt").read_text()
    params = dvc_repo / "params.yaml"
    edited = params.read_text().replace("train:\n", "train:                         # edited while it runs\n", 1)
    writer = threading.Thread(target=lambda: (time.sleep(0.5), params.write_text(edited)))
    writer.start()
    result = run_experiment(dvc_repo, ["train.epochs=3"], name="three-epochs", stream=False)
    writer.join()
    assert params.read_text() == edited  # the user's edit, written mid-run, is still there
    assert (dvc_repo / "out" / "epochs.txt").read_text() == production
    assert result.name == "three-epochs" and result.metrics == {"epochs": 3}  # one metrics file: no path prefix
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--csv"], cwd=dvc_repo, capture_output=True,
                           text=True, check=True).stdout
    assert "three-epochs" in shown
    assert not list((dvc_repo / ".dvc" / "tmp" / "paco-fr-experiments").glob("*")), "worktree left behind"
    assert subprocess.run(["git", "worktree", "list"], cwd=dvc_repo, capture_output=True, text=True).stdout.count("\n") == 1


def test_invalid_overrides_never_start_anything(dvc_repo):
    with pytest.raises(ConfigError, match="unknown config key"):
        override_pairs(None, ["train.epoch=3"], dvc_repo)
    with pytest.raises(ConfigError, match="unknown preset"):
        override_pairs("nope", [], dvc_repo)
    assert override_pairs("mae", [], dvc_repo)[0].startswith("masking.strategy=")
    with pytest.raises(ConfigError):
        run_experiment(dvc_repo, ["train.lr=fast"], stream=False)
    assert not (dvc_repo / ".dvc" / "tmp" / "paco-fr-experiments").exists()
