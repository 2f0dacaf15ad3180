"""The Dagster UI for real: dagster-webserver on 127.0.0.1, a materialisation launched through its
GraphQL API and awaited, and a headless Chromium screenshot of the asset graph saved to docs/img/."""

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
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                             "-m", "dagster_project.definitions"], cwd=repo, env=env, stdout=log,
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
    params = {"selector": {"repositoryLocationName": node["location"]["name"], "repositoryName": node["name"],
                           "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["face_corpus"]}],
                           "assetCheckSelection": [{"assetKey": {"path": ["face_corpus"]},
                                                    "name": "corpus_expectations"}]},
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
    assert status == "SUCCESS", status
    assert [m["assetKey"]["path"] for m in run["assetMaterializations"]] == [["face_corpus"]]
    assert (repo / "data" / "corpus" / "manifest.parquet").exists()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is needed for the screenshot (Debian package `chromium`; .ci/run installs it)"
    _graphql(port, "mutation { setNuxSeen }")  # the UI's first-visit dialog would cover the graph
    groups = ",".join(f"global@global:{g}" for g in ("data", "training", "evaluation"))
    url = f"http://127.0.0.1:{port}/asset-groups?expanded={groups}"
    profile = repo.parent / "chromium-profile"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    for asset in ("raw_faces", "face_corpus", "face_regions", "pretrained_encoder", "eval_report",
                  "benchmark_summary"):
        assert asset in dom, f"{asset} missing from the rendered asset graph"
    shot = repo.parent / "graph.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1800,1000",
                    f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT)
