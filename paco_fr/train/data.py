"""Streaming the face corpus and its region maps into training batches.

The corpus is a folder of tar shards (``shards/shard-XXXXXX.tar`` with ``{face_id}.png`` crops) and
the regions a folder of matching tars (``regions-XXXXXX.tar`` with ``{face_id}.png`` label maps);
``manifest.parquet`` says which faces belong to which split and shard. Only the requested split's
rows are read; images are read shard by shard, one member at a time (seek + read), so the corpus is
never held in memory.

Order and randomness are a pure function of (seed, epoch, position): each epoch shuffles the shard
order and the faces inside each shard; the sample at global position g of an epoch is augmented and
masked with a generator seeded from (seed, epoch, g). Rank r of a DDP run takes positions
g = r, r + world, ...; batch j of a rank is made by DataLoader worker j mod workers. So the stream
is the same with any number of workers, a resumed run can skip to any batch without decoding the
ones before it, and 2 ranks with half batches see exactly the samples of 1 rank with full batches.
"""

from __future__ import annotations

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


class DataError(ValueError):
    """Corpus or region data that cannot be trained on, with the reason."""


@dataclass(frozen=True)
class FaceRef:
    face_id: str
    shard: str  # corpus shard file name, e.g. shard-000000.tar


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


def read_split(corpus_dir: str | os.PathLike[str], split: str) -> list[FaceRef]:
    """Rows of `split` in CORPUS/manifest.parquet, in manifest order (only the needed columns and rows
    are read)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    manifest = Path(corpus_dir) / "manifest.parquet"
    if not manifest.exists():
        raise DataError(f"{corpus_dir} is not a face corpus: {manifest.name} is missing")
    try:
        table = pq.read_table(manifest, columns=["face_id", "shard", "split"])
    except (KeyError, ValueError) as exc:  # pyarrow: missing column
        raise DataError(f"{manifest}: needs columns face_id, shard, split ({exc})") from exc
    table = table.filter(pc.equal(table["split"], split))
    ids = table["face_id"].to_pylist()
    shards = table["shard"].to_pylist()
    return [FaceRef(str(f), shard_file_name(s)) for f, s in zip(ids, shards)]


class TarMembers:
    """Random access to the members of an uncompressed tar: an index of (offset, size) by name."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise DataError(f"missing shard {path}")
        self.path = path
        self.index: dict[str, tuple[int, int]] = {}
        try:
            with tarfile.open(path, "r:") as tar:
                for member in tar:
                    if member.isfile():
                        self.index[member.name] = (member.offset_data, member.size)
        except tarfile.TarError as exc:
            raise DataError(f"{path} is not a readable (uncompressed) tar: {exc}") from exc
        self._handle = open(path, "rb")

    def read(self, name: str) -> bytes:
        try:
            offset, size = self.index[name]
        except KeyError:
            raise DataError(f"{self.path.name} has no member {name!r}") from None
        self._handle.seek(offset)
        data = self._handle.read(size)
        if len(data) != size:
            raise DataError(f"{self.path.name}: member {name!r} is truncated")
        return data

    def close(self) -> None:
        self._handle.close()


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
    faces: tuple[FaceRef, ...]
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

    @property
    def per_rank(self) -> int:
        return len(self.faces) // self.world_size

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, np.uint64)[0] >> 1)


def epoch_order(spec: StreamSpec, epoch: int) -> list[int]:
    """Indices into spec.faces in this epoch's order (shard by shard)."""
    by_shard: dict[str, list[int]] = {}
    for i, face in enumerate(spec.faces):
        by_shard.setdefault(face.shard, []).append(i)
    shards = sorted(by_shard)
    if not spec.shuffle:
        return [i for s in shards for i in by_shard[s]]
    rng = np.random.default_rng([spec.seed, epoch, 0x5EED])
    order: list[int] = []
    for s in rng.permutation(len(shards)):
        members = by_shard[shards[s]]
        order.extend(members[j] for j in rng.permutation(len(members)))
    return order


