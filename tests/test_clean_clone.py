"""The README's first command in a fresh clone of a repository whose pipeline is committed: `paco-fr run`
rebuilds every committed version and leaves the clone as git found it. Run facts (run id, time, host)
of a version the tracked lineage log already records go to the re-run log beside it, which git ignores
and the readers of lineage (audit, Dagster's recording) read too."""

from __future__ import annotations

import json

import pytest
import yaml

from paco_fr.lineage import find_records, iter_records
from paco_fr.pipeline import lock_stages
from tiny_repo import git, paco_fr

pytestmark = pytest.mark.slow


def _data_outs(repo) -> dict[str, str]:
    return {o["path"]: o["md5"] for entry in lock_stages(repo).values() for o in entry["outs"]
            if o["path"].startswith("data/")}


def test_a_fresh_clone_rebuilds_the_committed_versions_and_changes_no_tracked_file(built_repo, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(built_repo), str(clone))
    committed = _data_outs(clone)
    assert committed and not (clone / "data" / "corpus").exists()  # the data did not come with the clone

    out = paco_fr(clone, "run").stdout
    assert "ran nothing" not in out, out[-2000:]
    assert git(clone, "status", "--porcelain") == "", "the rebuild changed tracked files"
    assert _data_outs(clone) == committed
    # Every rebuilt version has both runs on record: the committed one first (its identity), this one last.
    reruns = sorted(p.relative_to(clone).as_posix() for p in (clone / "lineage").rglob("*.reruns.jsonl"))
    assert "lineage/curate.reruns.jsonl" in reruns and any(p.startswith("lineage/pretrain/") for p in reruns)
    for artifact in ("data/corpus", "data/regions"):
        runs = find_records(artifact, committed[artifact], root=clone)
        assert len(runs) == 2, (artifact, runs)
        first, here = runs
        assert first["run"]["created_at"] < here["run"]["created_at"]
        assert git(clone, "log", "-1", "--format=%H").strip() == here["code"]["commit"]
        assert here["code"]["dirty"] is False  # the logs earlier stages appended to are not code
    raw_md5 = yaml.safe_load((clone / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
    assert [r for r in iter_records(root=clone) if r["artifact"] == "data/raw" and r["key"] == raw_md5]
    # each re-run log holds this clone's one run of its stage, a version its tracked log already records
    for path in reruns:
        lines = [json.loads(line) for line in (clone / path).read_text().splitlines()]
        tracked = [json.loads(line) for line in (clone / path.replace(".reruns.jsonl", ".jsonl")).read_text().splitlines()]
        assert len(lines) == 1, path
        assert (lines[0]["artifact"], lines[0]["key"]) in {(r["artifact"], r["key"]) for r in tracked}, path
