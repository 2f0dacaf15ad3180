"""Tar shards of aligned faces, written so that a partial shard can never be taken for a finished one.

A shard is written under a hidden temporary name (``.shard-000000.tar.partial``), flushed to disk,
and renamed to ``shard-000000.tar`` only when complete. Members are byte-for-byte reproducible:
mtime 0, uid/gid 0, no user names, mode 0644, ustar format, and the members of one face (one
*sample*, WebDataset-style: same key, different extensions) written together in sorted name order.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Iterator, Mapping

SHARD_PATTERN = "shard-{index:06d}.tar"
PARTIAL_SUFFIX = ".partial"
WRITE_BUFFER = 4 << 20


def shard_name(index: int) -> str:
    return SHARD_PATTERN.format(index=index)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class ShardWriter:
    """Writes samples into ``shard_dir/shard-NNNNNN.tar``, one shard at a time.

    The caller decides when a shard is complete (:meth:`finish`), so that all faces of one image
    land in the same shard and a shard boundary is always an input boundary (what resume needs).
    """

    def __init__(self, shard_dir: str | os.PathLike[str], start_index: int = 0) -> None:
        self.shard_dir = Path(shard_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.index = start_index
        self.samples = 0
        self._tar: tarfile.TarFile | None = None
        self._file: io.BufferedWriter | None = None

    @property
    def name(self) -> str:
        """File name of the shard being written (or to be written next)."""
        return shard_name(self.index)

    @property
    def partial_path(self) -> Path:
        return self.shard_dir / f".{self.name}{PARTIAL_SUFFIX}"

    def add(self, key: str, members: Mapping[str, bytes]) -> str:
        """Add one sample: ``members`` maps an extension (``"png"``, ``"json"``, ``"labels.png"``)
        to bytes, stored as ``{key}.{ext}``. Returns the shard's file name."""
        if self._tar is None:
            # tarfile writes each header, body and padding separately: a large buffer turns
            # thousands of small writes per shard into a few big ones.
            self._file = open(self.partial_path, "wb", buffering=WRITE_BUFFER)
            self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        for ext in sorted(members):
            data = members[ext]
            self._tar.addfile(_tar_info(f"{key}.{ext}", len(data)), io.BytesIO(data))
        self.samples += 1
        return self.name

    def finish(self) -> Path | None:
        """Complete the current shard (rename into place). Returns its path, or None if empty."""
        if self._tar is None:
            return None
        assert self._file is not None
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.shard_dir / self.name
        os.replace(self.partial_path, final)
        self._tar = self._file = None
        self.samples = 0
        self.index += 1
        return final

    def abort(self) -> None:
        """Drop the shard being written (its partial file is removed)."""
        if self._tar is not None:
            try:
                self._tar.close()
            finally:
                assert self._file is not None
                self._file.close()
        self._tar = self._file = None
        self.partial_path.unlink(missing_ok=True)
        self.samples = 0


def remove_partials(shard_dir: str | os.PathLike[str]) -> int:
    """Delete temporary shard files left by a killed run; returns how many."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        return 0
    removed = 0
    for path in shard_dir.glob(f".shard-*.tar{PARTIAL_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def iter_samples(shard_path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) for each sample of a shard, in stored order, streaming."""
    key: str | None = None
    sample: dict[str, bytes] = {}
    with tarfile.open(shard_path, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            member_key, _, ext = name.partition(".")
            handle = tar.extractfile(member)
            assert handle is not None
            data = handle.read()
            if key is not None and member_key != key:
                yield key, sample
                sample = {}
            key = member_key
            sample[ext] = data
    if key is not None:
        yield key, sample


def read_sample(shard_path: str | os.PathLike[str], key: str) -> dict[str, bytes]:
    """All members of one sample (a linear scan of the shard)."""
    out = {}
    with tarfile.open(shard_path, mode="r:") as tar:
        for member in tar:
            member_key, _, ext = member.name.partition(".")
            if member_key == key and member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[ext] = handle.read()
    if not out:
        raise KeyError(f"no sample {key!r} in {shard_path}")
    return out