class FaceRegionStream(IterableDataset):
    """Yields ready batches (dicts of tensors) from epoch `start_epoch`, batch `start_batch` on,
    for `epochs` epochs (None: forever). Use with ``DataLoader(batch_size=None)``; each batch also
    carries its `epoch` and `batch` index."""

    def __init__(self, spec: StreamSpec, *, start_epoch: int = 0, start_batch: int = 0,
                 epochs: int | None = None, batches_per_epoch: int | None = None) -> None:
        super().__init__()
        if spec.per_rank == 0 or spec.batches_per_epoch == 0:
            raise DataError(f"{len(spec.faces)} faces over {spec.world_size} rank(s) do not fill one batch of "
                            f"{spec.batch_size}; lower train.batch_size or add data")
        self.spec = spec
        # An epoch may use fewer batches than it holds (whole gradient-accumulation cycles only).
        self.batches_per_epoch = min(batches_per_epoch or spec.batches_per_epoch, spec.batches_per_epoch)
        self.start_epoch = start_epoch
        self.start_batch = start_batch
        self.epochs = epochs
        self._tars: dict[str, TarMembers] = {}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        from paco_fr.masks import FLIP_PERMUTATION, REGIONS

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        spec = self.spec
        flip_perm = torch.tensor(FLIP_PERMUTATION, dtype=torch.long)
        n_regions = len(REGIONS)
        bpe = self.batches_per_epoch
        first = self.start_epoch * bpe + self.start_batch
        last = None if self.epochs is None else (self.start_epoch + self.epochs) * bpe
        order: list[int] = []
        order_epoch = -1
        k = first + worker
        try:
            while last is None or k < last:
                epoch, j = divmod(k, bpe)
                if epoch != order_epoch:
                    order, order_epoch = epoch_order(spec, epoch), epoch
                positions = range(spec.rank + j * spec.batch_size * spec.world_size,
                                  min(spec.rank + (j + 1) * spec.batch_size * spec.world_size,
                                      spec.per_rank * spec.world_size),
                                  spec.world_size)
                samples = [self._sample(order[g], epoch, g, flip_perm, n_regions) for g in positions]
                batch = collate(samples)
                batch["epoch"] = torch.tensor(epoch)
                batch["batch"] = torch.tensor(j)
                yield batch
                k += workers
        finally:
            self._close()

    def _tar(self, path: Path) -> TarMembers:
        key = str(path)
        if key not in self._tars:
            if len(self._tars) >= 4:  # a few shards open at a time, never the corpus
                oldest = next(iter(self._tars))
                self._tars.pop(oldest).close()
            self._tars[key] = TarMembers(path)
        return self._tars[key]

    def _close(self) -> None:
        for tar in self._tars.values():
            tar.close()
        self._tars.clear()

    def _sample(self, index: int, epoch: int, position: int, flip_perm: torch.Tensor,
                n_regions: int) -> dict[str, torch.Tensor]:
        from paco_fr.masks import patch_membership, sample_masks

        spec = self.spec
        face = spec.faces[index]
        name = f"{face.face_id}.png"
        corpus_tar = self._tar(Path(spec.corpus_dir) / "shards" / face.shard)
        regions_tar = self._tar(Path(spec.regions_dir) / regions_file_name(face.shard))
        image = decode_png(corpus_tar.read(name), "RGB", f"{face.shard}:{name}")
        try:
            label_bytes = regions_tar.read(name)
        except DataError:
            raise DataError(f"face {face.face_id} has no region map in {regions_tar.path}") from None
        labels = decode_png(label_bytes, "L", f"{regions_tar.path.name}:{name}")
        if labels.shape != image.shape[:2]:
            raise DataError(f"face {face.face_id}: region map {labels.shape} and crop {image.shape[:2]} differ in size")
        if int(labels.max()) >= n_regions:
            raise DataError(f"face {face.face_id}: region label {int(labels.max())} is not one of the "
                            f"{n_regions} region classes")
        generator = torch.Generator().manual_seed(sample_seed(spec.seed, epoch, position))
        img_t, lab_t = augment_pair(torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(labels),
                                    spec.img_size, spec.augment, generator, flip_perm)
        membership = patch_membership(lab_t.long().unsqueeze(0), spec.patch_size)   # [1,N,R]
        mask = sample_masks(membership, spec.mask_strategy, spec.mask_ratio, generator)[0]  # [N]
        replaced = choose_replaced(mask, spec.replace_ratio, generator)
        order = torch.argsort(mask.to(torch.int8), stable=True)  # visible first, each part ascending
        n_visible = int((~mask).sum())
        centroids, present = region_centroids(lab_t, n_regions)
        return {"images": img_t, "labels": lab_t, "mask": mask, "replaced": replaced,
                "membership": membership[0], "centroids": centroids, "present": present,
                "ids_keep": order[:n_visible], "ids_masked": order[n_visible:], "face_index": torch.tensor(index)}


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
    # The dedicated generator keeps the DataLoader from drawing its base seed from the global RNG,
    # which would make a resumed run's global RNG stream differ from an uninterrupted one.
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=4 if num_workers else None, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed))
