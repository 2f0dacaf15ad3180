"""Curation in partitions through the user's entry points: the Dagster partitioned asset plus merge gives
the one-process corpus, and a `dvc repro` killed inside partition 2 of 3 redoes only unfinished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_driver import execute
from dagster_project.definitions import build_defs
from paco_fr.lineage import content_hash
from tiny_repo import make_tiny_repo, paco_fr, tool_env, write_raw

pytestmark = pytest.mark.slow

THREE = ["curation.partitions=[0, 1, 2]", "curation.chunk_inputs=4"]


def test_the_dagster_partitioned_corpus_is_the_one_process_corpus(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo", THREE)
    defs = build_defs(repo)
    with dg.instance_for_test() as instance:
        for key, partition in [("raw_faces", None), ("face_corpus_part", "0"), ("face_corpus_part", "1"),
                               ("face_corpus_part", "2"), ("face_corpus", None)]:
            assert execute(defs, instance, dg.AssetKey(key), partition).success, (key, partition)
    single = tmp_path / "single"
    paco_fr(repo, "curate", "--source", "data/raw", "--out", str(single), "--workers", "1", "--no-progress",
            "--set", "curation.partitions=1")
    assert content_hash(repo / "data" / "corpus") == content_hash(single)


def _chunks_done(part: Path) -> int:
    return len(list((part / "chunks").glob("chunk-*.json"))) if (part / "chunks").is_dir() else 0


def test_a_dvc_repro_killed_in_partition_2_of_3_redoes_only_unfinished_work(tmp_path):
    straight = make_tiny_repo(tmp_path / "straight", THREE)
    write_raw(straight)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "curate"], cwd=straight, env=tool_env(), check=True,
                   capture_output=True)

    killed = make_tiny_repo(tmp_path / "killed", THREE)
    write_raw(killed)
    part2 = killed / "data" / "corpus_parts" / "part-1"
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "curate"], cwd=killed, env=tool_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and _chunks_done(part2) < 1:
        time.sleep(0.02)
    assert proc.poll() is None, "curation finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _chunks_done(part2)
    assert 1 <= done_before, "partition 2 had finished no chunk when killed"
    assert not (killed / "data" / "corpus" / "manifest.parquet").exists()
    lock = killed / "dvc.lock"
    finished = set(yaml.safe_load(lock.read_text())["stages"]) if lock.exists() else set()
    assert "curate_part@1" not in finished

    rerun = subprocess.run([sys.executable, "-m", "dvc", "repro", "curate"], cwd=killed, env=tool_env(),
                           capture_output=True, text=True, timeout=900)
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, log[-3000:]
    for stage in finished:                                                # partitions finished before the kill
        assert f"Stage '{stage}' didn't change, skipping" in log, stage
    reused = [line for line in log.splitlines() if line.startswith("curate-part: partition 1 of 3")]
    assert reused and f"{done_before} reused" in reused[0], reused        # its finished chunks kept
    assert content_hash(killed / "data" / "corpus") == content_hash(straight / "data" / "corpus")
    for part in ("part-0", "part-1", "part-2"):
        assert content_hash(killed / "data" / "corpus_parts" / part) == \
            content_hash(straight / "data" / "corpus_parts" / part)
    assert json.loads(subprocess.run([sys.executable, "-m", "dvc", "status", "--json", "curate"], cwd=killed,
                                     env=tool_env(), capture_output=True, text=True).stdout or "{}") == {}
