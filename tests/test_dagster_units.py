"""Dagster wiring that needs no pipeline run: the graph and its partitions, code versions, the typed
experiment config, progress relaying, the raw-folder sensor."""

import json
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.definitions import defs
from dagster_project.resources import PathsResource
from dagster_project.sensors import new_raw_images
from paco_fr.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_hold_the_whole_asset_graph_with_dvcs_dimensions():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_faces", "face_corpus_part", "face_corpus", "face_regions", "pretrained_encoder",
                    "eval_report", "baseline_report", "benchmark_summary"}
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    assert parents["face_corpus_part"] == {"raw_faces"}
    assert parents["face_corpus"] == {"raw_faces", "face_corpus_part"}
    assert parents["face_regions"] == {"face_corpus"}
    assert parents["pretrained_encoder"] == {"face_regions"}
    assert parents["eval_report"] == {"pretrained_encoder"}
    assert parents["baseline_report"] == set()
    assert parents["benchmark_summary"] == {"eval_report", "baseline_report"}
    from dagster_project.checks import corpus_expectations, regions_expectations

    checks = {spec.name: spec.blocking for check in (corpus_expectations, regions_expectations)
              for spec in check.check_specs}
    assert checks == {"corpus_expectations": True, "regions_expectations": True}
    # One partition per DVC stage of the committed params.yaml.
    cfg = load_config(ROOT / "params.yaml")
    encoders = [f"{p}-s{s}" for p in cfg.pipeline.presets for s in cfg.pipeline.seeds]
    keys_of = lambda name: set(graph.get(dg.AssetKey(name)).partitions_def.get_partition_keys())  # noqa: E731
    assert keys_of("pretrained_encoder") == set(encoders)
    assert keys_of("face_corpus_part") == {str(i) for i in range(cfg.curation.n_partitions)}
    assert keys_of("eval_report") == {f"{b}|{e}" for b in cfg.eval.benchmarks for e in encoders}
    assert keys_of("baseline_report") == {f"{a}|{b}" for a in cfg.pipeline.baselines for b in cfg.eval.benchmarks}
    # Every DVC-backed asset is in the `dvc` pool and has the code version of its stage's sources.
    for name in keys - {"raw_faces"}:
        node = graph.get(dg.AssetKey(name))
        assert node.code_version, name
        assert defs.get_assets_def(dg.AssetKey(name)).op.pool == "dvc", name
    assert defs.resolve_schedule_def("weekly_retraining").cron_schedule == "0 3 * * 1"
    assert defs.resolve_schedule_def("weekly_retraining").job_name == "ingest_raw"


def test_code_version_follows_the_stage_sources_only():
    from dagster_project.project import code_version

    assert code_version("curate") != code_version("regions") and code_version("raw") is None
    assert code_version("evaluate") == code_version("compare")  # both run paco_fr/eval


def test_experiment_config_is_typed_from_params_yaml():
    """The launchpad validates an experiment's keys and value types before the run starts."""
    from dagster_project.experiments import experiment, flatten

    job = defs.resolve_job_def("experiment")
    assert job.name == experiment.name
    good = {"ops": {"dvc_experiment": {"config": {"set": {"train": {"lr": 0.003}, "model": {"top_k": 2}}}}}}
    assert dg.validate_run_config(job, good)
    for bad in ({"train": {"lrr": 0.1}}, {"train": {"lr": "fast"}}, {"trian": {}}, {"paths": {"data_dir": "x"}}):
        with pytest.raises(dg.DagsterInvalidConfigError):
            dg.validate_run_config(job, {"ops": {"dvc_experiment": {"config": {"set": bad}}}})
    assert flatten({"train": {"lr": 0.003, "betas": [0.9, 0.99]}, "eval": {"benchmarks": ["a", "b"]}}) == [
        "train.lr=0.003", "train.betas=[0.9, 0.99]", "eval.benchmarks=[a, b]"]


def test_progress_lines_reach_the_run_log_at_a_bounded_rate():
    from dagster_project.resources import progress_relay

    seen: list[str] = []
    relay = progress_relay(seen.append, every_s=3600)
    line = '{"event": "curate_progress", "stage": "curate-part 0/2", "done": %d, "total": 10, "faces": 3, ' \
           '"rejected": 1, "faces_per_s": 2.5, "eta_s": 4}'
    relay("Running stage 'curate_part@0':\n")
    relay(line % 1)
    relay(line % 2)   # within the interval: not relayed
    relay(line % 10)  # the last one always is
    assert seen == ["curate-part 0/2: 1/10 inputs, 3 faces, 1 rejected, 2.5 faces/s, ETA 4 s",
                    "curate-part 0/2: 10/10 inputs, 3 faces, 1 rejected, 2.5 faces/s, ETA 4 s"]


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
