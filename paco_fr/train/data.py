"""Streaming the face corpus and its region maps into training batches, shard by shard.

The corpus is a folder of WebDataset-layout tar shards (``shards/shard-XXXXXX.tar`` with
``{face_id}.png`` crops beside other members) and the regions a folder of matching tars
(``regions-XXXXXX.tar`` with ``{face_id}.png`` label maps); ``manifest.parquet`` says which faces
belong to which split and shard. The split's faces are held as arrays (:class:`FaceTable`: their
ids sorted by shard, and per-shard offsets), never as one Python object per face.

Who reads what. An epoch lays the split's faces out shard after shard, in a seeded permutation of
the shards (each shard's faces in their stored order), and cuts that sequence into contiguous
ranges, one per *stream*: ``groups`` x ``streams`` of them. A group is a DDP rank's share (by
default one group per rank) and a stream a DataLoader worker's (by default one per worker), so each
rank and worker reads its own shards, front to back; two neighbouring streams share at most the
shard at their boundary, each reading its own faces of it. A stream reads ``interleave`` of its
shards at a time (each crop tar sequentially from the piece's first face, via webdataset's tar
iterator; each face's region map where its tar's header index puts it) and draws faces from a
shuffle buffer of ``shuffle_buffer`` faces, so a batch mixes faces of several shards; the buffer
holds compressed bytes, decoded only when a face leaves it.

Batch k of the run (global over epochs; epoch k // bpe, batch j = k % bpe) takes ``part`` faces from
stream (v, k mod streams) of every group v. Rank r owns groups v = r, r + ranks, ... and interleaves
their parts (row i*G + u is face i of its u-th group), so that rank r's row i is row i*ranks + r of
the global batch, the order paco_fr.model.codebook.gather_batch assumes. A loader that starts at
batch k0 has worker (k - k0) mod workers make batch k (the DataLoader's round robin), so each stream
belongs to one worker. Every group has the same number of batches per epoch, so DDP ranks never
wait on each other; the faces that do not fill a last batch of every group (fewer than the global
batch, plus the batches of an unfinished gradient-accumulation cycle: the end of the epoch's shard
order, a different tail each epoch) sit that epoch out.

Promise: the faces of global batch k, their order, augmentation and masks are a pure function of
(seed, corpus split, global batch size, groups, streams, shuffle_buffer, interleave, k), whatever
the number of DDP ranks (any divisor of groups) and of DataLoader workers (any divisor of streams,
0 included). A resumed run replays a stream's order from the epoch's start on integers alone, skips
the pieces that order has used up, and reads through (without decoding) the used faces of the
pieces still open: it gets the same batches as a run that never stopped.
"""

from __future__ import annotations

import functools
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from paco_fr.train.augment import AugmentParams, augment_pair, region_centroids

READ_BUFFER = 1 << 20  # bytes per open tar: a few large reads instead of many small ones


class DataError(ValueError):
    """Corpus or region data that cannot be trained on, with the reason."""


def shard_file_name(value: object) -> str:
    """The manifest's `shard` value (a name, a relative path or a number) -> 'shard-XXXXXX.tar'."""
    if isinstance(value, (int, np.integer)):
        return f"shard-{int(value):06d}.tar"
    name = os.path.basename(str(value))
    if name.isdigit():
        return f"shard-{int(name):06d}.tar"
    return name if name.endswith(".tar") else f"{name}.tar"


def regions_file_name(shard_name: str) -> str:
    """'shard-000003.tar' -> 'regions-000003.tar' (one region tar per corpus shard, same suffix)."""
    if not shard_name.startswith("shard-"):
        raise DataError(f"corpus shard {shard_name!r} does not follow the shard-XXXXXX.tar naming")
    return "regions-" + shard_name[len("shard-"):]


