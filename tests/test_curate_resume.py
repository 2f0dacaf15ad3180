"""A resumed curation reuses exactly the complete chunks whose inputs and settings are unchanged and
never trusts a partial, unmarked or damaged one; the result is the bytes of an uninterrupted run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from paco_fr.config import apply_overrides
from paco_fr.data.builtin import write_builtin_raw
from paco_fr.data.config import BuiltinSourceConfig, CurationConfig
from paco_fr.data.partition import curate_partition

SETTINGS = ["chunk_inputs=4", "partitions=1"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume") / "raw"
    return write_builtin_raw(BuiltinSourceConfig(photos=False, n_synthetic=24, n_identities=8), folder, progress=False)


def _cfg(*extra: str) -> CurationConfig:
    return apply_overrides(CurationConfig(), [*SETTINGS, *extra])


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "part"
    curate_partition(_cfg(), raw, 0, out, workers=1, progress=False, progress_json=False)
    return out


def test_a_finished_partition_is_reused_whole(raw, reference):
    before = tree(reference)
    result = curate_partition(_cfg(), raw, 0, reference, workers=1, progress=False, progress_json=False)
    assert result.reused_whole and result.chunks_done == [] and tree(reference) == before


def test_resume_never_trusts_partial_unmarked_or_damaged_chunks(raw, reference, tmp_path):
    out = tmp_path / "part"
    out.mkdir()
    for path in reference.rglob("*"):
        if path.is_file() and path.name != "part.json":
            target = out / path.relative_to(reference)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    chunks = out / "chunks"
    (chunks / "chunk-000001.json").unlink()                               # killed before its marker
    damaged = chunks / "chunk-000003.tar"
    damaged.write_bytes(damaged.read_bytes()[:1000])                      # damaged after its marker
    (chunks / ".chunk-000004.tar.abc.tmp").write_bytes(b"partial")         # a killed writer's temporary
    (chunks / "chunk-000005.faces.parquet").write_bytes(b"not parquet")    # a marker whose table rotted
    (chunks / "chunk-000005.json").write_text('{"fingerprint": "something else", "tar_bytes": 0}')
    result = curate_partition(_cfg(), raw, 0, out, workers=2, progress=False, progress_json=False)
    assert result.chunks_done == [1, 3, 5]
    assert tree(out) == tree(reference)


@pytest.mark.slow
def test_changed_settings_redo_the_chunks_but_merge_only_settings_do_not(raw, reference, tmp_path):
    out = tmp_path / "part"
    curate_partition(_cfg(), raw, 0, out, workers=1, progress=False, progress_json=False)
    merge_only = curate_partition(_cfg("split.val_faces=3", "near_duplicate.face_bits=10", "shard_size=5"),
                                  raw, 0, out, workers=1, progress=False, progress_json=False)
    assert merge_only.reused_whole, "settings the merge alone uses never re-curate a partition"
    changed = curate_partition(_cfg("crop_size=96"), raw, 0, out, workers=1, progress=False, progress_json=False)
    assert changed.chunks_reused == [] and len(changed.chunks_done) == changed.chunks
