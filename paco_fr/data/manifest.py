"""The corpus tables: `manifest.parquet` (one row per accepted face) and `rejected.parquet` (one
row per rejected input), their schemas, and an appending writer that publishes atomically.

Column meanings are in docs/curation.md. Paths are relative to the source folder, POSIX style.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from paco_fr.io import atomic_path

if TYPE_CHECKING:  # pandas only where tables are read (a curation worker never does)
    import pandas as pd

MANIFEST_FILE = "manifest.parquet"
REJECTED_FILE = "rejected.parquet"

_KEYPOINT_COLUMNS = [(f"kp{i}_{axis}", pa.float64()) for i in range(5) for axis in ("x", "y")]

MANIFEST_SCHEMA = pa.schema([
    ("face_id", pa.string()),
    ("source_path", pa.string()),
    ("source_sha256", pa.string()),
    ("pixel_sha256", pa.string()),
    ("face_index", pa.int32()),
    ("n_faces", pa.int32()),
    ("shard", pa.string()),
    ("split", pa.string()),
    ("synthetic", pa.bool_()),
    ("identity", pa.string()),
    ("expression", pa.string()),
    ("attributes", pa.string()),
    ("landmark_source", pa.string()),
    ("landmark_scheme", pa.string()),
    ("det_score", pa.float64()),
    ("box_x0", pa.float64()),
    ("box_y0", pa.float64()),
    ("box_x1", pa.float64()),
    ("box_y1", pa.float64()),
    *_KEYPOINT_COLUMNS,
    ("face_size_px", pa.float64()),
    ("sharpness", pa.float64()),
    ("brightness", pa.float64()),
    ("contrast", pa.float64()),
    ("phash", pa.string()),
    ("image_phash", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("crop_size", pa.int32()),
    ("has_labels", pa.bool_()),
    ("sidecar_paths", pa.list_(pa.string())),
])

REJECTED_SCHEMA = pa.schema([
    ("source_path", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("source_sha256", pa.string()),
    ("pixel_sha256", pa.string()),
    ("sidecar_paths", pa.list_(pa.string())),
])

# A partition's tables (paco_fr.data.partition): every candidate face with the manifest's columns but
# the global ones (shard, split), its image's hash and where its members lie in its chunk's tar; and
# every input with its hashes and its partition-local verdict (reason null: it has candidate faces).
PART_FACES_SCHEMA = pa.schema(
    [f for f in MANIFEST_SCHEMA if f.name not in ("shard", "split")]
    + [pa.field("chunk", pa.string())]
    + [pa.field(f"{member}_{what}", pa.int64()) for member in ("png", "json", "labels") for what in ("offset", "size")])
PART_INPUTS_SCHEMA = pa.schema([
    ("source_path", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("source_sha256", pa.string()),
    ("pixel_sha256", pa.string()),
    ("image_phash", pa.string()),
    ("sidecar_paths", pa.list_(pa.string())),
    ("face_failures", pa.string()),  # JSON [[rank, reason, detail], ...] of faces dropped inside the image
])

# Columns that may never be null (checked by the validation suite as well).
MANIFEST_REQUIRED = [name for name in MANIFEST_SCHEMA.names
                     if name not in ("identity", "expression", "attributes", "landmark_scheme")]


def table_from_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """A table of exactly `schema`'s columns (extra keys in the rows, e.g. bookkeeping, are dropped)."""
    rows = list(rows)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


@contextlib.contextmanager
def parquet_appender(path: str | os.PathLike[str], schema: pa.Schema) -> Iterator[Any]:
    """Yield ``append(table)``; the file appears at `path` only when the block succeeds. Each
    append becomes a row group, so tables never need to be held all at once."""
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema)
        try:
            yield writer.write_table
        finally:
            writer.close()


def read_manifest(corpus_dir: str | os.PathLike[str]) -> "pd.DataFrame":
    import pandas as pd  # noqa: PLC0415

    return pd.read_parquet(Path(corpus_dir) / MANIFEST_FILE)


def read_rejected(corpus_dir: str | os.PathLike[str]) -> "pd.DataFrame":
    import pandas as pd  # noqa: PLC0415

    return pd.read_parquet(Path(corpus_dir) / REJECTED_FILE)
