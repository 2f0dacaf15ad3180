"""Provenance records: keyed by DVC's md5, kept beside the artifact in one log, never inside it."""

import json
import subprocess
import sys

from paco_fr.lineage import (content_hash, find_record, find_records, iter_records, read_provenance,
                             record_provenance, reruns_log)


def test_directory_hash_is_dvcs_md5(tmp_path):
    """The same value `dvc add` records, hidden files included, sorted by path string (not by parts)."""
    art = tmp_path / "art"
    (art / "shards").mkdir(parents=True)
    (art / "shards" / "x.tar").write_bytes(b"\x00\x01")
    (art / "shards-1.bin").write_text("alpha")   # '-' sorts before '/': string order differs from parts order
    (art / ".hidden").write_text("h")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "art"], cwd=tmp_path, check=True)
    import yaml

    recorded = yaml.safe_load((tmp_path / "art.dvc").read_text())["outs"][0]["md5"]
    assert content_hash(art) == recorded
    (art / "shards-1.bin").write_text("alpha!")
    assert content_hash(art) != recorded


def test_records_are_keyed_by_md5_and_written_outside_the_artifact(tmp_path, _isolated_lineage_log):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "x.png").write_bytes(b"img")
    before = content_hash(raw)
    up = record_provenance(raw, "raw", inputs={}, params={})
    assert content_hash(raw) == before and sorted(p.name for p in raw.iterdir()) == ["x.png"]
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "manifest.parquet").write_bytes(b"rows")
    rec = record_provenance(out, "curate", inputs={"raw": raw}, params={"crop_size": 112}, overrides=["a=1"],
                            extra={"faces": 1})
    assert rec["key"] == content_hash(out) and up["key"] == before
    assert rec["inputs"]["raw"] == {"path": up["artifact"], "md5": before}
    assert rec["overrides"] == ["a=1"] and rec["environment"]["packages"]["torch"]
    assert rec["run"]["faces"] == 1 and rec["run"]["run_id"] and rec["run"]["created_at"]
    # A second run of the same version: the same key, in the re-run log beside the log (which git ignores),
    # so that the log changes only with a new version; the identity is the first run, the newest the second.
    again = record_provenance(out, "curate", inputs={"raw": raw}, params={"crop_size": 112})
    assert again["key"] == rec["key"] and again["run"]["run_id"] != rec["run"]["run_id"]
    assert find_record(rec["artifact"], rec["key"])["run"]["run_id"] == rec["run"]["run_id"]
    assert read_provenance(out)["run"]["run_id"] == again["run"]["run_id"]
    assert read_provenance(out, _isolated_lineage_log)["run"]["run_id"] == again["run"]["run_id"]
    assert [r["run"]["run_id"] for r in find_records(rec["artifact"], rec["key"])] == [rec["run"]["run_id"],
                                                                                     again["run"]["run_id"]]
    lines = [json.loads(line) for line in _isolated_lineage_log.read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["raw", "curate"]
    reruns = reruns_log(_isolated_lineage_log)
    assert reruns.name == "records.reruns.jsonl" and reruns.parent == _isolated_lineage_log.parent
    assert [json.loads(line)["run"]["run_id"] for line in reruns.read_text().splitlines()] == [again["run"]["run_id"]]
    # a new version of the same artifact is a new line of the log itself
    (out / "manifest.parquet").write_bytes(b"other rows")
    newer = record_provenance(out, "curate", inputs={"raw": raw}, params={"crop_size": 112})
    assert [r["key"] for r in iter_records(_isolated_lineage_log)][-1] == newer["key"] != rec["key"]
    # a torn last line (a writer killed mid-append) is skipped, not fatal
    with open(_isolated_lineage_log, "a") as handle:
        handle.write('{"key": "tor')
    assert len(list(iter_records(_isolated_lineage_log))) == 3
    (out / "manifest.parquet").write_bytes(b"third rows")
    record_provenance(out, "curate", inputs={"raw": raw}, params={})
    assert len(list(iter_records(_isolated_lineage_log))) == 4


def test_a_record_says_dirty_only_for_changed_code(tmp_path):
    """The stages of one run append to their tracked logs under lineage/ (and dvc.lock, metrics/): none of
    that is code. A record made after an earlier stage's record must not call the code dirty."""
    from paco_fr.lineage import git_state

    repo = tmp_path / "repo"
    (repo / "lineage" / "evaluate").mkdir(parents=True)
    (repo / "pkg.py").write_text("x = 1\n")
    for log in ("lineage/curate.jsonl", "lineage/evaluate/one.jsonl"):
        (repo / log).write_text("{}\n")
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", *env, "commit", "-q", "-m", "c"], cwd=repo, check=True)
    assert git_state(repo)["dirty"] is False
    for log in ("lineage/curate.jsonl", "lineage/evaluate/one.jsonl"):
        with open(repo / log, "a") as handle:
            handle.write("{}\n")
    assert git_state(repo)["dirty"] is False
    (repo / "pkg.py").write_text("x = 2\n")
    assert git_state(repo)["dirty"] is True
