"""Provenance records: keyed by DVC's md5, kept beside the artifact in one log, never inside it."""

import json
import subprocess
import sys

from paco_fr.lineage import content_hash, find_record, iter_records, read_provenance, record_provenance


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
    # A second run of the same version: a second line, the same key; the identity is the first.
    again = record_provenance(out, "curate", inputs={"raw": raw}, params={"crop_size": 112})
    assert again["key"] == rec["key"] and again["run"]["run_id"] != rec["run"]["run_id"]
    assert find_record(rec["artifact"], rec["key"])["run"]["run_id"] == rec["run"]["run_id"]
    assert read_provenance(out)["run"]["run_id"] == again["run"]["run_id"]
    lines = [json.loads(line) for line in _isolated_lineage_log.read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["raw", "curate", "curate"]
    # a torn last line (a writer killed mid-append) is skipped, not fatal
    with open(_isolated_lineage_log, "a") as handle:
        handle.write('{"key": "tor')
    assert len(list(iter_records(_isolated_lineage_log))) == 3
    record_provenance(out, "curate", inputs={"raw": raw}, params={})
    assert len(list(iter_records(_isolated_lineage_log))) == 4
