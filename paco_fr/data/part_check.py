"""The merge's check that the partitions it is given belong together and are not stale.

    check_parts(cfg, root, part_dirs, items=None)

A partition is stale when the source's files of its slice changed since it was curated: its marker's
`inputs_fingerprint` must equal `fingerprint(partition_items(discover(root), part, n))`. A list of
every SourceItem costs ~2 KB per input (paths, sidecar dict, stat facts): 4 GB for 2 million
inputs, the largest thing the merge held. So without `items`, discovery's own walk feeds a sink
that keeps only each input's fingerprint record (~150 bytes of bytes) in its partition's list;
sorting those records sorts by relative path (a record starts ``rel_path\\0``, and NUL sorts before
every other byte), which is discovery's order, so the fingerprints are the same bytes. Each file
is read once, so the md5 cache of sources.py is emptied after each batch (full, it holds 65,536
entries, ~30 MB, that the merge never asks for again).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from paco_fr.data.chunks import settings_hash
from paco_fr.data.config import CurationConfig
from paco_fr.data.partition import partition_items, partition_of, read_part_marker
from paco_fr.data.sources import SourceItem, _content_md5, _walk_dir, fingerprint, item_records

_RECORD_BATCH = 4096  # items per threaded read of their contents (as sources.item_records reads)


def check_parts(cfg: CurationConfig, root: Path, part_dirs: list[Path],
                items: Sequence[SourceItem] | None = None) -> None:
    """Raise ValueError when `part_dirs` are not exactly the `cfg.n_partitions` partitions of `root`,
    curated with this configuration from the files `root` holds now."""
    markers = [read_part_marker(d) for d in part_dirs]
    settings = settings_hash(cfg)
    seen: dict[int, Path] = {}
    for path, marker in zip(part_dirs, markers):
        if marker["partitions"] != cfg.n_partitions:
            raise ValueError(f"{path} is partition {marker['part']} of {marker['partitions']}, but "
                             f"curation.partitions is {cfg.n_partitions}")
        if marker["settings"] != settings:
            raise ValueError(f"{path} was curated with other settings than this merge's: run curate-part again")
        if marker["part"] in seen:
            raise ValueError(f"partition {marker['part']} given twice: {seen[marker['part']]} and {path}")
        seen[marker["part"]] = path
    missing = sorted(set(range(cfg.n_partitions)) - set(seen))
    if missing:
        raise ValueError(f"missing partition(s) {missing} of {cfg.n_partitions}")
    if items is not None:
        prints = {p: fingerprint(partition_items(items, p, cfg.n_partitions)) for p in seen}
    else:
        prints = part_fingerprints(root, cfg.n_partitions)
    for path, marker in zip(part_dirs, markers):
        if marker["inputs_fingerprint"] != prints[marker["part"]]:
            raise ValueError(f"{path} is stale: the source's files of partition {marker['part']} changed since it "
                             f"was curated; run curate-part again")


def part_fingerprints(root: str | os.PathLike[str], partitions: int) -> dict[int, str]:
    """`fingerprint(partition_items(discover(root), p, partitions))` for every p, without the items."""
    root = str(root)
    try:
        os.scandir(root).close()
    except OSError as exc:
        raise PermissionError(f"source folder cannot be read: {root} ({exc.strerror or exc})") from exc
    sink = _RecordSink(partitions)
    _walk_dir(root, "", sink, is_root=True)  # type: ignore[arg-type]  # it only appends
    sink.flush()
    out = {}
    for part, records in enumerate(sink.records):
        records.sort()
        digest = hashlib.sha256()
        for record in records:
            digest.update(record)
        out[part] = digest.hexdigest()
        records.clear()
    return out


class _RecordSink:
    """Takes discovery's items one by one (`append`), keeps only their fingerprint records."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.records: list[list[bytes]] = [[] for _ in range(partitions)]
        self._pending: list[SourceItem] = []

    def append(self, item: SourceItem) -> None:
        self._pending.append(item)
        if len(self._pending) >= _RECORD_BATCH:
            self.flush()

    def flush(self) -> None:
        for item, record in zip(self._pending, item_records(self._pending)):
            self.records[partition_of(item.rel_path, self.partitions)].append(record)
        self._pending = []
        # Every file is read once here: its cached md5 (65,536 kept, ~450 bytes each) would not be asked again.
        _content_md5.cache_clear()
