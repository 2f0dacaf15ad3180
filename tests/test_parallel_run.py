"""`paco-fr run` runs independent DVC stages at once (paco_fr/scheduler.py): on a toy DVC repository
whose stages log when they ran, and on the tiny real pipeline against stages forced one at a time."""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from paco_fr.pipeline import PipelineError, stage_outputs
from paco_fr.scheduler import (THREAD_VARIABLES, StageNode, _end_background, _fits, _held_back, _make_room,
                               _Running, lower_to_idle_priority, repro_parallel, restore_priority, stage_graph)
from tiny_repo import commit, copy_repo, dvc

WORK = ("a", "b", "c", "d")

# Writes out/NAME/value.txt from its inputs (the same bytes on every run) and, beside the outputs,
# when it ran and at which CPU priority (run facts: times.log is no output). Fails when a file
# fail-NAME exists.
STAGE = """\
import os, pathlib, sys, time
name, seconds, inputs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.time()
time.sleep(seconds)
if pathlib.Path('fail-' + name).exists():
    print('cannot make ' + name, flush=True)
    sys.exit(3)
value = name + '(' + ','.join(pathlib.Path(i, 'value.txt').read_text() for i in inputs) + ')'
pathlib.Path('out', name).mkdir(parents=True, exist_ok=True)
pathlib.Path('out', name, 'value.txt').write_text(value)
with open('times.log', 'a') as log:
    idle = os.sched_getscheduler(0) == os.SCHED_IDLE
    threads = os.environ.get('OMP_NUM_THREADS', '-')
    log.write(f'{name} {start} {time.time()} {"idle" if idle else "normal"} {threads}\\n')
"""


