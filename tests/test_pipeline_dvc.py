"""The DVC driving layer, on a tiny real DVC repository (git + dvc init) with a one-stage pipeline."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from paco_fr.config import ConfigError
from paco_fr.pipeline import (PipelineError, combined_version, dvc_repro, override_pairs, patched_params,
                              stage_outputs)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dvc_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    # One stage that writes the value of a parameter, so we can see which value produced the output.
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  echo_epochs:\n"
        f"    cmd: {sys.executable} -c \"import yaml,pathlib; p=yaml.safe_load(open('params.yaml'));"
        " pathlib.Path('out').mkdir(exist_ok=True); pathlib.Path('out/epochs.txt').write_text(str(p['train']['epochs']))\"\n"
        "    params:\n      - train.epochs\n"
        "    outs:\n      - out\n")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    return repo


def _epochs(repo):
    return str(yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"])


def test_repro_runs_once_then_skips_and_reports_output_hashes(dvc_repo):
    first = dvc_repro([], root=dvc_repo, stream=False)
    assert (dvc_repo / "out" / "epochs.txt").read_text() == _epochs(dvc_repo)
    assert list(first.outs) == ["out"] and first.outs["out"].endswith(".dir")
    second = dvc_repro([], root=dvc_repo, stream=False)
    assert "didn't change, skipping" in second.log
    assert second.outs == first.outs == stage_outputs(root=dvc_repo)
    assert combined_version(first.outs) == combined_version(dict(reversed(list(first.outs.items()))))


def test_patched_params_reach_the_stage_and_dvc_lock_and_params_yaml_is_restored(dvc_repo):
    original = (dvc_repo / "params.yaml").read_bytes()
    configured = _epochs(dvc_repo)
    pairs = override_pairs(None, ["train.epochs=3"], dvc_repo)
    with patched_params(dvc_repo, pairs) as env:
        assert b"epochs: 3" in (dvc_repo / "params.yaml").read_bytes()
        assert "# The one source of configuration" in (dvc_repo / "params.yaml").read_text()  # comments kept
        dvc_repro([], root=dvc_repo, env=env, stream=False)
    assert (dvc_repo / "params.yaml").read_bytes() == original
    assert (dvc_repo / "out" / "epochs.txt").read_text() == "3"
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())
    assert lock["stages"]["echo_epochs"]["params"]["params.yaml"]["train.epochs"] == 3
    # dvc.lock now truthfully disagrees with params.yaml: a plain repro rebuilds with its value.
    dvc_repro([], root=dvc_repo, stream=False)
    assert (dvc_repo / "out" / "epochs.txt").read_text() == configured


def test_params_are_restored_when_the_stage_fails(dvc_repo):
    original = (dvc_repo / "params.yaml").read_bytes()
    (dvc_repo / "dvc.yaml").write_text((dvc_repo / "dvc.yaml").read_text().replace("cmd: ", "cmd: false && "))
    with pytest.raises(PipelineError, match="failed with exit code"):
        with patched_params(dvc_repo, ["train.epochs=2"]) as env:
            dvc_repro([], root=dvc_repo, env=env, stream=False)
    assert (dvc_repo / "params.yaml").read_bytes() == original


def test_invalid_overrides_never_touch_params_yaml(dvc_repo):
    with pytest.raises(ConfigError, match="unknown config key"):
        override_pairs(None, ["train.epoch=3"], dvc_repo)
    with pytest.raises(ConfigError, match="unknown preset"):
        override_pairs("nope", [], dvc_repo)
    assert override_pairs("mae", [], dvc_repo)[0].startswith("masking.strategy=")
