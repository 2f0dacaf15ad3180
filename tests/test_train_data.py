"""Streaming corpus + regions into batches: pairing, splits, which rank and worker reads which shards,
epoch coverage, the same stream for any number of workers and ranks, resume, shuffling across shards,
augmentations that keep the region map consistent, and clear errors for bad data."""

from __future__ import annotations

import io
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paco_fr.masks import FLIP_PERMUTATION, REGIONS
from paco_fr.train.augment import AugmentParams, augment_pair, region_centroids
from paco_fr.train.data import (DataError, FaceRegionStream, FaceTable, Piece, PieceReader, StreamSpec, epoch_plan,
                                make_loader, read_split, regions_file_name, shard_file_name)
from paco_fr.train.toydata import toy_face

torch.set_num_threads(1)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_layout_corpus(root: Path, n_faces: int, shard_size: int, seed: int = 0) -> tuple[Path, Path]:
    """A corpus as curation and the regions stage lay it out: each shard holds faces of all splits,
    {id}.json then {id}.png per face in curation order (random ids, so not sorted); each region tar
    holds {id}.png sorted by name. Every 6th face is val, every 7th test."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus, regions = root / "corpus", root / "regions"
    (corpus / "shards").mkdir(parents=True)
    regions.mkdir()
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"face_id": [], "shard": [], "split": []}
    for index, start in enumerate(range(0, n_faces, shard_size)):
        shard = f"shard-{index:06d}.tar"
        maps = {}
        with tarfile.open(corpus / "shards" / shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(start + shard_size, n_faces)):
                face_id = f"{int(rng.integers(2**62)):016x}"
                image, labels = toy_face(32, rng)
                _add(tar, f"{face_id}.json", json.dumps({"face_id": face_id}).encode())
                _add(tar, f"{face_id}.png", _png(image))
                maps[face_id] = _png(labels)
                rows["face_id"].append(face_id)
                rows["shard"].append(f"shards/{shard}")
                rows["split"].append("val" if i % 6 == 5 else "test" if i % 7 == 6 else "train")
        with tarfile.open(regions / regions_file_name(shard), "w", format=tarfile.USTAR_FORMAT) as tar:
            for face_id in sorted(maps):
                _add(tar, f"{face_id}.png", maps[face_id])
    pq.write_table(pa.table(rows), corpus / "manifest.parquet")
    return corpus, regions


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # 70 faces in shards of 9 (the last holds 7): 50 train faces, 6 to 8 per shard.
    return write_layout_corpus(tmp_path_factory.mktemp("layout"), n_faces=70, shard_size=9, seed=3)


def spec_for(corpus, **kw) -> StreamSpec:
    corpus_dir, regions_dir = corpus
    args = dict(corpus_dir=str(corpus_dir), regions_dir=str(regions_dir),
                faces=read_split(corpus_dir, kw.pop("split", "train")), img_size=32, patch_size=8,
                batch_size=4, seed=7, mask_strategy="structured", mask_ratio=0.75, replace_ratio=0.25,
                augment=AugmentParams(), shuffle_buffer=6, interleave=2)
    args.update(kw)
    return StreamSpec(**args)


def take(dataset, workers=0, n=None):
    out = []
    for batch in make_loader(dataset, workers, seed=0):
        out.append(batch)
        if len(out) == n:
            break
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def read_member(path, name) -> np.ndarray:
    with tarfile.open(path) as tar:
        return np.array(Image.open(io.BytesIO(tar.extractfile(name).read())))


def test_reads_only_the_split_as_arrays_and_pairs_each_crop_with_its_region_map(corpus):
    corpus_dir, regions_dir = corpus
    tables = {s: read_split(corpus_dir, s) for s in ("train", "val", "test")}
    assert [len(t) for t in tables.values()] == [50, 11, 9]
    train = tables["train"]
    assert isinstance(train, FaceTable) and train.ids.dtype.kind == "S" and train.ids.nbytes == 50 * 16
    assert not set(train.ids.tolist()) & (set(tables["val"].ids.tolist()) | set(tables["test"].ids.tolist()))
    assert train.shards == tuple(f"shard-{i:06d}.tar" for i in range(8)) and train.counts.sum() == 50
    spec = spec_for(corpus, augment=None, shuffle=False)
    for batch in FaceRegionStream(spec, epochs=1):  # region tars are in another order than the crops
        assert batch["images"].shape == (4, 3, 32, 32) and batch["images"].dtype == torch.uint8
        for i, idx in enumerate(batch["face_index"].tolist()):
            shard, face_id = train.shards[train.shard_of(idx)], train.face_id(idx)
            image = read_member(corpus_dir / "shards" / shard, f"{face_id}.png")
            labels = read_member(regions_dir / regions_file_name(shard), f"{face_id}.png")
            assert np.array_equal(batch["images"][i].permute(1, 2, 0).numpy(), image)
            assert np.array_equal(batch["labels"][i].numpy(), labels)
    n = 16
    assert batch["mask"].shape == (4, n) and (batch["mask"].sum(1) == 12).all()
    assert (batch["replaced"].sum(1) == 1).all() and not (batch["replaced"] & batch["mask"]).any()
    # Visible / masked indices come precomputed (no device sync in the model), consistent with the mask.
    assert batch["ids_keep"].shape == (4, 4) and batch["ids_masked"].shape == (4, 12)
    for i in range(4):
        assert torch.equal(batch["ids_keep"][i], torch.nonzero(~batch["mask"][i])[:, 0])
        assert torch.equal(batch["ids_masked"][i], torch.nonzero(batch["mask"][i])[:, 0])
    assert batch["membership"].shape == (4, n, len(REGIONS))
    assert batch["centroids"].shape == (4, len(REGIONS), 2) and batch["present"].dtype == torch.bool


def test_face_table_lookup_with_ids_of_any_length_and_alphabet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = ["b", "aé", "0123456789abcdef0123", "c", "a"]
    pq.write_table(pa.table({"face_id": ids, "shard": [3, 3, 1, 1, 1], "split": ["train"] * 4 + ["val"]}),
                   tmp_path / "manifest.parquet")
    table = read_split(tmp_path, "train")
    assert table.shards == ("shard-000001.tar", "shard-000003.tar") and table.offsets.tolist() == [0, 2, 4]
    assert [table.face_id(i) for i in range(4)] == ["0123456789abcdef0123", "c", "aé", "b"]
    assert table.lookup(1, "aé".encode()) == 2 and table.lookup(0, b"c") == 1
    assert table.lookup(0, b"a") == -1 and table.lookup(1, b"c") == -1 and table.lookup(0, b"x" * 40) == -1



def test_a_piece_in_the_middle_of_a_shard_starts_at_its_first_face(corpus):
    """The crop tar is read from the piece's first face on (the reader seeks to the offset the tar's
    header index gives), and each face comes with its own region map (looked up in the region tar's
    index: region tars are sorted by name, crop tars are not)."""
    corpus_dir, regions_dir = corpus
    spec = spec_for(corpus)
    table, shard = spec.faces, 0
    n = int(table.counts[shard])
    reader = PieceReader(spec, Piece(shard, 2, n))
    got = [reader.next() for _ in range(n - 2)]
    # Face ids in stored (curation) order: the crop tar's .png members that belong to this split.
    with tarfile.open(corpus_dir / "shards" / table.shards[shard]) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".png")]
    stored = [m for m in members if table.lookup(shard, m.name[:-4].encode()) >= 0]
    assert [table.face_id(i) for i, _, _ in got] == [m.name[:-4] for m in stored[2:]]
    maps = regions_dir / regions_file_name(table.shards[shard])
    for index, crop, labels in got:
        face_id = table.face_id(index)
        assert crop == _member_bytes(corpus_dir / "shards" / table.shards[shard], f"{face_id}.png")
        assert labels == _member_bytes(maps, f"{face_id}.png")
    with pytest.raises(DataError, match="the manifest lists"):
        PieceReader(spec, Piece(shard, n, n + 1)).next()


def _member_bytes(path, name) -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()

@pytest.mark.parametrize("ranks,workers", [(2, 2), (1, 1)])
def test_each_rank_and_worker_reads_its_own_shards_and_together_they_cover_the_epoch_once(corpus, ranks, workers):
    faces_of: dict[tuple[int, int], list[int]] = defaultdict(list)   # (rank, worker) -> faces it gave
    batches = []
    for rank in range(ranks):
        spec = spec_for(corpus, batch_size=4 // ranks, rank=rank, world_size=ranks, streams=workers)
        got = take(FaceRegionStream(spec, epochs=1), workers)
        batches.append(len(got))
        for k, batch in enumerate(got):
            faces_of[rank, k % workers] += batch["face_index"].tolist()
    # Every rank has the same number of batches (12 of 4 faces over all ranks: 48 of the 50 faces).
    assert batches == [12] * ranks
    table = spec.faces
    given = [f for faces in faces_of.values() for f in faces]
    assert len(given) == len(set(given)) == 48
    # Each (rank, worker) reads its planned pieces: whole shards but for the boundary ones, each of
    # which it shares with one neighbour, the two reading disjoint faces of it.
    plan = epoch_plan(spec, 0, 12)
    assert len(plan) == ranks * workers
    shards_of = defaultdict(set)
    for c, pieces in enumerate(plan):
        rank, worker = divmod(c, workers)
        per_shard = defaultdict(int)
        for face in faces_of[rank, worker]:
            per_shard[int(table.shard_of(face))] += 1
        assert per_shard == {p.shard: p.stop - p.start for p in pieces}
        shards_of[c] = set(per_shard)
    for c in range(len(plan)):
        for d in range(c + 1, len(plan)):
            shared = shards_of[c] & shards_of[d]
            assert not shared or (d == c + 1 and len(shared) == 1)
    # The 2 faces left out are the tail of this epoch's shard order: in the shard the last stream
    # stops in, or in shards that no stream reads.
    planned = {p.shard for pieces in plan for p in pieces}
    left_out = set(range(len(table))) - set(given)
    assert {int(table.shard_of(f)) for f in left_out} <= {plan[-1][-1].shard} | (set(range(8)) - planned)


def test_same_batches_with_any_number_of_workers_and_ranks(corpus):
    """With loader_streams and loader_groups fixed, the number of DataLoader workers (any divisor of
    the streams, 0 included) and of DDP ranks (any divisor of the groups) changes nothing."""
    spec = spec_for(corpus, streams=2)
    base = take(FaceRegionStream(spec, epochs=2), 0)
    assert len(base) == 24
    for workers in (1, 2):
        assert all(same(a, b) for a, b in zip(base, take(FaceRegionStream(spec, epochs=2), workers), strict=True))
    one = take(FaceRegionStream(spec_for(corpus, groups=4), epochs=1), 0)
    for world in (2, 4):
        ranks = [take(FaceRegionStream(spec_for(corpus, groups=4, batch_size=4 // world, rank=r, world_size=world),
                                       epochs=1), 0) for r in range(world)]
        for j, batch in enumerate(one):  # rank r holds rows r, r + world, ... of the global batch
            assert all(torch.equal(batch[k][r::world], ranks[r][j][k]) for k in batch if k not in ("epoch", "batch")
                       for r in range(world))
    with pytest.raises(DataError, match="3 DataLoader workers do not divide the 2 loader streams"):
        make_loader(FaceRegionStream(spec), 3, seed=0)


def test_resume_mid_epoch_gives_the_same_stream(corpus):
    spec = spec_for(corpus, streams=2)
    full = take(FaceRegionStream(spec, epochs=2), 2)
    for epoch, batch in ((0, 5), (1, 3)):
        resumed = take(FaceRegionStream(spec, start_epoch=epoch, start_batch=batch, epochs=2 - epoch), 2)
        assert all(same(a, b) for a, b in zip(full[epoch * 12 + batch:], resumed, strict=True))


def test_resume_does_not_read_the_shards_it_has_used_up(corpus, tmp_path):
    corpus_dir, regions_dir = corpus
    spec = spec_for(corpus, shuffle=False)  # shards in name order, one after the other
    full = take(FaceRegionStream(spec, epochs=1), 0)
    used_up = int(np.searchsorted(np.cumsum(spec.faces.counts), 8 * 4, side="right"))  # shards before batch 8
    assert used_up >= 3
    copy = tmp_path / "corpus"
    (copy / "shards").mkdir(parents=True)
    (copy / "manifest.parquet").write_bytes((corpus_dir / "manifest.parquet").read_bytes())
    for name in spec.faces.shards[used_up:]:
        (copy / "shards" / name).write_bytes((corpus_dir / "shards" / name).read_bytes())
    resumed = take(FaceRegionStream(spec_for((copy, regions_dir), shuffle=False), start_batch=8, epochs=1), 0)
    assert all(same(a, b) for a, b in zip(full[8:], resumed, strict=True))


def test_shuffle_buffer_mixes_shards_and_every_epoch_has_its_own_order(corpus):
    spec = spec_for(corpus, batch_size=8, shuffle_buffer=16, interleave=4)
    batches = take(FaceRegionStream(spec, epochs=2), 0)
    table = spec.faces
    shards_per_batch = [len({int(table.shard_of(f)) for f in b["face_index"].tolist()}) for b in batches]
    assert min(shards_per_batch) >= 2 and np.mean(shards_per_batch) >= 3, shards_per_batch
    first = torch.cat([b["face_index"] for b in batches[:6]]).tolist()
    second = torch.cat([b["face_index"] for b in batches[6:]]).tolist()
    assert first != second and len(set(first)) == len(set(second)) == 48
    assert [p.shard for p in epoch_plan(spec, 0, 6)[0]] != [p.shard for p in epoch_plan(spec, 1, 6)[0]]
    # Without shuffling (evaluation): shards in name order, every face once, a partial last batch.
    plain = take(FaceRegionStream(spec_for(corpus, shuffle=False, drop_last=False), epochs=1), 0)
    assert [len(b["face_index"]) for b in plain] == [4] * 12 + [2]
    faces = [f for b in plain for f in b["face_index"].tolist()]
    assert sorted(faces) == list(range(50)) and [int(table.shard_of(f)) for f in faces] == sorted(table.shard_of(faces))


def test_hflip_mirrors_image_and_swaps_left_right_labels(corpus):
    corpus_dir, regions_dir = corpus
    table = read_split(corpus_dir, "train")
    shard, face_id = table.shards[0], table.face_id(0)
    image = torch.from_numpy(read_member(corpus_dir / "shards" / shard, f"{face_id}.png")).permute(2, 0, 1)
    labels = torch.from_numpy(read_member(regions_dir / regions_file_name(shard), f"{face_id}.png"))
    perm = torch.tensor(FLIP_PERMUTATION)
    img, lab = augment_pair(image, labels, 32, AugmentParams(1.0, 0.0, 0.0, 0.0), torch.Generator(), perm)
    assert torch.equal(img, image.flip(-1))
    assert torch.equal(lab, perm[labels.flip(-1).long()].to(torch.uint8))
    left_eye, right_eye = REGIONS.index("left_eye"), REGIONS.index("right_eye")
    # "left" stays the smaller-x side after the flip.
    xs_left = torch.nonzero(lab == left_eye)[:, 1].float().mean()
    xs_right = torch.nonzero(lab == right_eye)[:, 1].float().mean()
    assert xs_left < xs_right


def test_scale_translate_move_image_and_labels_together_and_colour_touches_image_only():
    labels = torch.zeros(64, 64, dtype=torch.uint8)
    labels[20:44, 16:40] = 2
    labels[28:34, 22:30] = 5
    image = (labels * 40).expand(3, 64, 64).contiguous()  # the image encodes its labels
    perm = torch.tensor(FLIP_PERMUTATION)
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        img, lab = augment_pair(image, labels, 64, AugmentParams(0.0, 0.2, 0.1, 0.0), gen, perm)
        assert not torch.equal(lab, labels)
        agree = (img[0].float() - lab.float() * 40).abs() <= 1
        # Away from region boundaries (3x3 neighbourhood of one label) image and labels agree exactly;
        # on boundaries bilinear and nearest resampling differ by design.
        padded = torch.nn.functional.pad(lab.float()[None, None], (1, 1, 1, 1), mode="replicate")
        same_label = (torch.nn.functional.max_pool2d(padded, 3, 1) == -torch.nn.functional.max_pool2d(-padded, 3, 1))
        same_label = same_label[0, 0]
        assert same_label.float().mean() > 0.8 and agree[same_label].all()
    gen = torch.Generator().manual_seed(0)
    img, lab = augment_pair(image, labels, 64, AugmentParams(0.0, 0.0, 0.0, 0.4), gen, perm)
    assert torch.equal(lab, labels) and not torch.equal(img, image)
    # Resizing to another size keeps labels integral and valid.
    img, lab = augment_pair(image, labels, 32, None, torch.Generator(), perm)
    assert img.shape == (3, 32, 32) and set(lab.unique().tolist()) <= {0, 2, 5}


def test_region_centroids():
    labels = torch.zeros(10, 20, dtype=torch.uint8)
    labels[0:2, 0:4] = 3
    centroids, present = region_centroids(labels, len(REGIONS))
    assert present.tolist() == [True, False, False, True] + [False] * 5
    assert centroids[3].tolist() == pytest.approx([(2 / 20) * 2 - 1, (1 / 10) * 2 - 1])


def _copy_tar(src: Path, dst: Path, drop: str | None = None) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for member in tin.getmembers():
            if member.name != drop:
                tout.addfile(member, tin.extractfile(member))


def test_bad_data_gives_clear_errors(corpus, tmp_path):
    corpus_dir, regions_dir = corpus
    with pytest.raises(DataError, match="manifest.parquet is missing"):
        read_split(tmp_path, "train")
    spec = spec_for(corpus, regions_dir=str(tmp_path))
    with pytest.raises(DataError, match="missing shard .*regions-0000"):
        next(iter(FaceRegionStream(spec)))
    table = read_split(corpus_dir, "train")
    missing = table.face_id(0)
    # A region tar that lacks one face.
    broken = tmp_path / "regions"
    broken.mkdir()
    for src in regions_dir.glob("regions-*.tar"):
        _copy_tar(src, broken / src.name, drop=f"{missing}.png")
    with pytest.raises(DataError, match=f"face {missing} has no region map"):
        list(FaceRegionStream(spec_for(corpus, regions_dir=str(broken), shuffle=False), epochs=1))
    # A corpus shard that lacks a face its manifest lists.
    short = tmp_path / "corpus"
    (short / "shards").mkdir(parents=True)
    (short / "manifest.parquet").write_bytes((corpus_dir / "manifest.parquet").read_bytes())
    for src in (corpus_dir / "shards").glob("shard-*.tar"):
        _copy_tar(src, short / "shards" / src.name, drop=f"{missing}.png")
    n = int(table.counts[0])
    with pytest.raises(DataError, match=f"shard-000000.tar: the manifest lists {n} faces of this split in it, "
                                        f"the shard holds {n - 1}"):
        list(FaceRegionStream(spec_for((short, regions_dir), shuffle=False), epochs=1))
    # A shard that is not a tar.
    (short / "shards" / "shard-000000.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(DataError, match="shard-000000.tar is not a readable tar"):
        list(FaceRegionStream(spec_for((short, regions_dir), shuffle=False), epochs=1))
    with pytest.raises(DataError, match="do not fill one batch"):
        FaceRegionStream(spec_for(corpus, batch_size=100))
    with pytest.raises(DataError, match="do not split over 2 ranks"):
        spec_for(corpus, groups=3, world_size=2)
    with pytest.raises(TypeError, match="FaceTable"):
        spec_for(corpus, faces=tuple(table.ids))
    assert shard_file_name("shards/shard-000002.tar") == "shard-000002.tar" == shard_file_name(2)