@pytest.fixture
def toy_repo(tmp_path):
    repo = tmp_path / "toy"
    repo.mkdir()
    (repo / "stage.py").write_text(STAGE)
    py = sys.executable
    work = {f"work-{w}": f"out/work-{w}" for w in WORK}
    stages = {
        # Declared first, needed last: the order of dvc.yaml is not the order of the graph.
        "join": {"cmd": f"{py} stage.py join 0 {' '.join(work.values())}", "deps": ["stage.py", *work.values()],
                 "outs": ["out/join"]},
        "prep": {"cmd": f"{py} stage.py prep 0.5", "deps": ["stage.py"], "outs": ["out/prep"],
                 "meta": {"cores": "all"}},
        "work": {"foreach": list(WORK), "do": {"cmd": f"{py} stage.py work-${{item}} 1.5 out/prep",
                                                 "deps": ["stage.py", "out/prep"], "outs": ["out/work-${item}"]}},
        # Needs nothing, one core: ready from the start, while `prep` takes every core.
        "side": {"cmd": f"{py} stage.py side 0.3", "deps": ["stage.py"], "outs": ["out/side"]},
        # Uses every core and needs nothing: no stage may run beside it but one at idle priority.
        "solo": {"cmd": f"{py} stage.py solo 1.0", "deps": ["stage.py"], "outs": ["out/solo"],
                 "meta": {"cores": "all"}},
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (repo / ".gitignore").write_text("times.log\nfail-*\n")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    commit(repo, "toy pipeline")
    return repo


def _intervals(repo: Path) -> dict[str, tuple[float, float]]:
    rows = [line.split() for line in (repo / "times.log").read_text().splitlines()]
    return {name: (float(start), float(end)) for name, start, end, *_ in rows}


def _priorities(repo: Path) -> dict[str, str]:
    return {row[0]: row[3] for row in (line.split() for line in (repo / "times.log").read_text().splitlines())}


def _threads(repo: Path) -> dict[str, str]:
    return {row[0]: row[4] for row in (line.split() for line in (repo / "times.log").read_text().splitlines())}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_the_graph_follows_dependencies_not_the_order_of_dvc_yaml(toy_repo):
    nodes = {n.name: n for n in stage_graph(toy_repo)}
    assert set(nodes) == {"join", "prep", "side", "solo", *(f"work@{w}" for w in WORK)}
    assert nodes["join"].needs == {f"work@{w}" for w in WORK} and nodes["work@a"].needs == {"prep"}
    assert (nodes["prep"].after, nodes["work@a"].after, nodes["join"].after, nodes["solo"].after) == (2, 1, 0, 0)
    assert nodes["side"].after == 0 and nodes["side"].needs == set()
    assert nodes["prep"].cores == "all" and nodes["work@a"].cores == 1


def test_independent_stages_run_at_once_and_build_what_dvc_repro_builds(toy_repo, tmp_path, capsys, monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    result = repro_parallel(toy_repo, 2, stream=True, background=True)
    said = capsys.readouterr().out
    assert sorted(result.ran) == sorted(["prep", "side", "solo", "join", *(f"work@{w}" for w in WORK)])
    times, priority = _intervals(toy_repo), _priorities(toy_repo)
    work = [times[f"work-{w}"] for w in WORK]
    # Two slots: the work stages ran two at a time, never three. Beside an all-core stage ran at most
    # `side`, which is ready from the start: started in the background, at idle priority, beside `prep`.
    assert any(_overlap(x, y) for i, x in enumerate(work) for y in work[i + 1:])
    # at no moment three at once (each start is the moment most are running)
    assert all(sum(start <= t < end for start, end in work) <= 2 for t, _ in work)
    assert "[paco-fr] side runs in the background (idle priority) beside prep" in said
    assert all(p == "normal" for name, p in priority.items() if name != "side"), priority
    # A stage holding one of the two slots runs one thread (torch/OpenMP/BLAS); an all-core stage, its own.
    assert _threads(toy_repo) == {"prep": "-", "solo": "-", "side": "1", "join": "1",
                                  **{f"work-{w}": "1" for w in WORK}}
    for solo in ("prep", "solo"):
        assert {name for name, t in times.items() if name != solo and _overlap(times[solo], t)} <= {"side"}, solo
    assert times["join"][0] >= max(end for _, end in work)
    assert (toy_repo / "out" / "join" / "value.txt").read_text() == \
        "join(" + ",".join(f"work-{w}(prep())" for w in WORK) + ")"
    # dvc.lock records every stage: DVC sees the pipeline up to date, and a second run runs nothing.
    assert "up to date" in dvc(toy_repo, "status")
    assert repro_parallel(toy_repo, 2, stream=False, background=True).ran == []
    # The same outputs, to the byte, as one stage at a time with plain `dvc repro`.
    twin = tmp_path / "twin"
    subprocess.run(["git", "clone", "-q", str(toy_repo), str(twin)], check=True)
    dvc(twin, "repro")
    assert stage_outputs(root=twin) == result.outs


def test_a_failed_stage_stops_new_ones_and_keeps_the_work_that_finished(toy_repo):
    (toy_repo / "fail-work-b").write_text("")
    with pytest.raises(PipelineError, match=r"work@b failed.*\n(.|\n)*cannot make work-b"):
        repro_parallel(toy_repo, 2, stream=False)
    done = set(yaml.safe_load((toy_repo / "dvc.lock").read_text())["stages"])
    assert {"prep", "work@a"} <= done and "join" not in done and "work@b" not in done
    # Without background stages (the default) nothing ran beside the all-core stage, nothing at idle priority.
    times = _intervals(toy_repo)
    assert not any(_overlap(times["prep"], t) for name, t in times.items() if name != "prep")
    assert set(_priorities(toy_repo).values()) == {"normal"}
    # Fixed, the next run does only what is missing.
    (toy_repo / "fail-work-b").unlink()
    assert "prep" not in repro_parallel(toy_repo, 2, stream=False).ran
    assert "up to date" in dvc(toy_repo, "status")


@pytest.mark.slow
def test_stages_that_ran_side_by_side_give_the_same_outputs_one_at_a_time(built_repo, tmp_path):
    """The README's main command built `built_repo` several stages at once (2 cores or more). Only the
    evaluations ever run beside another stage (curation and pre-training run alone, the rest is a
    chain), so each is forced again, one at a time by plain `dvc repro`: every output keeps its md5."""
    repo = copy_repo(built_repo, tmp_path / "repo")
    data = lambda outs: {k: v for k, v in outs.items() if not k.startswith("lineage/")}  # noqa: E731 - logs hold run facts
    before = data(stage_outputs(root=repo))
    evaluations = [node.name for node in stage_graph(repo) if node.name.startswith("evaluate")]
    assert len(evaluations) == 4, evaluations  # the tiny pipeline: 2 benchmarks x (paco_fr, random)
    for stage in evaluations:
        dvc(repo, "repro", "--force", "--single-item", stage)
    assert data(stage_outputs(root=repo)) == before


def test_a_background_stage_runs_at_idle_priority_and_is_restored_when_the_big_stage_ends():
    """The two halves of a background stage's life, on a real process tree (a child that starts a
    grandchild): lowered with everything it starts; restored, grandchild included, once the big stage
    is done. Raising a priority back needs root or RLIMIT_NICE: without either, the stage stays low."""
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; time.sleep(0.5); "
                             "subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"])
    try:
        lower_to_idle_priority(proc.pid)
        assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
        grandchild = None
        for _ in range(100):
            kids = psutil.Process(proc.pid).children()
            if kids:
                grandchild = kids[0].pid
                break
            time.sleep(0.05)
        assert grandchild is not None and os.sched_getscheduler(grandchild) == os.SCHED_IDLE  # inherited
        restore_priority(proc.pid)
        expected = os.SCHED_OTHER if os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20 \
            else os.SCHED_IDLE
        assert os.sched_getscheduler(proc.pid) == os.sched_getscheduler(grandchild) == expected
    finally:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
        proc.wait()


