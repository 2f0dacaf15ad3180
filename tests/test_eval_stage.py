"""The evaluate and compare stages end to end: real timm encoders (tiny inputs), real synthetic and
scikit-image data, real plots; and the CLI with its provenance records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from paco_fr.eval.compare import compare
from paco_fr.eval.config import EvalConfig
from paco_fr.eval.encoders import extract_features, resolve_encoder
from paco_fr.eval.stage import evaluate
from paco_fr.model.config import ModelConfig

torch.set_num_threads(1)

TINY = ModelConfig(encoder="vit_tiny_patch16_224", img_size=32, patch_size=8)
EMBEDDED = ("synthetic_attributes", "synthetic_expression", "synthetic_landmarks", "synthetic_parsing",
            "synthetic_verification", "lfw_subset_faces")


def small_cfg(cache: Path, **kw) -> EvalConfig:
    base = dict(n_train=24, n_val=12, n_test=24, bootstrap=50, batch_size=32, cache_dir=str(cache),
                l2_grid=[1e-3, 1e-1], ridge_grid=[1e-2, 1.0], knn_k=[1, 5], lda_shrinkage=[0.3])
    base.update(kw)
    return EvalConfig(**base)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    cfg = small_cfg(root / "cache")
    out = {}
    for enc in ("random", "pixels", "hog"):
        for bench in EMBEDDED:
            out[(enc, bench)] = evaluate(cfg, enc, bench, root / "reports" / enc / bench, model_cfg=TINY)
    return root, out


def test_every_embedded_benchmark_writes_a_complete_report(reports):
    root, results = reports
    expected_plot = {"synthetic_attributes": "attributes.png", "synthetic_expression": "confusion.png",
                     "synthetic_landmarks": "ced.png", "synthetic_parsing": "parsing_examples.png",
                     "synthetic_verification": "roc.png", "lfw_subset_faces": "confusion.png"}
    for (enc, bench), res in results.items():
        rep = json.loads(res.report_json.read_text())
        assert rep["benchmark"] == bench and rep["encoder_label"] == enc
        assert rep["synthetic"] == (bench != "lfw_subset_faces")
        assert rep["data_version"] == res.data_version and len(rep["data_version"]) == 64
        assert rep["model_card"]["encoder"]["img_size"] == 32
        assert rep["encoder"] == {"name": enc, "preset": enc, "seed": 1234 if enc == "random" else None,
                                  "kind": "vit" if enc == "random" else enc}
        key = rep["benchmark_protocol"]["key"]
        assert key.endswith(" v1") and not rep["benchmark_protocol"]["standard"] and key in res.report_md.read_text()
        primary = rep["metrics"][rep["primary_metric"]]
        assert primary["ci_low"] <= primary["value"] <= primary["ci_high"] and primary["n"] > 0
        assert rep["protocol"]["refit_on"] == "train+val" and rep["protocol"]["val_scores"]
        assert expected_plot[bench] in rep["plots"] and (res.out_dir / expected_plot[bench]).stat().st_size > 1000
        md = res.report_md.read_text()
        assert rep["primary_metric"] in md and "95 % CI" in md
        assert not list(res.out_dir.parent.glob(".*.tmp")), "no temporary folders left behind"
    land = json.loads(results[("random", "synthetic_landmarks")].report_json.read_text())
    assert {"nme", "failure_rate@0.10", "auc@0.10"} <= set(land["metrics"]) and not land["higher_is_better"]
    ver = json.loads(results[("random", "synthetic_verification")].report_json.read_text())
    assert {"roc_auc", "tar@far=1e-2"} <= set(ver["metrics"])
    pars = json.loads(results[("random", "synthetic_parsing")].report_json.read_text())
    assert "f1/background" in pars["metrics"] and pars["details"]["excluded_from_mean"] == ["background"]


def test_same_benchmark_same_data_for_every_encoder_and_pool_shared(reports):
    _, results = reports
    for bench in EMBEDDED:
        assert results[("random", bench)].data_version == results[("pixels", bench)].data_version
        assert results[("hog", bench)].data_version == results[("pixels", bench)].data_version
    a = results[("random", "synthetic_attributes")].run
    e = results[("random", "synthetic_expression")].run
    assert e["timing"]["features_from_cache"] and not a["timing"]["features_from_cache"]


def test_evaluation_is_deterministic(reports, tmp_path):
    root, results = reports
    cfg = small_cfg(root / "cache")
    again = evaluate(cfg, "random", "synthetic_expression", tmp_path / "again", model_cfg=TINY)
    first = json.loads(results[("random", "synthetic_expression")].report_json.read_text())
    assert json.loads(again.report_json.read_text())["metrics"] == first["metrics"]


def test_trained_encoder_directory_and_random_dir_spec(tmp_path):
    import timm

    from paco_fr.model.export import save_encoder

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=0)
    enc_dir = tmp_path / "enc"
    save_encoder(vit, enc_dir, name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                 card={"preset": "mae", "config": {"seed": 3, "curation": {"template_zoom": 0.7}}})
    handle = resolve_encoder(str(enc_dir))
    assert handle.label == "mae" and handle.source_dir == str(enc_dir)
    rnd = resolve_encoder(f"random:{enc_dir}", seed=5)
    assert rnd.label == "random" and rnd.card["encoder"]["img_size"] == 32
    same = resolve_encoder(f"random:{enc_dir}", seed=5)
    for (k, a), (_, b) in zip(rnd.model.state_dict().items(), same.model.state_dict().items()):
        assert torch.equal(a, b), k
    images = np.random.default_rng(0).integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
    feats = extract_features(handle, images, ("cls", "mean", "patch"))
    assert feats["cls"].shape == (3, 192) and feats["patch"].shape == (3, 16, 192)
    np.testing.assert_allclose(feats["mean"], feats["patch"].mean(1), atol=1e-5)
    res = evaluate(small_cfg(tmp_path / "cache"), str(enc_dir), "lfw_subset_faces", tmp_path / "rep")
    rep = json.loads(res.report_json.read_text())
    assert rep["encoder_label"] == "mae" and rep["data"]["zoom"] == 0.7
    assert rep["encoder"] == {"name": "enc", "preset": "mae", "seed": 3, "kind": "vit"}
    assert rep["data"]["zoom_source"] == "encoder model card" and res.encoder_dir == enc_dir


def test_compare_builds_one_table_with_reported_numbers(reports, tmp_path):
    root, results = reports
    # A report on a paper benchmark (CelebA), as the standard adapter would write it.
    fake = tmp_path / "fake" / "celeba"
    fake.mkdir(parents=True)
    from paco_fr.eval import benchmark_protocols as BP

    rep = json.loads(results[("random", "synthetic_attributes")].report_json.read_text())
    rep.update(benchmark="celeba_attributes", synthetic=False, paper_name="CelebA",
               benchmark_protocol={**BP.CELEBA.as_dict(), "full_test_split": True})
    (fake / "report.json").write_text(json.dumps(rep))
    res = compare([root / "reports", fake], tmp_path / "summary")
    assert res.encoders == ["random", "pixels", "hog"] and res.n_reports == 19
    assert res.benchmarks[:6] == list(EMBEDDED) and "celeba_attributes" in res.benchmarks
    md = res.table_md.read_text()
    assert "synthetic_parsing*" in md and "lfw_subset_faces (" in md
    assert "FaRL (reported, ViT-B/16 scale)" in md and "91.88†" in md and "91.33†" in md  # FaRL's, MCF's CelebA
    paco_row = next(line for line in md.splitlines() if line.startswith("| PaCo-FR (reported"))
    assert "n/a" in paco_row
    # every column's protocol is listed; published numbers only in the CelebA column
    for line in md.splitlines():
        if line.startswith("| FaRL (reported"):
            assert line.count("—") == len(EMBEDDED)
    assert "`celeba/official-test/mean-acc-40 v1` | standard | yes" in md
    assert "`synthetic/parsing-9/f1-crop v1` | ours" in md
    assert "Against random initialisation" in md and "| no image features (prior) |" in md
    rows = list(csv.reader(res.table_csv.open()))
    assert rows[0][0] == "encoder" and rows[2][0] == "# protocol" and [r[0] for r in rows[3:6]] == ["random", "pixels", "hog"]
    assert res.table_png.stat().st_size > 5000
    summary = json.loads(res.table_json.read_text())
    assert set(summary["beats_random_non_overlapping_ci"]["pixels"]) == set(EMBEDDED)  # where both ran
    # Paired gains: on every embedded benchmark, equal to the difference of the two reports' primary
    # metrics (oriented: positive = better), with an interval around it.
    paired_gains = summary["paired_gain_over_random"]["pixels"]
    assert set(paired_gains) == set(EMBEDDED) and "Paired gain over random initialisation" in md
    for bench, gain in paired_gains.items():
        mine = json.loads(results[("pixels", bench)].report_json.read_text())
        theirs = json.loads(results[("random", bench)].report_json.read_text())
        metric = mine["primary_metric"]
        sign = 1 if mine["higher_is_better"] else -1
        expected = sign * (mine["metrics"][metric]["value"] - theirs["metrics"][metric]["value"])
        assert gain["gain"] == pytest.approx(expected, abs=1e-9), bench
        assert gain["ci_low"] <= gain["gain"] + 1e-9 and gain["gain"] <= gain["ci_high"] + 1e-9, bench
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(results[("random", "synthetic_attributes")].out_dir, copy)
    with pytest.raises(ValueError, match=r"two reports for encoder 'random' \(seed 1234\) on 'synthetic_attributes'"):
        compare([root / "reports", copy], tmp_path / "x")


def test_compare_without_reports_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no report.json"):
        compare([tmp_path], tmp_path / "out")


def test_cli_evaluate_list_compare_and_provenance(tmp_path, capsys, monkeypatch):
    from paco_fr.cli import main
    from paco_fr.lineage import read_provenance

    assert main(["evaluate", "--list"]) == 0
    assert "synthetic_landmarks" in capsys.readouterr().out
    assert main(["evaluate", "--encoder", "random"]) == 2
    sets = ["--set", f"eval.cache_dir={tmp_path / 'cache'}", "--set", "eval.n_train=16", "--set", "eval.n_val=8",
            "--set", "eval.n_test=16", "--set", "eval.bootstrap=20", "--set", "model.img_size=32",
            "--set", "eval.benchmarks=[lfw_subset_faces, synthetic_expression]"]
    out = tmp_path / "reports" / "random"
    assert main(["evaluate", "--encoder", "random", "--benchmark", "all", "--out", str(out), *sets]) == 0
    for bench in ("lfw_subset_faces", "synthetic_expression"):
        prov = read_provenance(out / bench)
        assert prov["stage"] == "evaluate" and "benchmark_data" in prov["inputs"] and "encoder" not in prov["inputs"]
        assert prov["params"]["n_train"] == 16 and "eval.n_train=16" in prov["overrides"]
    assert main(["evaluate", "--encoder", "random", "--benchmark", "nope", "--out", str(tmp_path / "n"), *sets]) == 2
    assert main(["evaluate", "--encoder", "random", "--benchmark", "lapa_parsing", "--out", str(tmp_path / "l"),
                 *sets]) == 1
    assert "--data-root" in capsys.readouterr().err
    assert main(["compare", "--reports", str(tmp_path / "reports"), "--out", str(tmp_path / "summary"), *sets]) == 0
    assert (tmp_path / "summary" / "compare.md").exists()
    prov = read_provenance(tmp_path / "summary")
    assert prov["stage"] == "compare" and len(prov["inputs"]) == 2


@pytest.mark.parametrize("protocol,bench", [
    ("knn", "synthetic_attributes"), ("knn", "synthetic_landmarks"), ("knn", "synthetic_verification"),
    ("finetune", "synthetic_landmarks"), ("finetune", "synthetic_parsing"), ("finetune", "synthetic_verification"),
])
def test_other_protocols_run_end_to_end(reports, tmp_path, protocol, bench):
    root, _ = reports
    cfg = small_cfg(root / "cache", protocol=protocol, finetune_epochs=2, finetune_batch_size=16)
    res = evaluate(cfg, "random", bench, tmp_path / "rep", model_cfg=TINY)
    rep = json.loads(res.report_json.read_text())
    assert rep["protocol"]["name"] == protocol
    primary = rep["metrics"][rep["primary_metric"]]
    assert primary["value"] is not None and np.isfinite(primary["value"])
    if protocol == "finetune":
        assert rep["protocol"]["chosen"]["epoch"] in (1, 2) and len(rep["protocol"]["val_scores"]) == 2


def test_finetune_with_a_trainable_encoder_leaves_the_original_untouched(reports, tmp_path):
    root, _ = reports
    from paco_fr.eval.protocols import run
    from paco_fr.eval.stage import protocol_settings
    from paco_fr.eval import registry
    from paco_fr.eval.materialise import materialise
    from paco_fr.eval.stage import build_context

    handle = resolve_encoder("random", TINY, seed=0)
    before = {k: v.clone() for k, v in handle.model.state_dict().items()}
    cfg = small_cfg(root / "cache", protocol="finetune", finetune_epochs=1, finetune_encoder_lr=1e-4,
                    finetune_batch_size=16)
    data, *_ = materialise(registry.get("synthetic_expression"), build_context(cfg, 32, 0.8, None), cfg.cache_dir)
    feats = extract_features(handle, data.images, ("cls", "mean"))
    out = run(data, feats, protocol_settings(cfg), patch_size=8, encoder=handle.model)
    assert out.protocol["chosen"]["encoder"] == "trained" and out.protocol["chosen"]["encoder_lr"] == 1e-4
    assert len(out.predictions["label"]) == len(data.indices(2))
    for k, v in handle.model.state_dict().items():
        assert torch.equal(v, before[k]), k