@dataclass(frozen=True, eq=False)
class FaceTable:
    """The faces of one split as arrays: face i is ``ids[i]``, in shard ``shards[s]`` for
    ``offsets[s] <= i < offsets[s + 1]``; ids are sorted inside each shard."""

    shards: tuple[str, ...]   # corpus shard file names, sorted
    offsets: np.ndarray       # int64 [S + 1]
    ids: np.ndarray           # bytes (numpy S<L>) [N], utf-8

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def shard_of(self, index: int | np.ndarray) -> int | np.ndarray:
        return np.searchsorted(self.offsets, index, side="right") - 1

    def face_id(self, index: int) -> str:
        return self.ids[index].decode()

    def lookup(self, shard: int, key: bytes) -> int:
        """Index of face `key` of shard number `shard`, or -1 when it is not in this split."""
        lo, hi = int(self.offsets[shard]), int(self.offsets[shard + 1])
        if len(key) > self.ids.itemsize or lo == hi:
            return -1
        i = lo + int(np.searchsorted(self.ids[lo:hi], key))
        return i if i < hi and self.ids[i] == key else -1


def read_split(corpus_dir: str | os.PathLike[str], split: str) -> FaceTable:
    """The faces of `split` in CORPUS/manifest.parquet (only the needed columns and rows are read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = Path(corpus_dir) / "manifest.parquet"
    if not manifest.exists():
        raise DataError(f"{corpus_dir} is not a face corpus: {manifest.name} is missing")
    try:
        table = pq.read_table(manifest, columns=["face_id", "shard"], filters=[("split", "=", split)])
    except (KeyError, ValueError) as exc:  # pyarrow: missing column
        raise DataError(f"{manifest}: needs columns face_id, shard, split ({exc})") from exc
    # One name per distinct shard value, then a small integer per face.
    encoded = table["shard"].cast(pa.string()).combine_chunks().dictionary_encode()
    names = [shard_file_name(v) for v in encoded.dictionary.to_pylist()]
    shards = tuple(sorted(set(names)))
    code_of_value = np.array([shards.index(n) for n in names], dtype=np.int64)
    codes = code_of_value[encoded.indices.to_numpy(zero_copy_only=False)] if len(table) else np.zeros(0, np.int64)
    ids = _id_array(table["face_id"].cast(pa.string()).combine_chunks())
    del table, encoded
    pa.default_memory_pool().release_unused()  # the parent's heap is what forked workers inherit
    order = np.lexsort((ids, codes))
    ids, codes = ids[order], codes[order]
    if len(ids) > 1 and bool(np.any((ids[1:] == ids[:-1]) & (codes[1:] == codes[:-1]))):
        raise DataError(f"{manifest}: a face_id appears twice in one shard of split {split!r}")
    offsets = np.searchsorted(codes, np.arange(len(shards) + 1)).astype(np.int64)
    return FaceTable(shards=shards, offsets=offsets, ids=ids)


def _id_array(column) -> np.ndarray:
    """A pyarrow string array -> numpy bytes array (S<longest id>), without a Python object per id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(column) == 0:
        return np.zeros(0, dtype="S1")
    width = max(int(pc.max(pc.binary_length(column)).as_py()), 1)
    if not pc.all(pc.string_is_ascii(column)).as_py():  # utf8_rpad pads by characters
        return np.char.encode(np.asarray(column.to_numpy(zero_copy_only=False), dtype=str), "utf-8")
    fixed = pc.utf8_rpad(column, width=width, padding="\0").cast(pa.binary()).cast(pa.binary(width))
    return np.frombuffer(fixed.buffers()[1], dtype=f"S{width}", count=len(fixed), offset=fixed.offset * width).copy()