def test_a_promoted_background_stage_steps_back_for_the_next_big_stage():
    """Curation's last partition ends while a background evaluation runs; the merge (one core) is next,
    so the evaluation becomes ordinary. When pre-training (every core) becomes ready, that evaluation
    must not delay it: it returns to the background, at idle priority, and pre-training fits."""
    big, one = StageNode("pretrain", set(), "all"), StageNode("merge", set())
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lower_to_idle_priority(proc.pid)
        job = _Running(StageNode("evaluate", set()), proc, 0.0, background=True, began_in_background=True)
        running = {"evaluate": job}
        _end_background([big], running, set(), 2)  # the next stage is big again: stays behind
        assert job.background and _fits(big, running, 2) and _fits(one, running, 2)  # it counts as one slot
        _end_background([one], running, set(), 2)  # the next is one-core: an ordinary stage, one slot
        assert not job.background and _fits(one, running, 2) and not _fits(big, running, 2)
        _make_room(big, running, 2)
        assert job.background and _fits(big, running, 2)
        assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
        ordinary = _Running(one, proc, 0.0)
        _make_room(big, {"merge": ordinary}, 2)  # a stage that began in the foreground is never pushed back
        assert not ordinary.background
    finally:
        proc.kill()
        proc.wait()


def test_no_stage_starts_that_would_hold_a_slot_when_the_next_big_stage_becomes_ready():
    """The default pipeline's shape: merge -> regions -> pretrain (every core) -> evaluate, and evaluations
    of baselines that need nothing. While the merge or the region maps run, a baseline evaluation would
    still hold its slot when pre-training becomes ready (pair 11 of the main job: 31 s of waiting), so it
    waits; once pre-training runs, or before anything leads to it, it may start."""
    nodes = [StageNode("pretrain", {"regions"}, "all"), StageNode("regions", {"merge"}),
             StageNode("merge", set()), StageNode("evaluate", {"pretrain"}), StageNode("baseline", set())]
    by_name = {n.name: n for n in nodes}
    waiting = [by_name[n] for n in ("pretrain", "regions", "evaluate", "baseline")]
    job = lambda name: _Running(by_name[name], None, 0.0)  # noqa: E731
    baseline, regions = by_name["baseline"], by_name["regions"]
    assert _held_back(baseline, waiting, {"merge": job("merge")}, set(), 2, by_name)
    assert not _held_back(regions, waiting, {"merge": job("merge")}, set(), 2, by_name)  # on the way itself
    assert _held_back(baseline, waiting[:1] + waiting[2:], {"regions": job("regions")}, {"merge"}, 2, by_name)
    assert not _held_back(baseline, waiting, {}, set(), 2, by_name)  # nothing on the way runs yet
    assert not _held_back(baseline, waiting[2:], {"pretrain": job("pretrain")}, {"merge", "regions"}, 2, by_name)
