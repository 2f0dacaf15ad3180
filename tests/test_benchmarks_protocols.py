"""Every named benchmark protocol end to end through `paco-fr evaluate --data-root` on a tiny fixture
in the dataset's official layout, then `paco-fr compare` over all of them: protocol ids in every
report and in the table, published numbers only beside the protocol they were measured under."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark_fixtures import (write_300w, write_celeba, write_celebamask, write_lapa, write_lfw, write_rafdb,
                                write_wflw)
from paco_fr.eval import benchmark_protocols as BP
from paco_fr.eval import registry
from paco_fr.eval.paired import load_items

DATASETS = {  # fixture folder -> (writer, benchmarks read from it)
    "celeba": (write_celeba, ("celeba_attributes",)),
    "lfw": (write_lfw, ("lfw_verification",)),
    "rafdb": (write_rafdb, ("rafdb_expression",)),
    "300w": (lambda root: write_300w(root, extra_train=4), ("300w_landmarks", "300w_landmarks_aligned")),
    "wflw": (lambda root: write_wflw(root, n_train=6, n_test=2), ("wflw_landmarks", "wflw_landmarks_aligned")),
    "lapa": (write_lapa, ("lapa_parsing", "lapa_parsing_regions")),
    "celebamask": (write_celebamask, ("celebamask_hq_parsing", "celebamask_hq_parsing_regions")),
}
SETS = ["--set", "model.img_size=32", "--set", "eval.bootstrap=20", "--set", "eval.l2_grid=[0.01]",
        "--set", "eval.ridge_grid=[0.01, 1.0]", "--set", "eval.lda_shrinkage=[0.3]"]


@pytest.fixture(scope="module")
def protocol_reports(tmp_path_factory):
    from paco_fr.cli import main

    root = tmp_path_factory.mktemp("protocols")
    for name, (write, benches) in DATASETS.items():
        data_root = root / "data" / name
        data_root.mkdir(parents=True)
        write(data_root)
        code = main(["evaluate", "--encoder", "random", "--benchmark", "all", "--data-root", str(data_root),
                     "--out", str(root / "reports" / "random"), *SETS, "--set", f"eval.cache_dir={root / 'cache'}",
                     "--set", f"eval.benchmarks=[{', '.join(benches)}]"])
        assert code == 0, name
    return root


def _report(root, bench: str) -> dict:
    return json.loads((root / "reports" / "random" / bench / "report.json").read_text())


@pytest.mark.slow
def test_every_standard_adapter_runs_under_its_named_protocol(protocol_reports):
    root = protocol_reports
    every = [b for _, benches in DATASETS.values() for b in benches]
    assert set(every) == {b.name for b in registry.REGISTRY.values() if b.needs_data_root}
    for bench in every:
        rep = _report(root, bench)
        expected = registry.get(bench).protocol
        assert rep["benchmark_protocol"]["key"] == expected.key and rep["benchmark_protocol"]["version"] == 1
        assert rep["benchmark_protocol"]["full_test_split"] is True, bench  # tiny fixtures: nothing capped
        assert rep["primary_metric"] == expected.primary
        assert np.isfinite(rep["metrics"][rep["primary_metric"]]["value"]), bench
        md = (root / "reports" / "random" / bench / "report.md").read_text()
        assert expected.key in md and ("(standard)" in md) == expected.standard, bench


@pytest.mark.slow
def test_protocol_specific_metrics(protocol_reports):
    root = protocol_reports
    # LFW: 10-fold accuracy, mean and sd over the folds; each fold here has one matched and one mismatched pair
    lfw = _report(root, "lfw_verification")
    acc = lfw["metrics"]["accuracy"]
    assert len(acc["per_fold"]) == 10 and set(acc["per_fold"]) <= {0.0, 0.5, 1.0}
    assert acc["value"] == pytest.approx(np.mean(acc["per_fold"])) and acc["sd"] == pytest.approx(
        np.std(acc["per_fold"], ddof=1))
    assert len(lfw["protocol"]["chosen"]["per_fold"]) == 10 and "roc_auc" in lfw["metrics"]
    items = load_items(root / "reports" / "random" / "lfw_verification")
    assert items["values"].mean() == pytest.approx(acc["value"])  # equal folds: pooled = mean over folds
    # 300W / WFLW: subsets, box crop vs ground-truth alignment
    w300 = _report(root, "300w_landmarks")
    assert {"nme/common", "nme/challenging"} <= set(w300["metrics"])
    assert w300["data"]["meta"]["alignment"].startswith("box crop")
    assert _report(root, "300w_landmarks_aligned")["data"]["meta"]["alignment"] == "5-point + jitter"
    assert {"nme/pose", "nme/expression"} <= set(_report(root, "wflw_landmarks")["metrics"])
    # parsing: the datasets' own classes, counted on the original label maps
    lapa = _report(root, "lapa_parsing")
    assert "f1/inner_mouth" in lapa["metrics"] and "mean_f1@crop" in lapa["metrics"]
    assert lapa["details"]["excluded_from_mean"] == ["background"]
    assert np.sum(lapa["details"]["confusion_matrix"]) == 96 * 96  # the test image's own pixels, not the crop's
    hq = _report(root, "celebamask_hq_parsing")
    assert len(hq["details"]["class_names"]) == 19 and "f1/eye_g" in hq["metrics"]
    assert np.sum(hq["details"]["confusion_matrix"]) == 64 * 64  # the mask grid
    regions = _report(root, "lapa_parsing_regions")
    assert np.sum(regions["details"]["confusion_matrix"]) == 32 * 32 and "f1/head_other" in regions["metrics"]


@pytest.mark.slow
def test_compare_lists_protocols_and_prints_published_numbers_only_under_the_same_protocol(protocol_reports):
    from paco_fr.cli import main

    root = protocol_reports
    assert main(["compare", "--reports", str(root / "reports"), "--out", str(root / "summary")]) == 0
    md = (root / "summary" / "compare.md").read_text()
    summary = json.loads((root / "summary" / "compare.json").read_text())
    for _, benches in DATASETS.values():
        for bench in benches:
            assert f"`{registry.get(bench).protocol.key}`" in md
    header = next(line for line in md.splitlines() if line.startswith("| encoder |"))
    columns = [c.strip().split(" ")[0].rstrip("*") for c in header.strip("|").split("|")][1:]
    farl = [c.strip() for c in next(line for line in md.splitlines()
                                     if line.startswith("| FaRL (reported")).strip("|").split("|")][1:]
    by_column = dict(zip(columns, farl))
    assert by_column["300w_landmarks"] == "2.93" and by_column["wflw_landmarks"] == "3.96"
    assert by_column["lapa_parsing"] == "93.88" and by_column["celebamask_hq_parsing"] == "89.56"
    assert by_column["celeba_attributes"] == "91.88†" and by_column["rafdb_expression"] == "88.31†"
    for ours in ("300w_landmarks_aligned", "wflw_landmarks_aligned", "lapa_parsing_regions",
                 "celebamask_hq_parsing_regions", "lfw_verification"):
        assert by_column[ours] == "—", ours
    assert summary["reported"]["lapa_parsing"]["MCF"]["value"] == 93.96
    assert summary["columns"]["300w_landmarks"]["protocol_key"] == BP.W300_BOX.key


@pytest.mark.slow
def test_a_subsampled_test_split_hides_published_numbers(protocol_reports, tmp_path):
    from paco_fr.cli import main
    from paco_fr.eval.compare import compare

    data_root = protocol_reports / "data" / "300w"
    sets = [*SETS, "--set", f"eval.cache_dir={tmp_path / 'cache'}", "--set", "eval.n_test=1"]
    assert main(["evaluate", "--encoder", "random", "--benchmark", "300w_landmarks", "--data-root",
                 str(data_root), "--out", str(tmp_path / "r" / "300w_landmarks"), *sets]) == 0
    md = compare([tmp_path / "r"], tmp_path / "s").table_md.read_text()
    assert "— (test subsampled)" in md and "2.93" not in md
    assert "**test split subsampled**" in (tmp_path / "r" / "300w_landmarks" / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("probe,bench", [("knn", "lfw_verification"), ("finetune", "lfw_verification"),
                                         ("finetune", "lapa_parsing"), ("knn", "celebamask_hq_parsing")])
def test_other_probes_under_the_standard_protocols(protocol_reports, tmp_path, probe, bench):
    from paco_fr.eval.config import EvalConfig
    from paco_fr.eval.stage import evaluate
    from paco_fr.model.config import ModelConfig

    folder = {"lfw_verification": "lfw", "lapa_parsing": "lapa", "celebamask_hq_parsing": "celebamask"}[bench]
    cfg = EvalConfig(protocol=probe, bootstrap=20, cache_dir=str(protocol_reports / "cache"), lda_shrinkage=[0.3],
                     knn_k=[1, 3], ridge_grid=[0.01, 1.0], finetune_epochs=2, finetune_batch_size=8)
    res = evaluate(cfg, "random", bench, tmp_path / bench, data_root=str(protocol_reports / "data" / folder),
                   model_cfg=ModelConfig(img_size=32))
    rep = json.loads(res.report_json.read_text())
    assert np.isfinite(res.primary["value"]) and rep["benchmark_protocol"]["key"] == registry.get(bench).protocol.key
    if bench == "lfw_verification":
        assert len(rep["metrics"]["accuracy"]["per_fold"]) == 10
        if probe == "finetune":  # ten fine-tunings are not run: the folds use the linear probe, and say so
            assert rep["protocol"]["name"] == "linear" and rep["protocol"]["requested"] == "finetune"
    else:  # the probe's class scores are warped back to the original label grid
        assert np.sum(rep["details"]["confusion_matrix"]) == (96 * 96 if bench == "lapa_parsing" else 64 * 64)
