"""The folder source: deterministic discovery of every path under a root, each one accounted for.

Discovery walks the folder recursively and returns one :class:`SourceItem` per *input*: an image
file (with the annotation sidecars found beside it), or a path that is already known to be
unusable (with its reason). Together with the sidecars attached to images, the items cover every
path under the root, so that curation can prove that nothing was skipped silently.

Rules (docs/curation.md repeats them for users):

- Image extensions, case-insensitive: .jpg .jpeg .png .webp .bmp .tif .tiff .gif.
- Sidecars are annotations of the image with the same stem in the same directory:
  ``{stem}.gt.json`` (generator ground truth), ``{stem}.pts`` (iBUG 68 points), ``{stem}.labels.png``
  (region label map). A sidecar is attached to every image of that stem (``x.jpg`` and ``x.png``
  both get ``x.pts``); one with no image is rejected as ``orphan_sidecar``.
- Symbolic links to regular files are followed wherever they point (datasets are often assembled
  from links), and read under the link's own path; an exact duplicate of a file that is also in
  the tree is then rejected as ``duplicate``. Links to directories are *not* followed
  (``directory_link``), so that links can never make the walk loop; dangling links are
  ``broken_link``, self-referencing chains ``link_loop``.
- Directories are descended into. A directory whose name looks like an image (``x.jpg/``) is also
  recorded itself as ``not_a_file``, because a user listing the folder would take it for one.
- FIFOs, sockets and devices are ``not_a_file`` and never opened (opening a FIFO blocks).
- Everything else (``.txt``, ``.json``, ``.DS_Store`` ...) is ``unsupported_format``.
- Items are sorted by their relative POSIX path; this order decides which of two duplicates is
  kept (the first).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from paco_fr.data.reasons import Reason

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# kind -> file-name suffix (matched case-insensitively); order = precedence when reading ground truth.
SIDECAR_SUFFIXES: dict[str, str] = {"gt": ".gt.json", "pts": ".pts", "labels": ".labels.png"}


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One input: an image with its sidecars, or a path rejected at discovery."""

    # Plain strings, not pathlib objects: a folder of millions of images is held as millions of
    # items (a Path keeps its parsed parts: ~4x the memory of the string).
    rel_path: str                                # POSIX path relative to the root (display form)
    path: str                                    # the path to open
    size: int = 0                                # bytes (of the link target for links); 0 when rejected
    mtime_ns: int = 0
    sidecars: dict[str, str] = field(default_factory=dict)  # kind ("gt", "pts", "labels") -> path
    sidecar_rel_paths: tuple[str, ...] = ()
    rejection: tuple[Reason, str] | None = None  # set when discovery already rejects the path

    @property
    def is_image(self) -> bool:
        return self.rejection is None


def image_suffix(name: str) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix in IMAGE_EXTENSIONS else None


def sidecar_kind(name: str) -> tuple[str, str] | None:
    """(kind, stem) when `name` is named like a sidecar, else None."""
    lower = name.lower()
    for kind, suffix in SIDECAR_SUFFIXES.items():
        if lower.endswith(suffix) and len(name) > len(suffix):
            return kind, name[: -len(suffix)]
    return None


def display_path(rel: str) -> str:
    """A file name that is not valid UTF-8 is shown with backslash escapes (parquet stores UTF-8)."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


@dataclass(slots=True)
class _Entry:
    name: str
    path: str
    rel: str
    size: int
    mtime_ns: int


def discover(root: str | os.PathLike[str]) -> list[SourceItem]:
    """Every input under `root`, sorted by relative path. Raises for a missing or unreadable root."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"source folder does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"source is not a folder: {root}")
    try:
        os.scandir(root).close()
    except OSError as exc:
        raise PermissionError(f"source folder cannot be read: {root} ({exc.strerror or exc})") from exc
    items: list[SourceItem] = []
    _walk_dir(str(root), "", items, is_root=True)
    items.sort(key=lambda item: item.rel_path)
    return items


def _walk_dir(directory: str, rel_dir: str, items: list[SourceItem], *, is_root: bool = False) -> None:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        if is_root:
            raise
        items.append(_rejected(rel_dir, directory, Reason.UNREADABLE,
                               f"directory cannot be listed: {exc.strerror or exc}"))
        return

    files: list[_Entry] = []
    for i, entry in enumerate(entries):
        entries[i] = None  # type: ignore[call-overload]  # its cached stat goes now, not after the folder
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        path = entry.path
        try:
            if entry.is_symlink():
                verdict = _classify_link(path)
                if isinstance(verdict, os.stat_result):  # (a stat_result is a tuple too)
                    files.append(_Entry(entry.name, path, rel, verdict.st_size, verdict.st_mtime_ns))
                else:
                    items.append(_rejected(rel, path, *verdict))
                continue
            if entry.is_dir(follow_symlinks=False):
                if image_suffix(entry.name) or sidecar_kind(entry.name):
                    items.append(_rejected(rel, path, Reason.NOT_A_FILE,
                                           "a directory named like an image; its contents are curated as usual"))
                _walk_dir(path, rel, items)
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            items.append(_rejected(rel, path, Reason.UNREADABLE, f"cannot stat: {exc.strerror or exc}"))
            continue
        if stat.S_ISREG(st.st_mode):
            files.append(_Entry(entry.name, path, rel, st.st_size, st.st_mtime_ns))
        else:
            items.append(_rejected(rel, path, Reason.NOT_A_FILE, _file_type_name(st.st_mode)))
    _pair_files(files, items)


