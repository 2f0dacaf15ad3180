"""Dagster wiring that needs no pipeline run: definitions, the Kubernetes pod spec, the raw-folder
sensor, run-config overrides."""

import json
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.definitions import defs
from dagster_project.resources import K8sTrainingLauncher, LocalTrainingLauncher, ParamsOverrides, PathsResource
from dagster_project.sensors import new_raw_images

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_hold_the_whole_asset_graph():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_faces", "face_corpus", "face_regions", "pretrained_encoder", "eval_report",
                    "benchmark_summary"}
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    assert parents["face_corpus"] == {"raw_faces"}
    assert parents["face_regions"] == {"face_corpus"}
    assert parents["pretrained_encoder"] == {"face_regions"}
    assert parents["eval_report"] == {"pretrained_encoder"}
    assert parents["benchmark_summary"] == {"eval_report"}
    assert defs.get_assets_def(dg.AssetKey("pretrained_encoder")).op.pool == "gpu"
    from dagster_project.checks import corpus_expectations, regions_expectations

    checks = {spec.name: spec.blocking for check in (corpus_expectations, regions_expectations)
              for spec in check.check_specs}
    assert checks == {"corpus_expectations": True, "regions_expectations": True}
    partitions = graph.get(dg.AssetKey("eval_report")).partitions_def.get_partition_keys()
    from paco_fr.config import load_config

    assert partitions == load_config(ROOT / "params.yaml").eval.benchmarks
    assert defs.resolve_schedule_def("weekly_retraining").cron_schedule == "0 3 * * 1"


def test_kubernetes_launcher_builds_a_gpu_pod_running_the_dvc_stage():
    launcher = K8sTrainingLauncher(image="registry.example/paco-fr:1.2", gpus=4,
                                   node_selector={"gpu": "h100"}, service_account="trainer")
    pod = launcher.pod_body(["pretrain@paco_fr"], ["train.epochs=3"], env={"DAGSTER_PIPES_CONTEXT": "ctx"})
    container = pod.spec.containers[0]
    assert container.image == "registry.example/paco-fr:1.2"
    assert container.command[:3] == ["python", "-m", "dagster_project.pipes_entry"]
    assert "pretrain@paco_fr" in container.command and "--pull" in container.command
    assert "--push" in container.command
    sets = [container.command[i + 1] for i, a in enumerate(container.command) if a == "--set"]
    assert sets == ["train.epochs=3", "train.nproc_per_node=4"]  # 4 GPUs -> torchrun with 4 processes
    assert container.resources.limits["nvidia.com/gpu"] == "4"
    assert pod.spec.restart_policy == "Never"
    assert pod.spec.node_selector == {"gpu": "h100"} and pod.spec.service_account_name == "trainer"
    assert any(v.name == "dshm" for v in pod.spec.volumes)
    assert {"name": "DAGSTER_PIPES_CONTEXT", "value": "ctx"} in [
        {"name": e.name, "value": e.value} if not isinstance(e, dict) else e for e in container.env]
    assert pod.metadata.labels["app"] == "paco-fr"


def test_local_launcher_adds_torchrun_processes_only_when_asked():
    single = LocalTrainingLauncher(repo_root=str(ROOT)).command(["pretrain@mae"], [])
    assert single[1:4] == ["-m", "dagster_project.pipes_entry", "pretrain@mae"] and "--set" not in single
    double = LocalTrainingLauncher(repo_root=str(ROOT), nproc_per_node=2).command(["pretrain@mae"], [])
    assert double[-2:] == ["--set", "train.nproc_per_node=2"]


def test_run_config_overrides_become_validated_pairs():
    pairs = ParamsOverrides(preset="mae", epochs=2, benchmarks=["synthetic_parsing"],
                            set=["train.batch_size=8"]).pairs(ROOT)
    assert pairs == ["pipeline.presets=[mae]", "train.epochs=2", "eval.benchmarks=[synthetic_parsing]",
                     "train.batch_size=8"]
    assert ParamsOverrides().pairs(ROOT) == []
    with pytest.raises(Exception, match="unknown preset"):
        ParamsOverrides(preset="nope").pairs(ROOT)


def test_sensor_requests_a_run_only_when_the_raw_folder_changes(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (repo / "data" / "raw" / "a.png").write_bytes(b"a")
    paths = PathsResource(repo_root=str(repo))

    with dg.instance_for_test() as instance:
        first = new_raw_images(dg.build_sensor_context(instance=instance, resources={"paths": paths}))
        assert not first.run_requests and json.loads(first.cursor)["files"] == 1
        same = new_raw_images(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                      resources={"paths": paths}))
        assert isinstance(same, dg.SkipReason)
        (repo / "data" / "raw" / "b.png").write_bytes(b"b")
        changed = new_raw_images(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                         resources={"paths": paths}))
        assert len(changed.run_requests) == 1 and changed.run_requests[0].tags["paco-fr/files_after"] == "2"
        assert json.loads(changed.cursor)["files"] == 2
