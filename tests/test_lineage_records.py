import json

from paco_fr.lineage import content_hash, read_provenance, record_provenance


def test_directory_hash_depends_on_content_not_on_provenance_or_temp_files(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    (art / "a.txt").write_text("alpha")
    (art / "sub").mkdir()
    (art / "sub" / "b.bin").write_bytes(b"\x00\x01")
    first = content_hash(art)
    assert first.endswith(".dir")
    (art / ".a.txt.123.tmp").write_text("partial")
    (art / "provenance.json").write_text("{}")
    assert content_hash(art) == first
    (art / "a.txt").write_text("alpha!")
    assert content_hash(art) != first


def test_record_provenance_links_inputs_and_appends_to_the_log(tmp_path, _isolated_lineage_log):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "x.png").write_bytes(b"img")
    up = record_provenance(raw, "raw", inputs={}, params={})
    out = tmp_path / "corpus"
    out.mkdir()
    import pandas as pd

    pd.DataFrame({"face_id": ["f1"], "source_path": ["raw/x.png"], "source_sha256": ["ab"]}).to_parquet(
        out / "manifest.parquet")
    rec = record_provenance(out, "curate", inputs={"raw": raw}, params={"crop_size": 112}, overrides=["a=1"])
    index = _isolated_lineage_log.parent / "sources" / f"{rec['artifact_hash'].removesuffix('.dir')}.parquet"
    assert pd.read_parquet(index)["source_path"].tolist() == ["raw/x.png"]
    assert rec["inputs"]["raw"]["hash"] == content_hash(raw)
    assert rec["inputs"]["raw"]["provenance_run_id"] == up["run_id"]
    assert read_provenance(out)["run_id"] == rec["run_id"]
    lines = [json.loads(line) for line in _isolated_lineage_log.read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["raw", "curate"]
    assert rec["overrides"] == ["a=1"] and rec["packages"]["torch"]