def _classify_link(path: str) -> os.stat_result | tuple[Reason, str]:
    """The link target's stat when it is a regular file, else (reason, detail)."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        st = os.stat(path)  # follows the whole chain
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Reason.LINK_LOOP, f"symbolic link loop (-> {target})"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return Reason.BROKEN_LINK, f"dangling symbolic link (-> {target})"
        return Reason.UNREADABLE, f"symbolic link target cannot be read (-> {target}): {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return Reason.DIRECTORY_LINK, f"symbolic link to a directory (-> {target}); not followed"
    if not stat.S_ISREG(st.st_mode):
        return Reason.NOT_A_FILE, f"symbolic link to a {_file_type_name(st.st_mode)} (-> {target})"
    return st


def _pair_files(files: list[_Entry], items: list[SourceItem]) -> None:
    """Split one directory's regular files into images (with their sidecars), orphan sidecars and
    unsupported files."""
    images: list[_Entry] = []
    sidecars: list[tuple[str, str, _Entry]] = []  # (kind, stem, entry)
    for entry in files:
        kind = sidecar_kind(entry.name)
        if kind is not None:
            sidecars.append((*kind, entry))
        elif image_suffix(entry.name):
            images.append(entry)
        else:
            items.append(_rejected(entry.rel, entry.path, Reason.UNSUPPORTED_FORMAT,
                                   f"extension {os.path.splitext(entry.name)[1] or '(none)'!r} is not an image type"))
    by_stem: dict[str, list[_Entry]] = {}
    for entry in images:
        by_stem.setdefault(os.path.splitext(entry.name)[0], []).append(entry)
    attached: dict[str, dict[str, _Entry]] = {}
    for kind, stem, entry in sidecars:
        if stem in by_stem:
            attached.setdefault(stem, {})[kind] = entry
        else:
            items.append(_rejected(entry.rel, entry.path, Reason.ORPHAN_SIDECAR,
                                   f"no image with stem {stem!r} beside this {SIDECAR_SUFFIXES[kind]} file"))
    for stem, group in by_stem.items():
        found = attached.get(stem, {})
        for entry in group:
            items.append(SourceItem(
                rel_path=display_path(entry.rel),
                path=entry.path,
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                sidecars={kind: found[kind].path for kind in SIDECAR_SUFFIXES if kind in found},
                sidecar_rel_paths=tuple(display_path(found[kind].rel) for kind in SIDECAR_SUFFIXES if kind in found),
            ))


def _rejected(rel: str, path: str, reason: Reason, detail: str) -> SourceItem:
    return SourceItem(rel_path=display_path(rel), path=path, rejection=(reason, detail))


def _file_type_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special file"


def fingerprint(items: Iterable[SourceItem], *, threads: int | None = None) -> str:
    """A hash of what discovery saw: relative paths, verdicts and the *content* of each input and its
    sidecars. A chunk or partition may be reused only for the same inputs; content rather than
    modification times, because the markers holding this hash are part of the partition's bytes,
    which must be the same on every machine and after every `dvc checkout`."""
    return fingerprint_records(item_records(list(items), threads=threads))


def fingerprint_records(records: Sequence[bytes]) -> str:
    """`fingerprint` of the items whose `item_records` these are."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(record)
    return digest.hexdigest()


def item_records(items: Sequence[SourceItem], *, threads: int | None = None) -> list[bytes]:
    """What `fingerprint` hashes of each item, read by `threads` threads (default: 2 per core, at most
    32). File reads and md5 release the GIL, so a folder of millions of images is read at the disk's
    pace rather than one core's: the planner reads every byte before any worker starts."""
    threads = threads or min(32, 2 * (os.cpu_count() or 1))
    if threads == 1 or len(items) < 64:  # not worth the threads
        return [_item_record(item) for item in items]
    records: list[bytes] = []
    with ThreadPoolExecutor(threads, thread_name_prefix="fingerprint") as pool:
        for start in range(0, len(items), _READ_BATCH):  # batches: one future per file of millions would not fit
            records += pool.map(_item_record, items[start:start + _READ_BATCH])
    return records


_READ_BATCH = 4096


def _item_record(item: SourceItem) -> bytes:
    reason = item.rejection[0].value if item.rejection else ""
    try:
        content = _content_md5(item.path, item.size, item.mtime_ns) if item.is_image else ""
    except OSError as exc:  # curation will reject it with the reason; the fingerprint notes it
        content = f"unreadable:{exc.errno}"
    parts = [f"{item.rel_path}\0{item.size}\0{content}\0{reason}\0".encode("utf-8", "backslashreplace")]
    for kind, path in sorted(item.sidecars.items()):
        try:
            st = os.stat(path)
            parts.append(f"{kind}\0{_content_md5(path, st.st_size, st.st_mtime_ns)}\0".encode())
        except OSError:
            parts.append(f"{kind}\0missing\0".encode())
    return b"".join(parts)


@functools.lru_cache(maxsize=1 << 16)
def _content_md5(path: str, size: int, mtime_ns: int) -> str:
    """md5 of a file's bytes (cached per path, size and mtime: on a small folder the merge asks again;
    bounded, so that the parent's memory does not grow with millions of files)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()