"""The Dagster UI for real, after the README's main command: `paco-fr-ui` (dagster dev, its daemon and
the picture server) on the instance `paco-fr run` recorded into, its GraphQL API, and headless Chromium
driven by Playwright: every asset materialised with dvc.lock's md5s, nothing stale, and the corpus page
showing its face preview. Screenshots are copied to docs/img/ when PACO_FR_UPDATE_DOCS_IMAGES=1."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.project import artifact_for
from tiny_repo import ROOT, copy_repo

pytestmark = pytest.mark.slow

DOCS_IMG = ROOT / "docs" / "img"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


@pytest.fixture
def ui(built_repo, tmp_path):
    """`paco-fr-ui` on a copy of the built repository and the instance its `paco-fr run` recorded into."""
    repo = copy_repo(built_repo, tmp_path / "repo")
    port = _free_port()
    with socket.socket() as s:  # the pictures' URLs name the default picture port
        assert s.connect_ex(("127.0.0.1", 3001)) != 0, "port 3001 (paco-fr-ui's picture server) is taken"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    log = open(tmp_path / "dagster.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "paco-fr-ui"), "--port", str(port)], cwd=repo, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "dagster.log").read_text()[-3000:]
                time.sleep(1)
        else:
            pytest.fail("dagster dev did not answer within 180 s")
        _graphql(port, "mutation { setNuxSeen }")  # the first-visit dialog would cover the page
        yield port, repo
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _lock_versions(repo: Path) -> dict[str, str]:
    import yaml

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    versions = {o["path"]: o["md5"] for stage in lock.values() for o in stage["outs"]}
    versions["data/raw"] = yaml.safe_load((repo / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
    return versions


def test_the_ui_shows_what_paco_fr_run_built(ui):
    port, repo = ui
    location = _graphql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } } } } }")
    assert location["repositoriesOrError"]["nodes"][0]["location"]["name"] == "paco_fr"

    # Every asset partition is materialised, with dvc.lock's md5 as its data version.
    lock = _lock_versions(repo)
    from dagster_project.definitions import build_defs

    graph = build_defs(repo).resolve_asset_graph()
    with dg.DagsterInstance.from_config(str(repo / ".dagster_home")) as instance:
        for key in graph.toposorted_asset_keys:
            node = graph.get(key)
            for partition in node.partitions_def.get_partition_keys() if node.partitions_def else [None]:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
                    limit=1).records
                assert records, (key, partition)
                artifact = artifact_for(key.to_user_string(), partition) or "data/raw"
                assert records[0].asset_materialization.tags["dagster/data_version"] == lock[artifact]
    # ... and the UI calls nothing stale, as `dvc status` does.
    nodes = _graphql(port, "{ assetNodes { assetKey { path } staleStatus } }")["assetNodes"]
    assert {n["staleStatus"] for n in nodes} == {"FRESH"}, nodes

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                      "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        # The corpus's page shows its preview inline (a picture of faces, not a file name).
        page.goto(f"http://127.0.0.1:{port}/assets/face_corpus", wait_until="networkidle")
        preview = page.locator("img[alt='accepted crops with keypoints']")
        preview.first.wait_for(timeout=60_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.first.element_handle(),
                               timeout=60_000)  # the picture itself arrived, not a broken-image icon
        box = preview.first.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
        page.screenshot(path=str(repo.parent / "face_corpus.png"), full_page=True)
        # The comparison fits the page of a laptop screen.
        page.goto(f"http://127.0.0.1:{port}/assets/benchmark_summary", wait_until="networkidle")
        plot = page.locator("img[alt='comparison']").first
        plot.wait_for(timeout=60_000)
        assert plot.bounding_box()["x"] + plot.bounding_box()["width"] <= 1366
        browser.close()
    if os.environ.get("PACO_FR_UPDATE_DOCS_IMAGES") == "1":  # tests never change tracked files otherwise
        shutil.copy(repo.parent / "face_corpus.png", DOCS_IMG / "dagster_face_corpus.png")
