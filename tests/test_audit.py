"""Auditing a reported number through the user's commands: lineage by recorded identity after upstream
rebuilds, history that travels with a clone, and erasure that leaves no byte of an image behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from paco_fr.pipeline import dvc_repro, version_raw
from tiny_repo import commit, copy_repo, dvc, paco_fr, tool_env

pytestmark = pytest.mark.slow

REPORT = "data/reports/paco_fr-s0/synthetic_parsing"


def _chain(repo: Path, path: str, *extra: str) -> list[dict]:
    return json.loads(paco_fr(repo, "lineage", path, "--json", *extra).stdout)


def _add_faces(folder: Path, n: int, seed: int) -> list[Path]:
    from paco_fr.data.builtin import _png_bytes
    from paco_fr.data.synthetic import face_to_record, generate_faces

    folder.mkdir(parents=True, exist_ok=True)
    added = []
    for i, face in enumerate(generate_faces(n, seed=seed, size=192, identity_offset=20_000)):
        (folder / f"added-{i}.png").write_bytes(_png_bytes(face.image))
        (folder / f"added-{i}.gt.json").write_text(json.dumps({**face_to_record(face), "synthetic": True}))
        added.append(folder / f"added-{i}.png")
    return added


def test_lineage_names_the_data_that_produced_a_report_after_upstream_rebuilds(built_repo, tmp_path):
    repo = copy_repo(built_repo, tmp_path / "repo")
    before = _chain(repo, REPORT)
    raw_v1 = next(link for link in before if link["stage"] == "raw")
    assert before[0]["stage"] == "evaluate" and all(link["status"] == "current" for link in before
                                                    if link["stage"] is not None)
    assert {"pretrain", "regions", "curate", "curate_part", "raw"} <= {link["stage"] for link in before}

    # New images, then only the corpus is rebuilt: the report and its encoder are the old ones.
    added = _add_faces(repo / "data" / "raw" / "added", 3, seed=5)
    raw_v2 = version_raw(repo, "data/raw")
    dvc_repro(["curate"], root=repo, env=tool_env(), stream=False)
    after = _chain(repo, REPORT)
    by_stage = {link["stage"]: link for link in after}
    assert by_stage["raw"]["md5"] == raw_v1["md5"] != raw_v2            # still the raw set that produced it
    assert by_stage["raw"]["status"] == f"stale (workspace now {raw_v2})"
    assert by_stage["curate"]["status"].startswith("stale")
    assert by_stage["pretrain"]["status"] == "current" and by_stage["evaluate"]["status"] == "current"

    # --files lists the raw files of the recorded version: the old set, not today's.
    listed = paco_fr(repo, "lineage", REPORT, "--files", "10000").stdout
    assert "synthetic/face-000000.png" in listed and "added/added-0.png" not in listed
    # --uses covers every recorded version: the new image is only in the new raw version and corpus.
    uses = json.loads(paco_fr(repo, "lineage", "--uses", str(added[0]), "--json").stdout)
    assert [r["md5"] for r in uses["raw_versions"]] == [raw_v2]
    assert {r["stage"] for r in uses["downstream"]} == {"curate_part", "curate"}

    # The history travels with the data: a clone of the committed repository answers the same.
    commit(repo, "corpus rebuilt")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "HEAD"], check=True)
    for rel in (REPORT,):  # the report folder itself is data: fetch it from the original's cache
        dvc(clone, "cache", "dir", str(repo / ".dvc" / "cache"))
        dvc(clone, "checkout", rel)
    assert [(link["stage"], link["md5"]) for link in _chain(clone, REPORT)] == \
        [(link["stage"], link["md5"]) for link in after]


def _files_holding(root: Path, needles: dict[str, bytes]) -> list[tuple[str, str]]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            data = path.read_bytes()
            found += [(name, str(path.relative_to(root))) for name, needle in needles.items() if needle in data]
    return found


def test_forget_leaves_no_byte_of_the_image_or_its_crop_anywhere(built_repo, tmp_path):
    repo = copy_repo(built_repo, tmp_path / "repo")
    manifest = pd.read_parquet(repo / "data" / "corpus" / "manifest.parquet")
    row = manifest[manifest["synthetic"]].iloc[0]
    image = repo / "data" / "raw" / row["source_path"]
    with tarfile.open(repo / "data" / "corpus" / row["shard"]) as shard:
        crop = shard.extractfile(f"{row['face_id']}.png").read()
    needles = {"image": image.read_bytes(), "crop": crop}
    dagster_home = repo / ".dagster_home"
    assert _files_holding(repo, needles), "the built repository should hold the image before it is forgotten"
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        corpus_events = instance.fetch_materializations(dg.AssetKey("face_corpus"), limit=10).records
        shown = corpus_events[0].asset_materialization.tags["dagster/data_version"]
    # The UI's copy of the corpus preview (scaled, so no needle finds it): deleted with the version.
    picture = dagster_home / "pictures" / shown.replace(".dir", "")
    assert any(picture.glob("*.jpg")), "the recorded corpus has no picture in Dagster's storage"

    out = json.loads(paco_fr(repo, "forget", str(image), "--json").stdout)
    assert out["md5"] == hashlib.md5(needles["image"]).hexdigest()
    assert any(p["why"] == "crops of its faces" for p in out["purged"])
    assert any(p["why"] == "the image or its annotation" for p in out["purged"])
    # The data stages were rebuilt without it; what was trained or scored on it is listed for retraining.
    assert {"data/corpus", "data/regions"} <= set(out["rebuilt"])
    assert set(out["retrain"]) == {"data/encoders/paco_fr-s0", "data/reports/paco_fr-s0/synthetic_expression",
                                   REPORT, "data/summary"}

    # No file of the workspace, the DVC cache, the run folders or Dagster's storage holds either.
    assert _files_holding(repo, needles) == []
    assert not picture.exists()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for asset, artifact in (("face_corpus", "data/corpus"), ("face_regions", "data/regions")):
            versions = {r.asset_materialization.tags["dagster/data_version"]
                        for r in instance.fetch_materializations(dg.AssetKey(asset), limit=100).records}
            assert not versions & set(out["affected"][artifact]), asset
    # An old version of the raw folder can no longer bring the image back.
    current = (repo / "data" / "raw.dvc").read_text()
    old = subprocess.run(["git", "show", "HEAD:data/raw.dvc"], cwd=repo, check=True, capture_output=True,
                         text=True).stdout
    (repo / "data" / "raw.dvc").write_text(old)
    subprocess.run([sys.executable, "-m", "dvc", "checkout", "data/raw.dvc"], cwd=repo, env=tool_env(),
                   capture_output=True)
    assert not image.exists(), "dvc checkout of the old raw version restored the forgotten image"
    (repo / "data" / "raw.dvc").write_text(current)
    dvc(repo, "checkout", "--force", "data/raw.dvc")
    # The erasure is on the record, and once retrained the report's lineage reaches the new raw folder.
    records = [json.loads(line) for line in (repo / "lineage" / "forget.jsonl").read_text().splitlines()]
    assert records[-1]["params"]["md5"] == out["md5"]
    paco_fr(repo, "run")
    raw_link = next(link for link in _chain(repo, REPORT) if link["stage"] == "raw")
    assert raw_link["status"] == "current"
    assert raw_link["md5"] == yaml.safe_load((repo / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
