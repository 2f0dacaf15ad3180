"""content_hash streams DVC's folder md5: the same value `dvc add` records, without holding every entry."""

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml

from paco_fr.lineage import content_hash


def _listed_hash(folder: Path) -> str:
    """The folder md5 as dvc_data's Tree.as_bytes spells it: one sorted list, one JSON text."""
    entries = [{"md5": hashlib.md5(f.read_bytes()).hexdigest(), "relpath": f.relative_to(folder).as_posix()}
               for f in folder.rglob("*") if f.is_file()]
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def _tree(root: Path) -> Path:
    """Names whose path-string order differs from a per-part order: "a-b", "a.b" and "a0" sort around
    the folder "a/" ("-" < "." < "/" < "0"); nesting, hidden files, non-ASCII and quote characters."""
    files = {"a/b/x": "1", "a/b-c/d": "2", "a/b.c": "3", "a/b/c/d/e": "4", "a-b": "5", "a.b": "6", "a0": "7",
             "A": "8", ".hidden": "9", "z/.keep": "", "ünï/çødé é.txt": "10", 'q"uote\\s': "11", "a/b/c/x": "12"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _dvc_add(repo: Path, name: str) -> str:
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", name], cwd=repo, check=True,
                   env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    return yaml.safe_load((repo / f"{name}.dvc").read_text())["outs"][0]["md5"]


def test_streamed_folder_hash_is_what_dvc_add_records(tmp_path):
    art = _tree(tmp_path / "art")
    assert content_hash(art) == _dvc_add(tmp_path, "art") == _listed_hash(art)


def test_file_hash_is_the_files_md5(tmp_path):
    one = tmp_path / "x.bin"
    one.write_bytes(b"\x00" * 3_000_000)
    assert content_hash(one) == hashlib.md5(b"\x00" * 3_000_000).hexdigest()


def test_links_count_as_rglob_saw_them(tmp_path):
    """Links to files are hashed as their target's bytes; links to folders and broken links are not
    entries (what Path.rglob + is_file gave before the streamed form)."""
    art = _tree(tmp_path / "art")
    (art / "link-to-file").symlink_to(art / "a.b")
    (art / "link-to-folder").symlink_to(art / "a", target_is_directory=True)
    (art / "broken").symlink_to(tmp_path / "nowhere")
    assert content_hash(art) == _listed_hash(art)


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    assert content_hash(tmp_path / "empty") == hashlib.md5(b"[]").hexdigest() + ".dir"
    with pytest.raises(FileNotFoundError):
        content_hash(tmp_path / "missing")


def _hash_peak(folder: Path) -> int:
    tracemalloc.start()
    try:
        content_hash(folder)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_per_file_stays_at_one_name(tmp_path):
    """Only the names of the folder being walked are held (~125 bytes a file here, with the list and
    its sort), not an entry dict, a Path and a JSON line per file (~980 bytes a file before)."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(20_000):
        (flat / f"face-{i:06d}.png").touch()
    assert _hash_peak(flat) < 20_000 * 250
