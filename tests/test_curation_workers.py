"""Curation on several worker processes and partitions: the same corpus whatever N and M, a killed
CLI that resumes only its unfinished chunks, and an input that kills its worker."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from curation_testdata import encode, photo
from paco_fr.config import apply_overrides
from paco_fr.data.builtin import write_builtin_raw
from paco_fr.data.config import BuiltinSourceConfig, CurationConfig
from paco_fr.data.curate import WORK_DIR, curate
from paco_fr.data.process import FAULT_KILL_ENV, FAULT_ONCE_ENV

SETTINGS = ["shard_size=8", "chunk_inputs=4"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Procedural faces (ground truth) plus real photos (MediaPipe) and an exact duplicate."""
    folder = tmp_path_factory.mktemp("workers") / "raw"
    write_builtin_raw(BuiltinSourceConfig(photos=True, n_synthetic=40, n_identities=12), folder, progress=False)
    (folder / "photos" / "astronaut_again.png").write_bytes((folder / "photos" / "astronaut.png").read_bytes())
    return folder


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "provenance.json"}


def _cfg(partitions: int) -> CurationConfig:
    return apply_overrides(CurationConfig(), [*SETTINGS, f"partitions={partitions}"])


@pytest.fixture(scope="module")
def reference(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "corpus"
    curate(_cfg(2), raw, out, workers=2, progress=False)
    return out


def _cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    quiet = ["--no-progress"] + (["--no-progress-json"] if args[0] != "curate-merge" else [])
    return subprocess.Popen([sys.executable, "-m", "paco_fr.cli", *args, *quiet,
                             *(x for s in SETTINGS for x in ("--set", f"curation.{s}"))],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("workers, partitions", [(1, 1), (3, 3), (2, 5)])
def test_corpus_is_identical_for_any_workers_and_partitions(raw, reference, tmp_path, workers, partitions):
    out = tmp_path / "corpus"
    result = curate(_cfg(partitions), raw, out, workers=workers, progress=False)
    assert tree(out) == tree(reference)
    assert result.summary["run"]["workers"] == workers
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert manifest["shard"].is_monotonic_increasing, "the manifest lists faces in shard order"
    # a seeded global order: consecutive faces are not in path order
    assert list(manifest["source_path"]) != sorted(manifest["source_path"])


@pytest.mark.slow
def test_partitions_merge_into_the_corpus_of_one_run(raw, reference, tmp_path):
    """What DVC's foreach and Dagster's partitions run: curate-part for each slice, then curate-merge."""
    parts = [tmp_path / f"part-{i}" for i in range(2)]
    for i, part in enumerate(parts):
        proc = _cli("curate-part", "--source", str(raw), "--part", str(i), "--out", str(part), "--workers", "1")
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        assert "curate-part: partition" in proc.stderr.read()
        assert (part / "part.json").is_file()
    merge = _cli("curate-merge", "--source", str(raw), "--parts", *map(str, reversed(parts)), "--out",
                 str(tmp_path / "corpus"))
    assert merge.wait(timeout=300) == 0, merge.stderr.read()
    assert tree(tmp_path / "corpus") == tree(reference)
    rejected = pd.read_parquet(tmp_path / "corpus" / "rejected.parquet").set_index("source_path")
    assert rejected.loc["photos/astronaut_again.png", "reason"] == "duplicate", "duplicates across partitions"
    # a partition missing, or one from another partitioning, is refused with a clear error
    lone = _cli("curate-merge", "--source", str(raw), "--parts", str(parts[0]), "--out", str(tmp_path / "c2"))
    assert lone.wait(timeout=300) == 1 and "missing partition" in lone.stderr.read()


def _kill_after_chunks(proc: subprocess.Popen, chunk_dir_glob: Path, n: int) -> None:
    deadline = time.monotonic() + 180
    while len(list(chunk_dir_glob.parent.glob(chunk_dir_glob.name))) < n:
        if proc.poll() is not None:
            pytest.fail(f"finished before it could be killed: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("no progress in 180 s")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def test_pool_reports_once_when_its_last_chunk_is_handed_out(raw, tmp_path):
    """`curate` imports Great Expectations for the merge once the last chunk is handed out, so that the
    import shares the cores with the last chunks instead of holding the GIL against the merge: the hook
    fires once, after every chunk but those the two workers hold was published."""
    from paco_fr.data.partition import curate_partitions
    from paco_fr.data.sources import discover

    part_dir = tmp_path / "part"
    published_when_drained = []
    curate_partitions(_cfg(1), {0: part_dir}, discover(raw), workers=2, resume=False, progress=False,
                      progress_json=False,
                      on_drained=lambda: published_when_drained.append(len(list(part_dir.glob("chunks/chunk-*.json")))))
    n_chunks = len(list(part_dir.glob("chunks/chunk-*.json")))
    assert n_chunks > 3
    assert len(published_when_drained) == 1
    # an empty queue, two workers: each holds at most one chunk
    assert n_chunks - 2 <= published_when_drained[0] < n_chunks


def test_a_partition_is_finalised_while_later_partitions_run(raw, tmp_path):
    """A partition's tables and marker are written as soon as its last chunk is published, not after every
    partition: with one worker, partition 0 is complete when the last chunk (partition 1's) is handed out,
    and its marker appears while that chunk is still being curated."""
    from paco_fr.data.partition import PART_MARKER, curate_partitions
    from paco_fr.data.sources import discover

    dirs = {0: tmp_path / "p0", 1: tmp_path / "p1"}
    seen = []

    def drained():
        deadline = time.monotonic() + 30
        while not (dirs[0] / PART_MARKER).is_file() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(((dirs[0] / PART_MARKER).is_file(), (dirs[1] / PART_MARKER).is_file()))

    results = curate_partitions(_cfg(2), dirs, discover(raw), workers=1, resume=False, progress=False,
                                progress_json=False, on_drained=drained)
    assert seen == [(True, False)]
    assert all((d / PART_MARKER).is_file() for d in dirs.values())
    assert sum(r.inputs for r in results) == len(discover(raw))


def test_chunks_written_by_other_curation_code_are_not_reused(raw, tmp_path, monkeypatch):
    """DVC re-runs a partition when paco_fr/data changes; the partition must then redo its chunks, not
    resume from those the old code wrote (they would carry the old code's bytes into the corpus)."""
    from paco_fr.data import chunks
    from paco_fr.data.partition import curate_partitions
    from paco_fr.data.sources import discover

    part_dir, items = tmp_path / "part", discover(raw)

    def run():
        return curate_partitions(_cfg(1), {0: part_dir}, items, workers=1, resume=True, progress=False,
                                 progress_json=False)[0]

    first = run()
    assert run().reused_whole, "the same code: the finished partition is reused"
    monkeypatch.setattr(chunks, "code_hash", lambda: "other code")
    again = run()
    assert not again.reused_whole and again.chunks_reused == [] and len(again.chunks_done) == first.chunks


@pytest.mark.slow
def test_sigkilled_cli_redoes_only_unfinished_chunks(raw, reference, tmp_path):
    out = tmp_path / "corpus"
    proc = _cli("curate", "--source", str(raw), "--out", str(out), "--workers", "2")
    _kill_after_chunks(proc, out / WORK_DIR / "part-0000-of-0002" / "chunks" / "chunk-*.json", 3)
    assert not (out / "manifest.parquet").exists(), "killed before the end: no final outputs yet"
    done_before = {p.relative_to(out) for p in (out / WORK_DIR).rglob("chunk-*.json")}
    assert len(done_before) >= 3
    again = _cli("curate", "--source", str(raw), "--out", str(out), "--workers", "2")
    assert again.wait(timeout=300) == 0
    err = again.stderr.read()
    reused = int(err.split("curate: resumed: ")[1].split()[0])
    assert reused >= len(done_before) - 2, err  # at most the chunks being published when killed
    assert tree(out) == tree(reference), "a resumed run gives the corpus of an uninterrupted one"
    assert not (out / WORK_DIR).exists()


@pytest.mark.slow
def test_sigkilled_partition_reports_which_chunks_it_redid(raw, tmp_path):
    part = tmp_path / "part"
    reference = tmp_path / "reference"
    whole = _cli("curate-part", "--source", str(raw), "--part", "1", "--out", str(reference), "--workers", "2")
    assert whole.wait(timeout=300) == 0
    proc = _cli("curate-part", "--source", str(raw), "--part", "1", "--out", str(part), "--workers", "2")
    _kill_after_chunks(proc, part / "chunks" / "chunk-*.json", 2)
    finished = sorted(int(p.name[6:12]) for p in (part / "chunks").glob("chunk-*.json"))
    again = _cli("curate-part", "--source", str(raw), "--part", "1", "--out", str(part), "--workers", "2")
    assert again.wait(timeout=300) == 0
    line = next(x for x in again.stderr.read().splitlines() if "chunks:" in x)
    redone = [int(x) for x in line.split("curated [")[1].rstrip("]").split(", ")]
    n_chunks = int(line.split("chunks: ")[1].split()[0]) + len(redone)
    assert sorted(set(range(n_chunks)) - set(redone)) == finished, line
    assert tree(part) == tree(reference)


@pytest.mark.slow
def test_an_input_that_kills_its_worker_is_retried_then_rejected(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(encode(photo("astronaut")))
    (src / "poison.png").write_bytes(encode(photo("camera")))
    (src / "transient.png").write_bytes(encode(photo("grace_hopper")))
    once = tmp_path / "killed-once"
    out = tmp_path / "corpus"
    proc = _cli("curate", "--source", str(src), "--out", str(out), "--workers", "2",
                env={FAULT_KILL_ENV: "poison.png"})
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert "poison.png: rejected as worker_crash" in proc.stderr.read()
    rejected = pd.read_parquet(out / "rejected.parquet").set_index("source_path")
    assert rejected.loc["poison.png", "reason"] == "worker_crash"
    assert "died twice" in rejected.loc["poison.png", "detail"]
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert set(manifest["source_path"]) == {"a.png", "transient.png"}
    # a worker killed once on an input (an OOM kill, say) costs a retry, not the input
    proc = _cli("curate", "--source", str(src), "--out", str(tmp_path / "again"), "--workers", "1",
                env={FAULT_KILL_ENV: "transient.png", FAULT_ONCE_ENV: str(once)})
    assert proc.wait(timeout=300) == 0
    assert once.exists() and "curation worker died" in proc.stderr.read()
    assert "transient.png" in set(pd.read_parquet(tmp_path / "again" / "manifest.parquet")["source_path"])
