"""A curation run killed with SIGKILL and started again finishes with the same bytes as an
uninterrupted run, reuses its complete shards, and never trusts a partial or unjournaled one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from paco_fr.config import apply_overrides
from paco_fr.data.builtin import write_builtin_raw
from paco_fr.data.config import BuiltinSourceConfig, CurationConfig
from paco_fr.data.curate import WORK_DIR, curate
from paco_fr.lineage import content_hash

SHARD_SIZE = 4
N_FACES = 48

RUNNER = """
import sys
from paco_fr.config import apply_overrides
from paco_fr.data.config import CurationConfig
from paco_fr.data.curate import curate
cfg = apply_overrides(CurationConfig(), ["shard_size={shard_size}"])
curate(cfg, sys.argv[1], sys.argv[2], progress=False)
"""


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume") / "raw"
    return write_builtin_raw(BuiltinSourceConfig(photos=False, n_synthetic=N_FACES, n_identities=40), folder,
                             progress=False)


@pytest.fixture(scope="module")
def reference(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "corpus"
    curate(_cfg(), raw, out, progress=False)
    return out


def _cfg() -> CurationConfig:
    return apply_overrides(CurationConfig(), [f"shard_size={SHARD_SIZE}"])


def _assert_same_corpus(expected: Path, actual: Path) -> None:
    names = sorted(p.name for p in (expected / "shards").glob("*.tar"))
    assert names == sorted(p.name for p in (actual / "shards").glob("*.tar"))
    for name in names:
        assert (expected / "shards" / name).read_bytes() == (actual / "shards" / name).read_bytes(), name
    for table in ("manifest.parquet", "rejected.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(expected / table), pd.read_parquet(actual / table))
    assert not list(actual.rglob("*.partial")) and not (actual / WORK_DIR).exists()
    assert content_hash(expected) == content_hash(actual), "a resumed run gives the same corpus version"


def _start_and_kill(raw: Path, out: Path, after_journals: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER.format(shard_size=SHARD_SIZE), str(raw), str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = out / WORK_DIR / f"journal-{after_journals - 1:06d}.json"
    deadline = time.monotonic() + 120
    try:
        while not target.exists():
            if proc.poll() is not None:
                pytest.fail(f"runner ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("runner made no progress in 120 s")
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.parquet").exists(), "killed before the end: no final outputs yet"


def test_sigkilled_run_resumes_to_identical_output(raw, reference, tmp_path):
    out = tmp_path / "corpus"
    _start_and_kill(raw, out, after_journals=3)
    journaled = sorted((out / WORK_DIR).glob("journal-*.json"))
    assert len(journaled) >= 3
    result = curate(_cfg(), raw, out, progress=False)
    assert result.summary["resumed_from_journals"] >= 3, "complete shards were reused, not redone"
    _assert_same_corpus(reference, out)


def test_resume_never_trusts_partial_or_unjournaled_shards(raw, reference, tmp_path):
    out = tmp_path / "corpus"
    _start_and_kill(raw, out, after_journals=4)
    shards = out / "shards"
    work = out / WORK_DIR
    # A shard renamed into place whose journal was never written (killed between the two) ...
    n_journals = len(list(work.glob("journal-*.json")))
    (shards / f"shard-{n_journals:06d}.tar").write_bytes(b"garbage that is not a tar")
    # ... a half-written shard under its temporary name ...
    (shards / f".shard-{n_journals + 1:06d}.tar.partial").write_bytes(b"partial")
    # ... and a journaled shard that was damaged afterwards: it and every later journal are redone.
    damaged = shards / "shard-000002.tar"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    result = curate(_cfg(), raw, out, progress=False)
    assert result.summary["resumed_from_journals"] == 2
    _assert_same_corpus(reference, out)


@pytest.mark.slow
def test_changed_inputs_or_settings_start_afresh(raw, reference, tmp_path):
    out = tmp_path / "corpus"
    _start_and_kill(raw, out, after_journals=2)
    # Different settings: the journals describe another corpus and must not be reused.
    cfg = apply_overrides(_cfg(), ["crop_size=96"])
    result = curate(cfg, raw, out, progress=False)
    assert result.summary["resumed_from_journals"] == 0
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert set(manifest["crop_size"]) == {96}
    # And --no-resume always starts afresh, reproducing the reference byte for byte.
    _start_and_kill(raw, out, after_journals=2)
    result = curate(_cfg(), raw, out, resume=False, progress=False)
    assert result.summary["resumed_from_journals"] == 0
    _assert_same_corpus(reference, out)
    assert json.loads((out / "summary.json").read_text())["faces"] == len(pd.read_parquet(reference / "manifest.parquet"))
