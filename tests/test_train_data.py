"""Streaming corpus + regions into batches: pairing, splits, determinism, workers, ranks, resume,
augmentations that keep the region map consistent, and clear errors for bad data."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from paco_fr.masks import FLIP_PERMUTATION, REGIONS
from paco_fr.train.augment import AugmentParams, augment_pair, region_centroids
from paco_fr.train.data import (DataError, FaceRegionStream, StreamSpec, make_loader, read_split, regions_file_name,
                                shard_file_name)
from paco_fr.train.toydata import write_toy_corpus

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_corpus(root / "corpus", root / "regions", n_faces=40, size=32, shard_size=16, seed=3)


def spec_for(corpus, **kw) -> StreamSpec:
    corpus_dir, regions_dir = corpus
    args = dict(corpus_dir=str(corpus_dir), regions_dir=str(regions_dir),
                faces=tuple(read_split(corpus_dir, kw.pop("split", "train"))), img_size=32, patch_size=8,
                batch_size=4, seed=7, mask_strategy="structured", mask_ratio=0.75, replace_ratio=0.25,
                augment=AugmentParams())
    args.update(kw)
    return StreamSpec(**args)


def take(dataset, n, workers=0):
    out = []
    for batch in make_loader(dataset, workers, seed=0):
        out.append(batch)
        if len(out) == n:
            break
    return out


def read_member(path, name) -> np.ndarray:
    with tarfile.open(path) as tar:
        return np.array(Image.open(io.BytesIO(tar.extractfile(name).read())))


def test_reads_only_the_split_and_pairs_crop_with_region_map(corpus):
    corpus_dir, regions_dir = corpus
    train, val, test = (read_split(corpus_dir, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (32, 4, 4)
    assert not {f.face_id for f in train} & {f.face_id for f in val + test}
    spec = spec_for(corpus, augment=None, shuffle=False)
    batch = next(iter(FaceRegionStream(spec, epochs=1)))
    assert batch["images"].shape == (4, 3, 32, 32) and batch["images"].dtype == torch.uint8
    for i, idx in enumerate(batch["face_index"].tolist()):
        face = spec.faces[idx]
        image = read_member(corpus_dir / "shards" / face.shard, f"{face.face_id}.png")
        labels = read_member(regions_dir / regions_file_name(face.shard), f"{face.face_id}.png")
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


def test_epoch_covers_each_face_once_and_order_depends_on_epoch(corpus):
    spec = spec_for(corpus)
    batches = take(FaceRegionStream(spec), 16)  # two epochs of 8 batches
    first = torch.cat([b["face_index"] for b in batches[:8]]).tolist()
    second = torch.cat([b["face_index"] for b in batches[8:]]).tolist()
    assert sorted(first) == list(range(32)) == sorted(second)
    assert first != second
    assert [int(b["epoch"]) for b in batches] == [0] * 8 + [1] * 8
    # Faces of one shard come together (streaming shard by shard).
    shards = [spec.faces[i].shard for i in first]
    assert sum(a != b for a, b in zip(shards, shards[1:])) == 1


def test_stream_is_the_same_with_any_number_of_workers(corpus):
    spec = spec_for(corpus)
    single = take(FaceRegionStream(spec), 6, workers=0)
    multi = take(FaceRegionStream(spec), 6, workers=2)
    for a, b in zip(single, multi):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_resume_skips_to_any_batch(corpus):
    spec = spec_for(corpus)
    full = take(FaceRegionStream(spec), 11)
    resumed = take(FaceRegionStream(spec, start_epoch=1, start_batch=1), 2)
    for a, b in zip(full[9:], resumed):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_two_ranks_with_half_batches_see_the_one_rank_batch(corpus):
    one = take(FaceRegionStream(spec_for(corpus)), 3)
    ranks = [take(FaceRegionStream(spec_for(corpus, batch_size=2, rank=r, world_size=2)), 3) for r in (0, 1)]
    for j in range(3):
        merged = {int(i): (ranks[r][j], k) for r in (0, 1) for k, i in enumerate(ranks[r][j]["face_index"])}
        assert sorted(merged) == sorted(one[j]["face_index"].tolist())
        for k, idx in enumerate(one[j]["face_index"].tolist()):
            rank_batch, pos = merged[idx]
            for key in ("images", "labels", "mask", "replaced"):
                assert torch.equal(one[j][key][k], rank_batch[key][pos]), key


def test_hflip_mirrors_image_and_swaps_left_right_labels(corpus):
    corpus_dir, regions_dir = corpus
    face = read_split(corpus_dir, "train")[0]
    image = torch.from_numpy(read_member(corpus_dir / "shards" / face.shard, f"{face.face_id}.png")).permute(2, 0, 1)
    labels = torch.from_numpy(read_member(regions_dir / regions_file_name(face.shard), f"{face.face_id}.png"))
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
        same = (torch.nn.functional.max_pool2d(padded, 3, 1) == -torch.nn.functional.max_pool2d(-padded, 3, 1))[0, 0]
        assert same.float().mean() > 0.8 and agree[same].all()
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


def test_bad_data_gives_clear_errors(corpus, tmp_path):
    corpus_dir, regions_dir = corpus
    with pytest.raises(DataError, match="manifest.parquet is missing"):
        read_split(tmp_path, "train")
    spec = spec_for(corpus, regions_dir=str(tmp_path))
    with pytest.raises(DataError, match="missing shard .*regions-000000.tar"):
        next(iter(FaceRegionStream(spec)))
    # A region tar that lacks one face.
    broken = tmp_path / "regions"
    broken.mkdir()
    faces = read_split(corpus_dir, "train")
    for src in regions_dir.glob("regions-*.tar"):
        with tarfile.open(src) as tin, tarfile.open(broken / src.name, "w") as tout:
            for m in tin.getmembers():
                if m.name != f"{faces[0].face_id}.png":
                    tout.addfile(m, tin.extractfile(m))
    spec = spec_for(corpus, regions_dir=str(broken), shuffle=False)
    with pytest.raises(DataError, match=f"face {faces[0].face_id} has no region map"):
        next(iter(FaceRegionStream(spec)))
    with pytest.raises(DataError, match="do not fill one batch"):
        FaceRegionStream(spec_for(corpus, batch_size=100))
    assert shard_file_name("shards/shard-000002.tar") == "shard-000002.tar" == shard_file_name(2)
