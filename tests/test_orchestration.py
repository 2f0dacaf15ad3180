"""One identity per artifact, scheduled retraining that does nothing when nothing changed, and
experiments that never touch the workspace: through the real Dagster instance, real DVC and the real
stages on a tiny repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_driver import data_versions, execute, partition_keys, run_automation
from dagster_project.definitions import build_defs
from dagster_project.project import artifact_for
from dagster_project.record import record_pipeline
from paco_fr.lineage import content_hash, find_record, find_records
from paco_fr.pipeline import dvc_repro, lock_stages
from tiny_repo import commit, copy_repo, dvc, git, make_tiny_repo, paco_fr, tool_env

pytestmark = pytest.mark.slow

@pytest.fixture
def built(built_repo):
    return built_repo


def copy_of(repo: Path, dest: Path) -> Path:
    return copy_repo(repo, dest)


def recorded_versions(repo: Path) -> dict[str, str]:
    versions = {out["path"]: out["md5"] for stage in lock_stages(repo).values() for out in stage["outs"]
                if not out["path"].startswith("lineage/")}  # the logs grow by a record each run
    versions["data/raw"] = yaml.safe_load((repo / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
    return versions


def test_identical_inputs_rebuild_nothing_downstream(built, tmp_path):
    repo = copy_of(built, tmp_path / "repo")
    before = recorded_versions(repo)
    forced = dvc_repro(["curate"], root=repo, single_item=True, force=True, env=tool_env(), stream=False)
    assert forced.ran == ["curate"]
    assert json.loads(dvc(repo, "status", "--json")) == {}, "a forced curate on the same raw folder left stages stale"
    assert recorded_versions(repo) == before
    # The same version, built twice: two runs recorded under one key. The tracked log keeps the first (the
    # version's identity); the second goes to the re-run log beside it, which git ignores, so the
    # repository is as it was committed.
    runs = find_records("data/corpus", before["data/corpus"], root=repo)
    assert len(runs) == 2 and runs[0]["run"]["run_id"] != runs[1]["run"]["run_id"]
    tracked = [json.loads(line) for line in (repo / "lineage" / "curate.jsonl").read_text().splitlines()]
    assert [r["run"]["run_id"] for r in tracked] == [runs[0]["run"]["run_id"]]
    assert (repo / "lineage" / "curate.reruns.jsonl").is_file()
    assert git(repo, "status", "--porcelain") == "", "a re-run of committed versions changed tracked files"
    # Recording in the project's Dagster instance (what `paco-fr run` does after DVC): of every asset
    # partition `paco-fr run` recorded in `built`, only the corpus has a new run to show.
    assert record_pipeline(repo) == [("face_corpus", None)]

    # A comment-only change in curation's code: the curation stages re-run (their code is a dependency),
    # give the same corpus, and nothing below them runs.
    source = repo / "paco_fr" / "data" / "align.py"
    source.write_text(source.read_text() + "\n# a comment that changes no behaviour\n")
    after_edit = dvc_repro([], root=repo, env=tool_env(), stream=False)
    assert after_edit.ran == ["curate_part@0", "curate_part@1", "curate"], after_edit.ran
    assert json.loads(dvc(repo, "status", "--json")) == {}
    assert recorded_versions(repo) == before


def test_versions_agree_and_a_schedule_tick_retrains_only_what_changed(built, tmp_path):
    repo = copy_of(built, tmp_path / "repo")
    defs = build_defs(repo)
    with dg.instance_for_test() as instance:
        # A fresh instance: the daemon's first ticks build what needs no corpus (the baseline reports)
        # and everything else waits for the raw folder. Then the UI's one button, Materialize
        # `raw_faces`: automation materialises every other partition below it, each exactly once.
        cursor, first = run_automation(defs, instance, None)
        assert first.assets() == {"baseline_report"}, first.runs
        assert execute(defs, instance, dg.AssetKey("raw_faces"), None).success
        cursor, launched = run_automation(defs, instance, cursor)
        below = {(key.to_user_string(), partition) for key in defs.resolve_asset_graph().toposorted_asset_keys
                 if key != dg.AssetKey("raw_faces") for partition in partition_keys(defs, key)}
        assert sorted(first.runs + launched.runs, key=str) == sorted(below, key=str), (first.runs, launched.runs)
        # Every asset partition: Dagster data version == dvc.lock md5 == the key of a lineage record.
        lock = recorded_versions(repo)
        versions = data_versions(defs, instance)
        assert len(versions) == sum(1 for _ in versions) and versions
        for (asset, partition), version in versions.items():
            artifact = artifact_for(asset, partition) or "data/raw"
            assert version == lock[artifact], (asset, partition)
            assert find_record(artifact, version, root=repo) is not None, (asset, partition)

        schedule_job = defs.resolve_job_def(defs.resolve_schedule_def("weekly_retraining").job_name)
        # A weekly tick on unchanged images: the raw version is the same, nothing else runs.
        assert schedule_job.execute_in_process(instance=instance).success
        cursor, launched = run_automation(defs, instance, cursor)
        assert launched.runs == [], launched.runs
        assert data_versions(defs, instance) == versions

        # Five new images, then the next tick: exactly the chain below the raw folder re-runs.
        _add_faces(repo / "data" / "raw" / "new", 5)
        assert schedule_job.execute_in_process(instance=instance).success
        cursor, launched = run_automation(defs, instance, cursor)
        assert launched.assets() == {"face_corpus_part", "face_corpus", "face_regions", "pretrained_encoder",
                                     "eval_report", "benchmark_summary"}, launched.runs
        assert sum(1 for asset, _ in launched.runs if asset == "pretrained_encoder") == 1
        after = data_versions(defs, instance)
        changed = {k for k in after if after[k] != versions[k]}
        assert {asset for asset, _ in changed} >= {"raw_faces", "face_corpus", "face_regions", "pretrained_encoder"}
        # The baselines (here random init) do not depend on the corpus: not re-run.
        assert not any(asset == "eval_report" and not partition.endswith("paco_fr-s0") for asset, partition in
                       launched.runs)
        assert json.loads(dvc(repo, "status", "--json")) == {}
        # The new images are in the DVC cache (dvc add on the Dagster path), not only in the workspace.
        cache = repo / ".dvc" / "cache" / "files" / "md5"
        for image in (repo / "data" / "raw" / "new").glob("*.png"):
            md5 = content_hash(image)
            assert (cache / md5[:2] / md5[2:]).exists(), image.name


def _add_faces(folder: Path, n: int) -> None:
    """n procedural faces with ground-truth sidecars, of identities the builtin folder does not have."""
    from paco_fr.data.builtin import _png_bytes
    from paco_fr.data.synthetic import face_to_record, generate_faces

    folder.mkdir(parents=True, exist_ok=True)
    for i, face in enumerate(generate_faces(n, seed=991, size=192, identity_offset=10_000)):
        (folder / f"new-{i}.png").write_bytes(_png_bytes(face.image))
        (folder / f"new-{i}.gt.json").write_text(json.dumps({**face_to_record(face), "synthetic": True}))


def test_an_experiment_never_touches_the_workspace(built, tmp_path):
    repo = copy_of(built, tmp_path / "repo")
    defs = build_defs(repo)
    encoder = repo / "data" / "encoders" / "paco_fr-s0" / "encoder.safetensors"
    production = encoder.read_bytes()
    job = defs.resolve_job_def("experiment")

    # The launchpad refuses an unknown key (or a wrong type) before any run starts.
    with dg.instance_for_test() as instance:
        for bad in ({"train": {"lrr": 0.01}}, {"train": {"lr": "fast"}}):
            with pytest.raises(dg.DagsterInvalidConfigError):
                job.execute_in_process(instance=instance, run_config={"ops": {"dvc_experiment": {"config": {"set": bad}}}})
        assert instance.get_runs_count() == 0

        # The user edits params.yaml while the experiment runs; the edit survives it.
        params = repo / "params.yaml"
        edited = params.read_text().replace("  lr: 0.0015", "  lr: 0.0015               # tuned by hand")
        thread = threading.Thread(target=lambda: (time.sleep(3), params.write_text(edited)))
        thread.start()
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"dvc_experiment": {"config": {
                "set": {"train": {"lr": 0.003}}, "name": "lr-0.003"}}}})
        thread.join()
        assert result.success
    assert params.read_text() == edited
    assert encoder.read_bytes() == production, "the experiment overwrote the production encoder"
    shown = json.loads(dvc(repo, "exp", "show", "--json"))
    experiments = [exp for rev in shown for group in (rev.get("experiments") or []) for exp in group["revs"]]
    named = [exp for exp in experiments if exp.get("name") == "lr-0.003"]
    assert named, shown
    data = named[0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.003
    metrics = data["metrics"]
    assert "metrics/pretrain/paco_fr-s0.json" in metrics
    assert any(path.startswith("metrics/evaluate/paco_fr-s0/") for path in metrics), metrics
    # Its lineage travels with the experiment commit: the encoder it trained has its record there.
    rev = named[0]["rev"]
    git_show = lambda path: subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, check=True,  # noqa: E731
                                           capture_output=True, text=True).stdout
    trained = next(o["md5"] for o in yaml.safe_load(git_show("dvc.lock"))["stages"]["pretrain@paco_fr-0"]["outs"]
                   if o["path"] == "data/encoders/paco_fr-s0")
    assert trained != content_hash(encoder.parent)
    records = [json.loads(line) for line in git_show("lineage/pretrain/paco_fr-s0.jsonl").splitlines()]
    assert any(r["key"] == trained and r["params"]["train"]["lr"] == 0.003 for r in records)
    # The plain run afterwards (params.yaml as the user left it): everything is up to date, nothing trains.
    out = paco_fr(repo, "run").stdout
    assert "ran nothing" in out, out[-2000:]
    assert encoder.read_bytes() == production


def test_checks_judge_a_corpus_by_the_settings_it_was_built_with(tmp_path):
    """A 224-px corpus (the GPU setting) passes its blocking checks."""
    repo = make_tiny_repo(tmp_path / "repo", ["curation.crop_size=224", "curation.builtin.n_synthetic=24"])
    defs = build_defs(repo)
    with dg.instance_for_test() as instance:
        from dagster_driver import execute

        runs = [("raw_faces", None), *(("face_corpus_part", p) for p in ("0", "1")), ("face_corpus", None),
                ("face_regions", None)]
        checks = []
        for key, partition in runs:
            result = execute(defs, instance, dg.AssetKey(key), partition)
            assert result.success, key
            checks += result.get_asset_check_evaluations()
        assert {c.check_name for c in checks} == {"corpus_expectations", "regions_expectations"}
        for check in checks:
            assert check.passed, (check.check_name, check.metadata)
        corpus_check = next(c for c in checks if c.check_name == "corpus_expectations")
        assert corpus_check.metadata["validated_with"].value["crop_size"] == 224
