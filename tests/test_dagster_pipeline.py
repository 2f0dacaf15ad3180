"""The whole asset graph materialised in-process with Dagster on tiny settings, through DVC, with the
real stages (MediaPipe, GX, torch training through the local Pipes launcher, evaluation, compare)."""

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.assets import (benchmark_summary, eval_report, face_corpus, face_regions,
                                    pretrained_encoder, raw_faces)
from dagster_project.checks import corpus_expectations, regions_expectations
from dagster_project.resources import (DvcResource, LocalTrainingLauncher, ParamsOverrides, PathsResource,
                                       WandbResource)
from paco_fr.audit import find_uses, lineage_chain
from tiny_repo import make_tiny_repo, write_raw

pytestmark = pytest.mark.slow


def _resources(repo: Path, overrides: ParamsOverrides | None = None) -> dict:
    return {"paths": PathsResource(repo_root=str(repo)), "dvc": DvcResource(repo_root=str(repo)),
            "overrides": overrides or ParamsOverrides(), "wandb": WandbResource(),
            "training_launcher": LocalTrainingLauncher(repo_root=str(repo))}


def test_full_graph_materialises_through_dvc_and_records_lineage(tmp_path, monkeypatch):
    repo = make_tiny_repo(tmp_path / "repo")
    write_raw(repo)
    monkeypatch.chdir(repo)
    resources = _resources(repo, ParamsOverrides(epochs=1))
    with dg.instance_for_test() as instance:
        upstream = dg.materialize(
            [raw_faces, face_corpus, face_regions, pretrained_encoder, corpus_expectations, regions_expectations],
            resources=resources, instance=instance,
            selection=[face_corpus, face_regions, pretrained_encoder])
        assert upstream.success
        checks = upstream.get_asset_check_evaluations()
        assert {c.check_name for c in checks} == {"corpus_expectations", "regions_expectations"}
        assert all(c.passed for c in checks)
        corpus_event = upstream.asset_materializations_for_node("face_corpus")[0]
        lock = yaml.safe_load((repo / "dvc.lock").read_text())
        corpus_md5 = next(o["md5"] for o in lock["stages"]["curate"]["outs"])
        assert corpus_event.tags["dagster/data_version"] == corpus_md5  # DVC hash = Dagster data version
        assert corpus_event.metadata["faces"].value > 30
        encoder_md = upstream.asset_materializations_for_node("pretrained_encoder")[0].metadata
        assert "paco_fr/final_metrics" in encoder_md
        # The run-config override reached the stage, dvc.lock, and provenance; params.yaml is untouched.
        assert lock["stages"]["pretrain@paco_fr"]["params"]["params.yaml"]["train"]["epochs"] == 1
        assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"] == 2
        provenance = json.loads((repo / "data/encoders/paco_fr/provenance.json").read_text())
        assert "patched:train.epochs=1" in provenance["overrides"]

        benchmarks = yaml.safe_load((repo / "params.yaml").read_text())["eval"]["benchmarks"]
        for benchmark in benchmarks:
            result = dg.materialize([pretrained_encoder, eval_report], partition_key=benchmark,
                                    resources=resources, instance=instance, selection=[eval_report])
            assert result.success
        summary = dg.materialize([eval_report, benchmark_summary], resources=resources, instance=instance,
                                 selection=[benchmark_summary])
        assert summary.success
        table = summary.asset_materializations_for_node("benchmark_summary")[0].metadata["table"].value
        assert "paco_fr" in table and "random" in table

    # Lineage: report -> encoder -> regions/corpus -> raw, and the reverse question for one image.
    links = lineage_chain(repo / "data/reports/paco_fr" / benchmarks[0])
    stages = [link.stage for link in links]
    assert stages[0] == "evaluate" and "pretrain" in stages and "curate" in stages
    assert any(link.path.endswith("data/raw") for link in links)
    photo = next((repo / "data/raw/photos").glob("*astronaut*"))
    uses = find_uses(photo, [repo / "data"])
    assert uses.corpora and {r["stage"] for r in uses.downstream} >= {"regions", "pretrain", "evaluate", "compare"}
