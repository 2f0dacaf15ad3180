"""Folder discovery: sorted, recursive, sidecars attached, and every odd path accounted for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from paco_fr.data.reasons import Reason
from paco_fr.data.sources import _content_md5, discover, fingerprint, item_records, sidecar_kind


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def verdicts(root: Path) -> dict[str, str]:
    return {item.rel_path: ("image" if item.is_image else item.rejection[0].value) for item in discover(root)}


def test_images_of_every_extension_are_found_recursively_and_sorted(tmp_path):
    names = ["b.JPG", "a.jpeg", "c.png", "d.webp", "e.bmp", "f.tif", "g.TIFF", "h.gif", "sub/deeper/z.png",
             "sub/a.png", "A.png"]
    for name in names:
        touch(tmp_path / name)
    items = discover(tmp_path)
    assert [i.rel_path for i in items] == sorted(names)
    assert all(i.is_image and i.size == 1 for i in items)


def test_sidecars_attach_to_their_image_and_orphans_are_rejected(tmp_path):
    touch(tmp_path / "face.png")
    touch(tmp_path / "face.gt.json")
    touch(tmp_path / "face.pts")
    touch(tmp_path / "face.labels.png")
    touch(tmp_path / "twin.jpg")
    touch(tmp_path / "twin.png")
    touch(tmp_path / "twin.pts")
    touch(tmp_path / "lonely.pts")
    touch(tmp_path / "lonely.labels.png")
    touch(tmp_path / "sub" / "face.gt.json")  # a sidecar in another directory is not the image's
    items = {i.rel_path: i for i in discover(tmp_path)}
    face = items["face.png"]
    assert set(face.sidecars) == {"gt", "pts", "labels"}
    assert face.sidecar_rel_paths == ("face.gt.json", "face.pts", "face.labels.png")
    assert items["twin.jpg"].sidecar_rel_paths == items["twin.png"].sidecar_rel_paths == ("twin.pts",)
    for orphan in ("lonely.pts", "lonely.labels.png", "sub/face.gt.json"):
        assert items[orphan].rejection[0] is Reason.ORPHAN_SIDECAR
    assert "face.gt.json" not in items and "face.labels.png" not in items


def test_odd_paths_are_rejected_with_reasons(tmp_path):
    root = tmp_path / "root"
    touch(root / "ok.png")
    touch(root / "notes.txt")
    touch(root / "Makefile")
    touch(root / "dir.jpg" / "inside.png")
    (root / "empty_dir").mkdir()
    os.symlink(root / "ok.png", root / "link_in.png")
    touch(tmp_path / "elsewhere" / "out.png")
    os.symlink(tmp_path / "elsewhere" / "out.png", root / "link_out.png")
    os.symlink(tmp_path / "elsewhere", root / "link_dir")
    os.symlink(root / "nothing.png", root / "dangling.png")
    os.symlink("self.png", root / "self.png")
    os.mkfifo(root / "fifo.png")
    assert verdicts(root) == {
        "Makefile": "unsupported_format",
        "dangling.png": "broken_link",
        "dir.jpg": "not_a_file",
        "dir.jpg/inside.png": "image",
        "fifo.png": "not_a_file",
        "link_dir": "directory_link",
        "link_in.png": "image",
        "link_out.png": "image",
        "notes.txt": "unsupported_format",
        "ok.png": "image",
        "self.png": "link_loop",
    }


def test_unreadable_directory_is_rejected(tmp_path):
    # Root reads every directory whatever its mode, so as root the discovery runs in a child process
    # that has dropped to `nobody`, on a folder that user can reach.
    if os.geteuid() == 0:
        root = Path(tempfile.mkdtemp(prefix="paco-unreadable-"))
        os.chmod(root, 0o755)
    else:
        root = tmp_path
    touch(root / "locked" / "a.png")
    touch(root / "open.png")
    os.chmod(root / "open.png", 0o644)
    os.chmod(root / "locked", 0)
    try:
        if os.geteuid() == 0:
            # Modules load as root (the interpreter may live in /root); then the child drops privileges.
            code = ("import json, os, sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
                    "from test_sources import verdicts; os.setgroups([]); os.setgid(65534); os.setuid(65534); "
                    "print(json.dumps(verdicts(Path(sys.argv[1]))))")
            out = subprocess.run([sys.executable, "-c", code, str(root), str(Path(__file__).parent)],
                                 check=True, capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
            found = json.loads(out.stdout)
        else:
            found = verdicts(root)
        assert found == {"locked": "unreadable", "open.png": "image"}
    finally:
        os.chmod(root / "locked", 0o755)
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)


def test_missing_or_non_folder_sources_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover(tmp_path / "nope")
    touch(tmp_path / "file.png")
    with pytest.raises(NotADirectoryError):
        discover(tmp_path / "file.png")


def test_fingerprint_changes_with_content_not_with_time_of_listing(tmp_path):
    touch(tmp_path / "a.png")
    touch(tmp_path / "a.gt.json", b"{}")
    first = fingerprint(discover(tmp_path))
    assert fingerprint(discover(tmp_path)) == first
    touch(tmp_path / "a.gt.json", b'{"k": 1}')  # a sidecar changed
    assert fingerprint(discover(tmp_path)) != first


def test_fingerprint_read_by_many_threads_equals_one_reader(tmp_path):
    """The planner reads a large folder with a thread pool; the hash must not depend on it (it is
    part of the partition's bytes), including unreadable files and missing sidecars."""
    for i in range(150):
        touch(tmp_path / f"d{i % 7}" / f"f{i:03d}.png", bytes([i]) * (i + 1))
        if i % 3 == 0:
            touch(tmp_path / f"d{i % 7}" / f"f{i:03d}.gt.json", b"{}" + bytes([i]))
    (tmp_path / "d0" / "f000.png").chmod(0)  # unreadable (root reads it anyway: still one code path)
    items = discover(tmp_path)
    (tmp_path / "d3" / "f003.gt.json").unlink()  # a sidecar gone between discovery and the hash
    assert len(items) > 64  # enough for the thread pool
    many = fingerprint(items, threads=8)
    _content_md5.cache_clear()  # the one reader reads the files again
    assert fingerprint(items, threads=1) == many
    assert item_records(items, threads=8) == item_records(items, threads=1)


def test_sidecar_names():
    assert sidecar_kind("x.gt.json") == ("gt", "x")
    assert sidecar_kind("x.GT.JSON") == ("gt", "x")
    assert sidecar_kind("a.b.labels.png") == ("labels", "a.b")
    assert sidecar_kind(".pts") is None
    assert sidecar_kind("x.json") is None
