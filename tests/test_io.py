import os

import pytest

from paco_fr.io import atomic_dir, atomic_path, write_json_atomic, read_json


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_the_old_file_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError
    assert read_json(target) == {"v": 1}


def test_artifacts_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {})
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_atomic_dir_swaps_a_whole_folder(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as d:
        (d / "v1").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "v2").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["v1"]
    with atomic_dir(target) as d:
        (d / "v2").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["v2"]
