"""Near duplicates on real transformed images: re-encoded, mode-converted, resized, cropped and
brightened copies are caught; distinct faces are kept apart."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from curation_testdata import copy_transforms, encode, gt_record, photo, synthetic_faces, transformed_record
from paco_fr.config import apply_overrides
from paco_fr.data.config import CurationConfig
from paco_fr.data.curate import curate
from paco_fr.data.dedup import face_hash, hamming_hex, image_hash


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Procedural originals (ground truth) and photos (MediaPipe), each with its five copies."""
    src = tmp_path_factory.mktemp("neardup") / "src"
    src.mkdir()
    faces = synthetic_faces(40, seed=23)
    copies = {}
    for i, face in enumerate(faces):
        (src / f"a_face{i:02d}.png").write_bytes(encode(face.image))
        record = gt_record(face)
        (src / f"a_face{i:02d}.gt.json").write_text(json.dumps(record))
        if i >= 6:
            continue
        for name, (image, scale, offset) in copy_transforms(face.image).items():
            stem = f"b_face{i:02d}_{name}"
            (src / f"{stem}.png").write_bytes(encode(image))
            (src / f"{stem}.gt.json").write_text(json.dumps(transformed_record(record, scale, offset)))
            copies[f"{stem}.png"] = name
    for name in ("astronaut", "grace_hopper"):
        (src / f"a_{name}.png").write_bytes(encode(photo(name)))
        for kind, (image, _, _) in copy_transforms(photo(name)).items():
            if kind != "cropped_2pct":  # re-detected landmarks move: see test_photo_crops below
                (src / f"b_{name}_{kind}.png").write_bytes(encode(image))
                copies[f"b_{name}_{kind}.png"] = kind
    out = src.parent / "corpus"
    curate(apply_overrides(CurationConfig(), ["chunk_inputs=16"]), src, out, workers=2, progress=False)
    return {"rejected": pd.read_parquet(out / "rejected.parquet").set_index("source_path"),
            "manifest": pd.read_parquet(out / "manifest.parquet"), "copies": copies}


@pytest.mark.slow
def test_every_copy_is_a_near_duplicate_of_its_original(corpus):
    rejected = corpus["rejected"]
    missed = {path: kind for path, kind in corpus["copies"].items()
              if path not in rejected.index or rejected.loc[path, "reason"] != "near_duplicate"}
    assert not missed, missed
    detail = rejected.loc["b_face00_cropped_2pct.png", "detail"]
    assert "a_face00.png" in detail, "the detail names the face it duplicates"


@pytest.mark.slow
def test_distinct_faces_are_all_kept(corpus):
    kept = set(corpus["manifest"]["source_path"])
    originals = {f"a_face{i:02d}.png" for i in range(40)} | {"a_astronaut.png", "a_grace_hopper.png"}
    assert originals <= kept, sorted(originals - kept)


def test_hashes_separate_copies_from_other_faces():
    faces = synthetic_faces(40, seed=23)
    from paco_fr.data.align import align_face

    crops = [align_face(f.image, f.keypoints5, 112, 0.8).crop for f in faces]
    hashes = [face_hash(c) for c in crops]
    distinct = [hamming_hex(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(distinct) > CurationConfig().near_duplicate.face_bits
    images = [image_hash(f.image) for f in faces]
    assert min(hamming_hex(a, b) for i, a in enumerate(images) for b in images[i + 1:]) > \
        CurationConfig().near_duplicate.image_bits
    jpeg = np.asarray(copy_transforms(faces[0].image)["jpeg_q50"][0])
    assert hamming_hex(image_hash(jpeg), images[0]) <= CurationConfig().near_duplicate.image_bits
