"""The registry and the embedded benchmarks: contents, splits, identities, caching."""

from __future__ import annotations

import numpy as np
import pytest

from paco_fr.eval import embedded, registry
from paco_fr.eval.build import BuildContext
from paco_fr.eval.data import TEST, TRAIN, VAL, BenchmarkData, BenchmarkDataError, load, save
from paco_fr.eval.materialise import materialise
from paco_fr.masks.regions_def import REGIONS


def small_ctx(tmp_path, **kw) -> BuildContext:
    base = dict(crop_size=32, zoom=0.8, n_train=16, n_val=8, n_test=16, seed=3, cache_dir=str(tmp_path))
    base.update(kw)
    return BuildContext(**base)


def test_registry_lists_every_required_benchmark():
    embedded_names = {"synthetic_attributes", "synthetic_expression", "synthetic_landmarks", "synthetic_parsing",
                      "synthetic_verification", "lfw_subset_faces"}
    assert embedded_names == set(registry.EMBEDDED)
    standard = {"celeba_attributes", "lfw_verification", "rafdb_expression", "300w_landmarks", "wflw_landmarks",
                "lapa_parsing", "celebamask_hq_parsing"}
    assert standard <= set(registry.REGISTRY)
    for name in embedded_names - {"lfw_subset_faces"}:
        assert registry.get(name).synthetic
    assert not registry.get("lfw_subset_faces").synthetic
    assert registry.get("wflw_landmarks").paper_name == "WFLW" and not registry.get("wflw_landmarks").higher_is_better
    assert registry.get("synthetic_parsing").primary_metric == "mean_f1"
    with pytest.raises(KeyError, match="unknown benchmark"):
        registry.get("imagenet")
    table = registry.describe()
    assert "lapa_parsing" in table and "--data-root" in table


def test_face_pool_is_shared_and_identities_are_disjoint_from_pretraining(tmp_path):
    ctx = small_ctx(tmp_path)
    attrs = embedded.build_synthetic_attributes(ctx)
    expr = embedded.build_synthetic_expression(ctx)
    pars = embedded.build_synthetic_parsing(ctx)
    land = embedded.build_synthetic_landmarks(ctx)
    assert np.array_equal(attrs.images, expr.images) and np.array_equal(attrs.images, land.images)
    assert np.array_equal(attrs.split, pars.split)
    assert attrs.counts() == {"train": 16, "val": 8, "test": 16}
    assert attrs.targets["attributes"].shape[1] == len(attrs.meta["attribute_names"])
    assert pars.meta["class_names"] == list(REGIONS)
    assert set(np.unique(pars.targets["label_map"])) <= set(range(len(REGIONS)))
    assert attrs.meta["identity_offset"] == embedded.SYNTHETIC_IDENTITY_OFFSET == 1_000_000
    # the pool was written to the cache folder and is read back identically
    embedded._POOLS.clear()
    again = embedded.build_synthetic_attributes(ctx)
    assert np.array_equal(again.images, attrs.images)
    assert any((tmp_path / embedded.POOL_NAME).iterdir())


def test_synthetic_landmarks_are_inside_the_crop_and_jittered(tmp_path):
    ctx = small_ctx(tmp_path)
    data = embedded.build_synthetic_landmarks(ctx)
    lm = data.targets["landmarks"]
    assert lm.shape == (40, 68, 2)
    inside = (lm > -2) & (lm < 34)
    assert inside.mean() > 0.95
    # 5-point alignment puts the outer eye corners at nearly fixed places; jitter spreads them
    spread = lm[:, 36].std(axis=0).mean()
    still = embedded.build_synthetic_landmarks(small_ctx(tmp_path, landmark_jitter=(0.0, 0.0, 0.0)))
    assert spread > 2 * still.targets["landmarks"][:, 36].std(axis=0).mean()


def test_synthetic_verification_pairs_and_identity_disjoint_splits(tmp_path):
    data = embedded.build_synthetic_verification(small_ctx(tmp_path))
    ident, split = data.targets["identity"], data.split
    assert ident.min() >= embedded.SYNTHETIC_IDENTITY_OFFSET
    for a, b in ((TRAIN, VAL), (TRAIN, TEST), (VAL, TEST)):
        assert not set(ident[split == a]) & set(ident[split == b])
    pairs, same, ps = data.targets["pairs"], data.targets["pair_same"], data.targets["pair_split"]
    np.testing.assert_array_equal(ident[pairs[:, 0]] == ident[pairs[:, 1]], same)
    np.testing.assert_array_equal(split[pairs[:, 0]], ps)
    np.testing.assert_array_equal(split[pairs[:, 1]], ps)
    for s in (TRAIN, VAL, TEST):
        assert same[ps == s].sum() == (~same[ps == s]).sum() > 0
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)


def test_lfw_subset_is_real_stratified_and_fixed(tmp_path):
    data = embedded.build_lfw_subset_faces(small_ctx(tmp_path))
    assert data.images.shape == (200, 32, 32, 3)
    for s, n in ((TRAIN, 100), (VAL, 40), (TEST, 60)):
        idx = data.indices(s)
        assert len(idx) == n and data.targets["label"][idx].mean() == 0.5
    again = embedded.build_lfw_subset_faces(small_ctx(tmp_path))
    np.testing.assert_array_equal(again.split, data.split)


def test_materialise_caches_with_a_content_version(tmp_path):
    bench = registry.get("lfw_subset_faces")
    ctx = small_ctx(tmp_path)
    data, version, folder, cached = materialise(bench, ctx, tmp_path / "cache")
    assert not cached and (folder / "data.npz").exists() and (folder / "meta.json").exists()
    data2, version2, folder2, cached2 = materialise(bench, ctx, tmp_path / "cache")
    assert cached2 and folder2 == folder and version2 == version == data2.version()
    np.testing.assert_array_equal(data2.images, data.images)
    # another crop size is another build
    _, version3, folder3, _ = materialise(bench, small_ctx(tmp_path, crop_size=48), tmp_path / "cache")
    assert folder3 != folder and version3 != version


def test_benchmark_data_rejects_inconsistent_arrays(tmp_path):
    imgs = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(BenchmarkDataError, match="needs targets"):
        BenchmarkData(task="expression", images=imgs, split=np.zeros(3, np.int8), targets={})
    with pytest.raises(BenchmarkDataError, match="has 2 items"):
        BenchmarkData(task="expression", images=imgs, split=np.zeros(3, np.int8), targets={"label": np.zeros(2)})
    with pytest.raises(BenchmarkDataError, match="pairs must be"):
        BenchmarkData(task="verification", images=imgs, split=np.zeros(3, np.int8),
                      targets={"identity": np.zeros(3), "pairs": np.array([[0, 5]]), "pair_same": np.ones(1, bool),
                               "pair_split": np.zeros(1, np.int8)})
    with pytest.raises(BenchmarkDataError, match="not a materialised benchmark"):
        load(tmp_path)
    ok = BenchmarkData(task="expression", images=imgs, split=np.zeros(3, np.int8), targets={"label": np.arange(3)})
    save(ok, tmp_path / "b", {})
    loaded, version = load(tmp_path / "b")
    assert version == ok.version() and np.array_equal(loaded.targets["label"], np.arange(3))
