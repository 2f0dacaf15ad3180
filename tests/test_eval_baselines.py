"""The classical baseline: HOG features (scikit-image), laid out like a ViT's so every probe applies."""

from __future__ import annotations

import numpy as np

from paco_fr.eval.encoders import extract_features, resolve_encoder
from paco_fr.eval.feature_cache import encoder_fingerprint, features_for
from paco_fr.model.config import ModelConfig


def test_hog_descriptor_sizes_follow_the_crop_and_the_patch_grid():
    handle = resolve_encoder("hog", ModelConfig(img_size=112, patch_size=8))
    assert handle.label == "hog" and handle.model is None and handle.card["preset"] == "hog"
    images = np.random.default_rng(0).integers(0, 255, size=(2, 112, 112, 3), dtype=np.uint8)
    feats = extract_features(handle, images, ("cls", "mean", "patch", "grid"))
    # Dalal-Triggs at 112 px: 14 x 14 cells of 8 px, 13 x 13 blocks of 2 x 2 cells, 9 orientations
    assert feats["cls"].shape == (2, 13 * 13 * 4 * 9)
    assert feats["cls"] is feats["mean"] is feats["grid"]  # one global descriptor: one probe candidate
    # one block of 2 x 2 four-pixel cells per 8 px patch, on the 14 x 14 patch grid
    assert feats["patch"].shape == (2, 196, 36) and feats["patch"].dtype == np.float32


def test_hog_tokens_see_a_vertical_edge_where_it_is_and_as_a_horizontal_gradient():
    handle = resolve_encoder("hog", ModelConfig(img_size=32, patch_size=8))
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[:, :, 16:] = 255  # an edge between patch columns 1 and 2
    tokens = extract_features(handle, image, ("patch",))["patch"].reshape(4, 4, 4, 9)  # rows, cols, cells, bins
    assert np.abs(tokens[:, [0, 3]]).max() == 0            # far from the edge: no gradient at all
    assert (tokens[:, [1, 2]].sum(axis=(2, 3)) > 0).all()  # the patches on either side of it
    assert (tokens[:, [1, 2]].sum(axis=2).argmax(axis=-1) == 0).all()  # bin 0: gradient along x


def test_hog_features_are_cached_under_their_parameters(tmp_path):
    handle = resolve_encoder("hog", ModelConfig(img_size=32, patch_size=8))
    other = resolve_encoder("hog", ModelConfig(img_size=32, patch_size=4))
    assert encoder_fingerprint(handle) != encoder_fingerprint(other)
    images = np.random.default_rng(1).integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
    first, cached = features_for(handle, images, ("mean",), batch_size=8, cache_dir=tmp_path)
    assert not cached
    # patch blocks are computed when first asked for and added beside what is stored
    both, cached = features_for(handle, images, ("mean", "patch"), batch_size=8, cache_dir=tmp_path)
    again, cached_again = features_for(handle, images, ("mean", "patch"), batch_size=8, cache_dir=tmp_path)
    assert not cached and cached_again
    np.testing.assert_array_equal(both["mean"], first["mean"])
    np.testing.assert_array_equal(again["patch"], extract_features(handle, images, ("patch",))["patch"])
