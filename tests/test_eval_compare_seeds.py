"""`compare` with pre-training seeds as repeats: encoder folders of two presets, three seeds each (real
exported ViTs with model cards as pre-training writes them), evaluated for real, then one table with
mean +- sd per cell, the paired gain over random per seed and across seeds, and the seed verdicts."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from paco_fr.eval.compare import _gain_summary, compare
from paco_fr.eval.config import EvalConfig
from paco_fr.eval.stage import evaluate
from paco_fr.model.config import ModelConfig

torch.set_num_threads(1)

TINY = ModelConfig(encoder="vit_tiny_patch16_224", img_size=32, patch_size=8)
BENCHES = ("synthetic_expression", "synthetic_landmarks")
SEEDS = (0, 1, 2)


def _encoder(directory, preset: str, seed: int) -> None:
    import timm

    from paco_fr.model.export import save_encoder

    torch.manual_seed(100 * len(preset) + seed)
    vit = timm.create_model(TINY.encoder, pretrained=False, img_size=32, patch_size=8, num_classes=0)
    # what paco_fr.train.stage.model_card records: the preset and the config, seed included
    save_encoder(vit, directory, name=TINY.encoder, img_size=32, patch_size=8,
                 card={"preset": preset, "config": {"seed": seed}})


@pytest.fixture(scope="module")
def seeded_reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    cfg = EvalConfig(n_train=24, n_val=12, n_test=24, bootstrap=50, batch_size=32, cache_dir=str(root / "cache"),
                     l2_grid=[1e-3, 1e-1], ridge_grid=[1e-2, 1.0], lda_shrinkage=[0.3])
    for preset in ("paco_fr", "mae"):
        for seed in SEEDS:
            name = f"{preset}-s{seed}"  # the folder name is not what compare reads
            _encoder(root / "encoders" / name, preset, seed)
            for bench in BENCHES:
                evaluate(cfg, str(root / "encoders" / name), bench, root / "reports" / name / bench)
    for baseline in ("random", "hog"):
        for bench in BENCHES:
            evaluate(cfg, baseline, bench, root / "reports" / baseline / bench, model_cfg=TINY)
    return root


def _value(root, folder: str, bench: str) -> float:
    rep = json.loads((root / "reports" / folder / bench / "report.json").read_text())
    return rep["metrics"][rep["primary_metric"]]["value"]


@pytest.mark.slow
def test_seeds_are_repeats_of_one_row_with_mean_and_sd(seeded_reports):
    root = seeded_reports
    res = compare([root / "reports"], root / "summary")
    assert res.encoders == ["paco_fr", "mae", "random", "hog"] and res.n_reports == 16
    summary = json.loads(res.table_json.read_text())
    md = res.table_md.read_text()
    for preset in ("paco_fr", "mae"):
        for bench in BENCHES:
            values = [_value(root, f"{preset}-s{s}", bench) for s in SEEDS]
            cell = summary["cells"][f"{preset}|{bench}"]
            assert cell["n_seeds"] == 3 and cell["seeds"] == list(SEEDS) and cell["interval"] == "t over seeds"
            assert cell["value"] == pytest.approx(np.mean(values))
            assert cell["sd"] == pytest.approx(np.std(values, ddof=1))
            half = 4.303 * np.std(values, ddof=1) / math.sqrt(3)
            assert cell["ci_low"] == pytest.approx(np.mean(values) - half)
            assert f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f} (3 seeds)" in md
    one = summary["cells"]["random|synthetic_expression"]
    assert one["n_seeds"] == 1 and one["seeds"] == [1234] and one["interval"] == "bootstrap over test items"
    assert "- paco_fr: 0, 1, 2" in md and "- hog: none" in md


@pytest.mark.slow
def test_paired_gain_over_random_per_seed_and_the_seed_verdict(seeded_reports):
    root = seeded_reports
    summary = json.loads(compare([root / "reports"], root / "summary").table_json.read_text())
    for bench in BENCHES:
        rep = json.loads((root / "reports" / "random" / bench / "report.json").read_text())
        sign = 1 if rep["higher_is_better"] else -1
        gains = [sign * (_value(root, f"paco_fr-s{s}", bench) - _value(root, "random", bench)) for s in SEEDS]
        d = summary["paired_gain_over_random"]["paco_fr"][bench]
        assert [g["seed"] for g in d["per_seed"]] == list(SEEDS)  # random's one report pairs with every seed
        np.testing.assert_allclose([g["gain"] for g in d["per_seed"]], gains, atol=1e-12)
        assert d["gain"] == pytest.approx(np.mean(gains)) and d["sd"] == pytest.approx(np.std(gains, ddof=1))
        half = 4.303 * np.std(gains, ddof=1) / math.sqrt(3)
        assert d["better"] == (np.mean(gains) - half > 0) and d["worse"] == (np.mean(gains) + half < 0)
        # the difference to the full method pairs mae's seed s with paco_fr's seed s
        diffs = [sign * (_value(root, f"mae-s{s}", bench) - _value(root, f"paco_fr-s{s}", bench)) for s in SEEDS]
        m = summary["difference_to_paco_fr"]["mae"][bench]
        np.testing.assert_allclose([g["gain"] for g in m["per_seed"]], diffs, atol=1e-12)
        # hog has no seed: one paired bootstrap over test items
        h = summary["paired_gain_over_random"]["hog"][bench]
        assert h["n_seeds"] == 1 and h["basis"].startswith("paired bootstrap")


def test_seed_verdict_rule_by_hand():
    clear = _gain_summary([{"seed": s, "gain": g, "ci_low": 0, "ci_high": 0, "n": 10, "better": False,
                            "worse": False, "n_resamples": 10} for s, g in enumerate([0.02, 0.03, 0.025])])
    # mean 0.025, sd 0.005, half-width 4.303 * 0.005 / sqrt(3) = 0.0124: the interval excludes 0
    assert clear["gain"] == pytest.approx(0.025) and clear["sd"] == pytest.approx(0.005)
    assert clear["better"] and not clear["worse"] and clear["n_seeds"] == 3
    noisy = _gain_summary([{"seed": s, "gain": g, "ci_low": 0, "ci_high": 0, "n": 10, "better": True,
                            "worse": False, "n_resamples": 10} for s, g in enumerate([0.05, -0.01, 0.02])])
    # mean 0.02, sd 0.03, half-width 0.0745: within the seed-to-seed spread, whatever each seed's bootstrap said
    assert not noisy["better"] and not noisy["worse"]


@pytest.mark.slow
def test_a_repeated_seed_or_different_data_is_an_error(seeded_reports, tmp_path):
    root = seeded_reports
    copy = tmp_path / "copy" / "synthetic_expression"
    shutil.copytree(root / "reports" / "paco_fr-s1" / "synthetic_expression", copy)
    with pytest.raises(ValueError, match=r"two reports for encoder 'paco_fr' \(seed 1\) on 'synthetic_expression'"):
        compare([root / "reports", copy], tmp_path / "x")
    rep = json.loads((copy / "report.json").read_text())
    rep["encoder"]["seed"] = 7
    rep["data_version"] = "0" * 64
    (copy / "report.json").write_text(json.dumps(rep))
    with pytest.raises(ValueError, match="seeds of 'paco_fr' on 'synthetic_expression' were evaluated on different"):
        compare([root / "reports", copy], tmp_path / "y")


def test_the_comparison_names_reports_by_repository_path_so_clones_agree(seeded_reports, tmp_path):
    """compare.json is a DVC output: two clones of one repository must write the same bytes."""
    outputs = []
    for clone in ("a", "b"):
        repo = tmp_path / clone
        shutil.copytree(seeded_reports / "reports", repo / "data" / "reports")
        (repo / "dvc.yaml").write_text("stages: {}\n")
        res = compare([repo / "data" / "reports"], repo / "data" / "summary")
        outputs.append(res.table_json.read_bytes())
        assert str(tmp_path) not in outputs[-1].decode()
        assert all(p.startswith("data/reports/") for p in json.loads(outputs[-1])["reports"])
    assert outputs[0] == outputs[1]
