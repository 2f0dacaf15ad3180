"""The Dagster UI for real: `dagster dev` (webserver and daemon, as `paco-fr-ui` starts it) on
127.0.0.1, a run launched through its GraphQL API, queued and started by the daemon, and a headless
Chromium screenshot of the asset graph (copied to docs/img/ when PACO_FR_UPDATE_DOCS_IMAGES=1)."""

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

import pytest

from tiny_repo import ROOT, make_tiny_repo, write_raw

pytestmark = pytest.mark.slow

SCREENSHOT = ROOT / "docs" / "img" / "dagster_asset_graph.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=20000"]


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
def webserver(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo")
    write_raw(repo)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_project" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PACO_FR_REPO": str(repo), "DAGSTER_DISABLE_TELEMETRY": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
                             "-w", "workspace.yaml"], cwd=repo, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "webserver.log").read_text()
                time.sleep(1)
        else:
            pytest.fail("dagster-webserver did not answer within 120 s")
        yield port, repo
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status assetMaterializations { assetKey { path } } }
  }
}"""


def test_ui_launches_a_materialisation_and_shows_the_asset_graph(webserver):
    port, repo = webserver
    repos = _graphql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    node = repos["repositoriesOrError"]["nodes"][0]
    assert node["location"]["name"] == "paco_fr"  # workspace.yaml's name, not the module path
    params = {"selector": {"repositoryLocationName": node["location"]["name"], "repositoryName": node["name"],
                           "jobName": "ingest_raw"},
              "runConfigData": {}, "mode": "default"}
    launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline, status = time.time() + 600, None
    while time.time() < deadline:
        run = _graphql(port, STATUS, {"runId": run_id})["runOrError"]
        status = run["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS", status  # the queued run was started by the daemon
    assert [m["assetKey"]["path"] for m in run["assetMaterializations"]] == [["raw_faces"]]
    assert (repo / "data" / "raw.dvc").exists()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is needed for the screenshot (Debian package `chromium`; .ci/run installs it)"
    _graphql(port, "mutation { setNuxSeen }")  # the UI's first-visit dialog would cover the graph
    groups = ",".join(f"global@global:{g}" for g in ("data", "training", "evaluation"))
    url = f"http://127.0.0.1:{port}/asset-groups?expanded={groups}"
    profile = repo.parent / "chromium-profile"
    assets = ("raw_faces", "face_corpus_part", "face_corpus", "face_regions", "pretrained_encoder", "eval_report",
              "baseline_report", "benchmark_summary")
    for budget in (20000, 40000, 80000):  # the graph's layout takes longer on a loaded machine
        flags = [f if not f.startswith("--virtual-time-budget") else f"--virtual-time-budget={budget}"
                 for f in CHROMIUM_FLAGS]
        dom = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", "--window-size=1800,1000",
                              "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
        if all(asset in dom for asset in assets):
            break
    for asset in assets:
        assert asset in dom, f"{asset} missing from the rendered asset graph"
    shot = repo.parent / "graph.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1800,1000",
                    f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("PACO_FR_UPDATE_DOCS_IMAGES") == "1":  # tests never change tracked files otherwise
        shutil.copy(shot, SCREENSHOT)