def decode_png(data: bytes, mode: str, what: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if mode == "L" and img.mode not in ("L", "P"):
                raise DataError(f"{what}: region map must be a single-channel (mode L) PNG, got mode {img.mode}")
            return np.array(img.convert(mode) if img.mode != mode else img)
    except (OSError, SyntaxError) as exc:
        raise DataError(f"{what}: cannot decode PNG ({exc})") from exc


@dataclass(frozen=True)
class StreamSpec:
    """Everything a worker needs to produce batches (picklable)."""

    corpus_dir: str
    regions_dir: str
    faces: FaceTable
    img_size: int
    patch_size: int
    batch_size: int                   # per rank
    seed: int
    mask_strategy: str
    mask_ratio: float
    replace_ratio: float
    augment: AugmentParams | None     # None: no augmentation (evaluation)
    shuffle: bool = True
    drop_last: bool = True
    rank: int = 0
    world_size: int = 1
    groups: int = 0                   # shard groups over all ranks; 0: one per rank
    streams: int = 1                  # streams per group (DataLoader workers must divide it)
    shuffle_buffer: int = 1000        # faces each stream holds to shuffle (shuffle=True only)
    interleave: int = 4               # shards each stream reads at a time (shuffle=True only)

    def __post_init__(self) -> None:
        if not isinstance(self.faces, FaceTable):
            raise TypeError(f"StreamSpec.faces is a FaceTable (read_split), got {type(self.faces).__name__}")
        if self.groups == 0:
            object.__setattr__(self, "groups", self.world_size)
        if self.groups % self.world_size:
            raise DataError(f"{self.groups} shard groups do not split over {self.world_size} ranks; "
                            "train.loader_groups must be a multiple of the number of ranks")
        if self.batch_size % self.groups_per_rank:
            raise DataError(f"a rank's batch of {self.batch_size} does not split into {self.groups_per_rank} "
                            "equal group parts; choose train.loader_groups and train.batch_size to fit")
        for name in ("streams", "shuffle_buffer", "interleave"):
            if getattr(self, name) < 1:
                raise DataError(f"StreamSpec.{name} must be at least 1, got {getattr(self, name)}")

    @property
    def groups_per_rank(self) -> int:
        return self.groups // self.world_size

    @property
    def part(self) -> int:
        """Faces that each group gives to one batch."""
        return self.batch_size // self.groups_per_rank

    @property
    def per_group(self) -> int:
        return len(self.faces) // self.groups

    @property
    def per_rank(self) -> int:
        return self.per_group * self.groups_per_rank

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.per_group // self.part
        return -(-self.per_group // self.part)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Piece:
    """Faces [start, stop) of shard number `shard`, counted among the split's faces in stored order."""

    shard: int
    start: int
    stop: int


def part_size(spec: StreamSpec, bpe: int, j: int) -> int:
    """Faces of batch j that each group gives: `part`, less in a partial last batch (drop_last off)."""
    if not spec.drop_last and bpe == spec.batches_per_epoch and j == bpe - 1:
        return spec.per_group - (bpe - 1) * spec.part
    return spec.part


def _count_congruent(lo: int, hi: int, s: int, m: int) -> int:
    """How many k in [lo, hi) have k % m == s."""
    return (hi - 1 - s) // m - (lo - 1 - s) // m


def stream_length(spec: StreamSpec, epoch: int, bpe: int, s: int) -> int:
    """Faces that stream s of a group gives in `epoch` (its batches: k = epoch*bpe + j, k % streams == s)."""
    base = epoch * bpe
    n = _count_congruent(base, base + bpe, s, spec.streams) * spec.part
    if (base + bpe - 1) % spec.streams == s:
        n -= spec.part - part_size(spec, bpe, bpe - 1)
    return n


def epoch_plan(spec: StreamSpec, epoch: int, bpe: int) -> list[list[Piece]]:
    """The pieces of shards that each stream reads in `epoch`, indexed by v * streams + s. Pieces are
    contiguous ranges of one sequence (the shards in this epoch's order): disjoint, and together they
    cover the first groups * bpe * part faces of it (fewer with a partial last batch)."""
    counts = spec.faces.counts
    if spec.shuffle:
        order = np.random.default_rng([spec.seed, epoch, 0x5EED]).permutation(len(counts))
    else:
        order = np.arange(len(counts))
    bounds = np.concatenate([[0], np.cumsum(counts[order])])          # [S + 1] in the epoch sequence
    lengths = [stream_length(spec, epoch, bpe, s) for s in range(spec.streams)] * spec.groups
    plans: list[list[Piece]] = []
    start = 0
    for length in lengths:
        stop, pieces = start + length, []
        i = int(np.searchsorted(bounds, start, side="right")) - 1
        while start < stop:
            hi = min(stop, int(bounds[i + 1]))
            if hi > start:
                pieces.append(Piece(int(order[i]), start - int(bounds[i]), hi - int(bounds[i])))
            start, i = max(start, hi), i + 1
        plans.append(pieces)
    return plans


READ, EMIT = 0, 1


class _Uniform:
    """Uniform draws in blocks from a numpy generator (one call per 4096 draws)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.block, self.i = rng, np.empty(0), 0

    def below(self, n: int) -> int:
        if self.i == len(self.block):
            self.block, self.i = self.rng.random(4096), 0
        self.i += 1
        return min(int(self.block[self.i - 1] * n), n - 1)


def stream_events(lengths: Sequence[int], interleave: int, buffer: int,
                  rng: np.random.Generator) -> Iterator[tuple[int, int, int]]:
    """The order of one stream on integers: (READ, piece, pos) when the next face of `piece` is read,
    (EMIT, -1, pos) when face `pos` leaves the shuffle buffer. Faces are numbered piece after piece.

    `interleave` pieces are open at a time and each read takes the next face of one of them at
    random; the buffer holds `buffer` faces and, once full, each read sends a random one out."""
    starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    draw = _Uniform(rng)
    cursor = [0] * len(lengths)
    open_pieces: list[int] = []
    held: list[int] = []
    upcoming = 0
    while True:
        while len(open_pieces) < interleave and upcoming < len(lengths):
            if lengths[upcoming]:
                open_pieces.append(upcoming)
            upcoming += 1
        if not open_pieces:
            break
        slot = draw.below(len(open_pieces))
        piece = open_pieces[slot]
        pos = starts[piece] + cursor[piece]
        cursor[piece] += 1
        if cursor[piece] == lengths[piece]:
            open_pieces.pop(slot)
        yield READ, piece, pos
        if len(held) < buffer:
            held.append(pos)
            continue
        k = draw.below(len(held))
        yield EMIT, -1, held[k]
        held[k] = pos
    while held:
        k = draw.below(len(held))
        held[k], held[-1] = held[-1], held[k]
        yield EMIT, -1, held.pop()


def _crop_member(name: str) -> bool:
    return name.partition(".")[2] == "png"  # {key}.png, not {key}.labels.png or {key}.json


@dataclass(frozen=True, eq=False)
class TarIndex:
    """Where the members of one tar lie, read from its headers alone (tarfile seeks over the data):
    member i is ``names[i]``, its header at byte ``header[i]``, its data at ``data[i]`` (``size[i]``
    bytes). A few arrays per shard, whatever the corpus size."""

    names: np.ndarray    # bytes (numpy S<L>) [M], utf-8, in stored order
    header: np.ndarray   # int64 [M]
    data: np.ndarray     # int64 [M]
    size: np.ndarray     # int64 [M]
    by_name: np.ndarray  # int64 [M]: member indices in name order
    sorted_names: np.ndarray  # names[by_name], to look names up

    def position(self, name: bytes) -> int:
        """Index of member `name`, or -1."""
        j = int(np.searchsorted(self.sorted_names, name))
        return int(self.by_name[j]) if j < len(self.names) and self.sorted_names[j] == name else -1


@functools.lru_cache(maxsize=64)
def _tar_index(path: str, size: int, mtime_ns: int) -> TarIndex:
    names, header, data, sizes = [], [], [], []
    try:
        with tarfile.open(path, mode="r:") as tar:
            while (info := tar.next()) is not None:
                if info.isreg():
                    names.append(info.name.encode())
                    header.append(info.offset)
                    data.append(info.offset_data)
                    sizes.append(info.size)
                tar.members = []  # tarfile keeps every TarInfo otherwise
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{path} is not a readable tar: {exc}") from exc
    as_array = functools.partial(np.array, dtype=np.int64)
    names_array = np.array(names, dtype=np.bytes_)
    by_name = np.argsort(names_array, kind="stable")
    return TarIndex(names_array, as_array(header), as_array(data), as_array(sizes), by_name, names_array[by_name])


def tar_index(path: Path) -> TarIndex:
    """The member index of the tar at `path`, cached per process (64 tars) while the file is unchanged.
    A worker that reads part of a shard seeks straight to it, and each crop finds its region map
    without reading the region tar through."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"missing shard {path}") from None
    return _tar_index(str(path), stat.st_size, stat.st_mtime_ns)


class PieceReader:
    """Reads one piece: the crop tar front to back from the piece's first face (found by the tar's
    member index, so a piece in the middle of a shard does not read what comes before it), and each
    face's region map where the region tar's index says it lies (region tars are sorted by name,
    crop tars keep curation order)."""

    def __init__(self, spec: StreamSpec, piece: Piece) -> None:
        self.faces, self.piece = spec.faces, piece
        self.name = spec.faces.shards[piece.shard]
        self.crop_path = Path(spec.corpus_dir) / "shards" / self.name
        self.map_path = Path(spec.regions_dir) / regions_file_name(self.name)
        self._files: list[io.BufferedReader] = []
        self._crops: Iterator[dict] | None = None
        self._maps: TarIndex | None = None
        self._seen = 0  # faces of the split read so far in this shard

    def _open(self) -> None:
        from webdataset.tariterators import tar_file_iterator

        if not self.crop_path.exists():
            raise DataError(f"missing shard {self.crop_path}")
        self._maps = tar_index(self.map_path)
        # The crop tar is read sequentially (large buffered reads); region maps one by one at their
        # offsets, unbuffered, so that each costs its own bytes rather than a buffer's worth.
        self._files = [open(self.crop_path, "rb", buffering=READ_BUFFER), open(self.map_path, "rb", buffering=0)]
        if self.piece.start:  # most pieces start a shard: only the others need the crop tar's index
            self._files[0].seek(self._start_offset(tar_index(self.crop_path)))
            self._seen = self.piece.start
        self._crops = tar_file_iterator(self._files[0], select_files=_crop_member)

    def _start_offset(self, crops: TarIndex) -> int:
        """Byte offset of the first member of the split's face number `piece.start` in the crop tar."""
        seen, previous = 0, None
        for name, offset in zip(crops.names.tolist(), crops.header.tolist()):
            key = name.partition(b".")[0]
            if key == previous:
                continue  # another member of the same face ({id}.json, {id}.png)
            previous = key
            if self.faces.lookup(self.piece.shard, key) >= 0:
                if seen == self.piece.start:
                    return offset
                seen += 1
        raise self._short(seen)

    def _short(self, held: int) -> DataError:
        expected = int(self.faces.counts[self.piece.shard])
        return DataError(f"{self.crop_path}: the manifest lists {expected} faces of this split in it, "
                         f"the shard holds {held}")

    def next(self) -> tuple[int, bytes, bytes]:
        """(face index, crop PNG bytes, region map PNG bytes) of the piece's next face."""
        if self._crops is None:
            self._open()
        assert self._crops is not None
        while True:
            member = self._member(self._crops, self.crop_path)
            if member is None:
                raise self._short(self._seen)
            key = member["fname"].partition(".")[0]
            index = self.faces.lookup(self.piece.shard, key.encode())
            if index < 0:
                continue  # another split's face
            self._seen += 1
            labels = self._region(key)
            if self._seen == self.piece.stop:
                self.close()
            return index, member["data"], labels

    def _region(self, key: str) -> bytes:
        assert self._maps is not None
        i = self._maps.position(f"{key}.png".encode())
        if i < 0:
            raise DataError(f"face {key} has no region map in {self.map_path}")
        size = int(self._maps.size[i])
        self._files[1].seek(int(self._maps.data[i]))
        data = self._files[1].read(size)
        if len(data) != size:
            raise DataError(f"{self.map_path} is not a readable tar: {key}.png is cut short")
        return data

    @staticmethod
    def _member(members: Iterator[dict], path: Path) -> dict | None:
        try:
            return next(members, None)
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"{path} is not a readable tar: {exc}") from exc

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []


def stream_faces(spec: StreamSpec, pieces: Sequence[Piece], epoch: int, v: int, s: int,
                 skip: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
    """Stream (v, s) of `epoch`: (face index, crop bytes, map bytes) in shuffled order, after the
    first `skip` faces. A resumed run finds those faces on integers alone; it skips the pieces they
    used up and reads through (without decoding or holding) the skipped faces of the pieces it still
    needs, at most `interleave` + `shuffle_buffer` faces' worth."""
    lengths = [p.stop - p.start for p in pieces]
    interleave, buffer = (spec.interleave, spec.shuffle_buffer) if spec.shuffle else (1, 1)

    def events() -> Iterator[tuple[int, int, int]]:
        return stream_events(lengths, interleave, buffer, np.random.default_rng([spec.seed, epoch, v, s, 0x57AE]))

    done = np.zeros(sum(lengths), dtype=bool) if skip else None
    if done is not None:  # which faces went out before the resume point (integers only)
        emitted = 0
        for kind, _, pos in events():
            if kind == EMIT and emitted < skip:
                done[pos], emitted = True, emitted + 1
            if emitted == skip:
                break
        bounds = np.cumsum([0, *lengths])
        used_up = [bool(done[a:b].all()) for a, b in zip(bounds[:-1], bounds[1:])]
    readers = [PieceReader(spec, p) for p in pieces]
    held: dict[int, tuple[int, bytes, bytes]] = {}
    try:
        for kind, piece, pos in events():
            wanted = done is None or not done[pos]
            if kind == READ:
                if not wanted and used_up[piece]:
                    continue
                face = readers[piece].next()
                if wanted:
                    held[pos] = face
            elif wanted:
                yield held.pop(pos)
    finally:
        for reader in readers:
            reader.close()


class FaceRegionStream(IterableDataset):
    """Yields ready batches (dicts of tensors) from epoch `start_epoch`, batch `start_batch` on,
    for `epochs` epochs (None: forever). Use with ``DataLoader(batch_size=None)``; each batch also
    carries its `epoch` and `batch` index."""

    def __init__(self, spec: StreamSpec, *, start_epoch: int = 0, start_batch: int = 0,
                 epochs: int | None = None, batches_per_epoch: int | None = None) -> None:
        super().__init__()
        if spec.per_group == 0 or spec.batches_per_epoch == 0:
            raise DataError(f"{len(spec.faces)} faces over {spec.groups} shard group(s) do not fill one batch of "
                            f"{spec.part} per group; lower train.batch_size or add data")
        self.spec = spec
        # An epoch may use fewer batches than it holds (whole gradient-accumulation cycles only).
        self.batches_per_epoch = min(batches_per_epoch or spec.batches_per_epoch, spec.batches_per_epoch)
        self.start_epoch = start_epoch
        self.start_batch = start_batch
        self.epochs = epochs
        self._flip: torch.Tensor | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        spec, bpe = self.spec, self.batches_per_epoch
        check_workers(spec, workers)
        first = self.start_epoch * bpe + self.start_batch
        last = None if self.epochs is None else (self.start_epoch + self.epochs) * bpe
        my_groups = range(spec.rank, spec.groups, spec.world_size)
        streams: dict[tuple[int, int], Iterator[tuple[int, bytes, bytes]]] = {}
        plan: list[list[Piece]] = []
        plan_epoch = -1
        k = first + worker
        try:
            while last is None or k < last:
                epoch, j = divmod(k, bpe)
                if epoch != plan_epoch:
                    _close(streams)
                    plan, plan_epoch = epoch_plan(spec, epoch, bpe), epoch
                s, size = k % spec.streams, part_size(spec, bpe, j)
                parts = []
                for v in my_groups:
                    if (v, s) not in streams:  # its first batch here: skip what earlier batches took
                        skip = _count_congruent(epoch * bpe, k, s, spec.streams) * spec.part
                        streams[v, s] = stream_faces(spec, plan[v * spec.streams + s], epoch, v, s, skip)
                    parts.append([self._sample(next(streams[v, s]), epoch, (j * spec.groups + v) * spec.part + i)
                                  for i in range(size)])
                batch = collate([part[i] for i in range(size) for part in parts])  # row i*G + u: face i of group u
                batch["epoch"] = torch.tensor(epoch)
                batch["batch"] = torch.tensor(j)
                yield batch
                k += workers
        finally:
            _close(streams)

    def _sample(self, face: tuple[int, bytes, bytes], epoch: int, position: int) -> dict[str, torch.Tensor]:
        from paco_fr.masks import FLIP_PERMUTATION, REGIONS, patch_membership, sample_masks

        spec = self.spec
        index, crop_bytes, map_bytes = face
        shard, face_id = spec.faces.shards[spec.faces.shard_of(index)], spec.faces.face_id(index)
        image = decode_png(crop_bytes, "RGB", f"{shard}:{face_id}.png")
        labels = decode_png(map_bytes, "L", f"{regions_file_name(shard)}:{face_id}.png")
        if labels.shape != image.shape[:2]:
            raise DataError(f"face {face_id}: region map {labels.shape} and crop {image.shape[:2]} differ in size")
        if int(labels.max()) >= len(REGIONS):
            raise DataError(f"face {face_id}: region label {int(labels.max())} is not one of the "
                            f"{len(REGIONS)} region classes")
        if self._flip is None:
            self._flip = torch.tensor(FLIP_PERMUTATION, dtype=torch.long)
        generator = torch.Generator().manual_seed(sample_seed(spec.seed, epoch, position))
        img_t, lab_t = augment_pair(torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(labels),
                                    spec.img_size, spec.augment, generator, self._flip)
        membership = patch_membership(lab_t.long().unsqueeze(0), spec.patch_size)   # [1,N,R]
        mask = sample_masks(membership, spec.mask_strategy, spec.mask_ratio, generator)[0]  # [N]
        replaced = choose_replaced(mask, spec.replace_ratio, generator)
        order = torch.argsort(mask.to(torch.int8), stable=True)  # visible first, each part ascending
        n_visible = int((~mask).sum())
        centroids, present = region_centroids(lab_t, len(REGIONS))
        return {"images": img_t, "labels": lab_t, "mask": mask, "replaced": replaced,
                "membership": membership[0], "centroids": centroids, "present": present,
                "ids_keep": order[:n_visible], "ids_masked": order[n_visible:], "face_index": torch.tensor(index)}


def _close(streams: dict) -> None:
    for stream in streams.values():
        stream.close()
    streams.clear()


def check_workers(spec: StreamSpec, workers: int) -> None:
    if spec.streams % max(workers, 1):
        raise DataError(f"{workers} DataLoader workers do not divide the {spec.streams} loader streams; "
                        "set train.loader_streams to a multiple of train.num_workers")


def choose_replaced(mask: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """mask [N] bool -> replaced [N] bool: round(ratio * visible) visible patches chosen at random."""
    visible = int((~mask).sum())
    n = round(ratio * visible)
    replaced = torch.zeros_like(mask)
    if n:
        noise = torch.rand(mask.shape, generator=generator)
        noise[mask] = 2.0  # never pick a masked patch
        replaced[noise.argsort()[:n]] = True
    return replaced


def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def make_loader(dataset: FaceRegionStream, num_workers: int, seed: int) -> DataLoader:
    check_workers(dataset.spec, num_workers)
    # The dedicated generator keeps the DataLoader from drawing its base seed from the global RNG,
    # which would make a resumed run's global RNG stream differ from an uninterrupted one.
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=4 if num_workers else None, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed))
