"""Rows of several Parquet files in a given global order, in memory that does not grow with the tables.

    for block in gather_in_order(sources, dest, spill_path, block_rows=B, batch_rows=b): ...

`dest[s][r]` is the position row r of source s takes in the output (-1: left out); the kept rows
must fill 0..n-1 exactly. The output comes as tables of `block_rows` rows (the last one shorter),
in position order, with two columns added: ``_dest`` (the position) and ``_source`` (s).

The positions are a permutation (the corpus's seeded shard order), so a block needs rows from all
over every source. Reading the sources once per block would cost n * n / B rows; holding them would
cost the whole table. Instead, pass 1 reads each source once, `batch_rows` rows at a time, and
appends each block's share of the batch, sorted, as its own record batch to an uncompressed Arrow IPC
spill file; pass 2 reads back one block's record batches at a time. Memory: one source batch or
one block; disk: the kept rows once, deleted when the generator finishes or is closed.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def gather_in_order(sources: Sequence[str | os.PathLike[str]], dest: Sequence[np.ndarray],
                    spill_path: str | os.PathLike[str], *, block_rows: int, batch_rows: int,
                    columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Yield the kept rows of `sources` (Parquet files; `columns` of them, default all) in `dest`
    order, `block_rows` rows per table (see the module's docstring)."""
    if block_rows < 1 or batch_rows < 1:
        raise ValueError(f"block_rows and batch_rows must be positive, not {block_rows} and {batch_rows}")
    spill_path = Path(spill_path)
    total = sum(int(np.count_nonzero(d >= 0)) for d in dest)
    try:
        pieces = _spill(sources, dest, spill_path, block_rows=block_rows, batch_rows=batch_rows, columns=columns)
        if total:
            yield from _read_back(spill_path, pieces, total, block_rows)
    finally:
        spill_path.unlink(missing_ok=True)


def _spill(sources: Sequence[str | os.PathLike[str]], dest: Sequence[np.ndarray], spill_path: Path, *,
           block_rows: int, batch_rows: int, columns: list[str] | None) -> dict[int, list[int]]:
    """Pass 1: every kept row into the spill file, one record batch per (source batch, block).
    Returns block -> its record batches' numbers in the file."""
    pieces: dict[int, list[int]] = defaultdict(list)
    writer: pa.ipc.RecordBatchFileWriter | None = None
    n_batches = 0
    with pa.OSFile(str(spill_path), "wb") as sink:
        try:
            for source, (path, where) in enumerate(zip(sources, dest)):
                start = 0
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
                    here = where[start:start + batch.num_rows]
                    start += batch.num_rows
                    kept = np.flatnonzero(here >= 0)
                    if not kept.size:
                        continue
                    kept = kept[np.argsort(here[kept], kind="stable")]
                    positions = here[kept].astype(np.int64)
                    table = pa.Table.from_batches([batch]).take(pa.array(kept))
                    table = table.append_column("_dest", pa.array(positions)).append_column(
                        "_source", pa.array(np.full(kept.size, source, np.int32)))
                    blocks = positions // block_rows
                    bounds = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1], True])
                    for a, b in zip(bounds[:-1], bounds[1:]):
                        if writer is None:
                            writer = pa.ipc.new_file(sink, table.schema)
                        for piece in table.slice(int(a), int(b - a)).combine_chunks().to_batches():
                            writer.write_batch(piece)
                            pieces[int(blocks[a])].append(n_batches)
                            n_batches += 1
                if start != len(where):
                    raise ValueError(f"{path} has {start} rows, the merge planned {len(where)}")
        finally:
            if writer is not None:
                writer.close()
    return pieces


def _read_back(spill_path: Path, pieces: dict[int, list[int]], total: int, block_rows: int) -> Iterator[pa.Table]:
    """Pass 2: one block at a time, in position order. A plain file, not a memory map: mapped pages
    would count in the process's resident memory."""
    with pa.OSFile(str(spill_path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for block in range(-(-total // block_rows)):
            table = pa.Table.from_batches([reader.get_batch(i) for i in pieces.get(block, [])], schema=reader.schema)
            expected = min(block_rows, total - block * block_rows)
            table = table.take(pc.sort_indices(table["_dest"]))
            positions = table["_dest"].to_numpy()
            if len(positions) != expected or (expected and (positions[0] != block * block_rows
                                                            or np.any(np.diff(positions) != 1))):
                raise ValueError(f"positions of block {block} are not {block * block_rows}..: the destinations "
                                 f"given are not a permutation")
            yield table
