"""Several DVC stages at once: what `paco-fr run` does with the cores one `dvc repro` leaves idle.

`dvc repro` runs a pipeline's stages one after another, and most of ours use one core (an evaluation's
probes run on one thread), so on a machine with N cores it leaves N-1 idle for most of the run. DVC
releases its repository lock while a stage's command runs (it keeps read/write locks on the stage's
own dependencies and outputs), so separate `dvc repro --single-item STAGE` processes can run stages
that do not depend on each other at once. Each of them still skips a stage that is up to date and
records its outputs in dvc.lock, and runs the same command in the same environment as `dvc repro`:
the outputs are the same bytes.

    repro_parallel(root, slots, background=False) -> ReproResult

The stages of dvc.yaml run in dependency order on `slots` cores. A stage whose dvc.yaml entry says
`meta: {cores: all}` (pre-training: one torch thread per core; a curation partition: one worker per
core) takes every slot and so runs alone; every other stage takes one. Among the stages that are
ready, the one with the longest chain of stages after it goes first (the path to the comparison table
through curation and pre-training), and a stage waiting for slots is not overtaken by shorter work, so
pre-training starts as soon as the evaluations already running finish. Nor does a one-core stage start
while the stages an all-core stage waits for are running, unless it is one of them: it would hold a slot
when the all-core stage becomes ready.

With `background` (params `pipeline.background`, `paco-fr run --background`; on by default), while a
stage that takes every slot runs, one one-core stage that is ready may run beside it in the
*background*: at idle CPU priority (Linux SCHED_IDLE, elsewhere nice 19), so it only gets what the big
stage leaves idle (pre-training keeps ~1.75 of 2 cores busy; the rest ran three to four evaluations of
baselines per 40 steps, the 40 steps taking no longer: 125.5/120.3 s alone, 129.2/108.2 s with them).
When the big stage ends, a background stage still running becomes an ordinary one, back at normal
priority (where the system lets a process raise it again: root, or RLIMIT_NICE) and holding one slot;
unless the next stage takes every slot too (curation's partitions): it then stays in the background.
It goes back to the background, rather than delay it, when a big stage becomes ready later.

When a stage fails, no new stage starts; the stages already running finish and are recorded (their
work is kept), then PipelineError names the failed stage with the tail of its output.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from paco_fr.pipeline import PipelineError, ReproResult, stage_outputs, tool_env

ALL_CORES = "all"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class StageNode:
    name: str                  # DVC's address: `evaluate@paco_fr-0-synthetic_parsing`
    needs: set[str]            # stages it depends on (that have a command)
    cores: str | int = 1       # `meta: {cores: ...}` in dvc.yaml: all, or a number
    after: int = 0             # length of the longest chain of stages that depend on it


def stage_graph(root: Path) -> list[StageNode]:
    """The stages of dvc.yaml that have a command, with their dependencies, in DVC's order."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            graph = repo.index.graph  # edges: stage -> a stage whose output it depends on
            stages = [s for s in repo.index.stages if s.cmd]
            nodes = [StageNode(_address(s, root), {_address(d, root) for d in graph.successors(s) if d.cmd},
                               (s.meta or {}).get("cores", 1)) for s in stages]
    except DvcException as exc:
        raise PipelineError(f"DVC cannot read the pipeline of {root}: {exc}") from exc
    users: dict[str, list[str]] = {n.name: [] for n in nodes}
    for node in nodes:
        for need in node.needs:
            users[need].append(node.name)
    after: dict[str, int] = {}

    def chain(name: str) -> int:  # dvc.yaml's order need not be topological: follow the edges
        if name not in after:
            after[name] = max((1 + chain(u) for u in users[name]), default=0)
        return after[name]

    for node in nodes:
        node.after = chain(node.name)
    return nodes


def _address(stage, root: Path) -> str:
    """How `dvc repro` run in `root` names the stage (DVC's own `addressing` is relative to the cwd)."""
    dvcfile = Path(stage.dvcfile.path).resolve().relative_to(root.resolve()).as_posix()
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def slots_of(node: StageNode, slots: int) -> int:
    if node.cores == ALL_CORES:
        return slots
    if isinstance(node.cores, int) and node.cores >= 1:
        return min(node.cores, slots)
    raise PipelineError(f"stage {node.name}: meta.cores must be 'all' or a positive number, not {node.cores!r}")


@dataclass
class _Running:
    node: StageNode
    proc: subprocess.Popen
    started: float
    lines: list[str] = field(default_factory=list)
    background: bool = False   # at idle priority beside a stage that takes every slot, holding no slot
    began_in_background: bool = False


def _process_tree(pid: int) -> list[int]:
    import psutil  # noqa: PLC0415

    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.Error:
        return []


def lower_to_idle_priority(pid: int) -> None:
    """Let process `pid`, everything it started and what it starts from now on run only on CPU time
    nothing else wants."""
    for each in _process_tree(pid):
        try:
            os.sched_setscheduler(each, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):  # not Linux: the lowest nice value instead
            try:
                os.setpriority(os.PRIO_PROCESS, each, 19)
            except (AttributeError, OSError):
                pass


def restore_priority(pid: int) -> None:
    """Process `pid` and everything it started back to normal priority, where the system allows it
    (lowering a priority is always allowed, raising it back needs root or RLIMIT_NICE: else it stays)."""
    for each in _process_tree(pid):
        try:
            os.sched_setscheduler(each, os.SCHED_OTHER, os.sched_param(0))
        except (AttributeError, OSError):
            pass
        try:
            os.setpriority(os.PRIO_PROCESS, each, 0)
        except (AttributeError, OSError):
            pass


def _to_background(job: "_Running", background: bool) -> None:
    if job.background != background:
        job.background = background
        (lower_to_idle_priority if background else restore_priority)(job.proc.pid)


def _end_background(waiting: list[StageNode], running: dict[str, "_Running"], done: set[str], slots: int) -> None:
    """A big stage has ended: unless the next stage to start is big again (it would wait for the slot),
    the background stage becomes an ordinary one."""
    following = next((n for n in waiting if n.needs <= done), None)
    if following is not None and slots_of(following, slots) == slots:
        return
    for job in running.values():
        _to_background(job, False)


def _make_room(node: StageNode, running: dict[str, "_Running"], slots: int) -> None:
    """A big stage is next and the only stage in its way began in the background (a one-core stage
    promoted when the previous big stage ended): it goes back to the background instead of delaying
    the most urgent stage."""
    if slots_of(node, slots) != slots or any(job.background for job in running.values()):
        return
    foreground = [job for job in running.values() if not job.background]
    if len(foreground) == 1 and foreground[0].began_in_background:
        _to_background(foreground[0], True)


def _held_back(node: StageNode, waiting: list[StageNode], running: dict[str, "_Running"], done: set[str],
                slots: int, by_name: dict[str, StageNode]) -> bool:
    """Whether one-core `node` must not start now: the most urgent stage still to run that takes every
    slot is on its way (a stage it needs is running), and `node` is not: started now, `node` would hold
    a slot when that stage becomes ready, which would then wait for it (pre-training waited 31 s for an
    evaluation started beside the region maps)."""
    big = next((n for n in waiting if slots_of(n, slots) == slots), None)
    if big is None or slots_of(node, slots) == slots:
        return False
    pending, todo = set(), list(big.needs - done)
    while todo:  # every stage `big` still waits for, directly or not
        name = todo.pop()
        if name not in pending:
            pending.add(name)
            todo.extend(by_name[name].needs - done)
    return node.name not in pending and bool(pending & set(running))


def _fits(node: StageNode, running: dict[str, "_Running"], slots: int) -> bool:
    """Whether `node` may start now. A stage that takes every slot waits only for the foreground
    stages; any other also counts the background one as a slot."""
    used = sum(slots_of(job.node, slots) for job in running.values() if not job.background)
    need = slots_of(node, slots)
    if need == slots:
        return used == 0
    return used + need + sum(job.background for job in running.values()) <= slots


def _background_candidate(waiting: list[StageNode], running: dict[str, "_Running"], done: set[str],
                          slots: int) -> StageNode | None:
    """The one-core stage to start in the background now, if any: only while a stage that takes every
    slot runs and nothing else is in the background."""
    if slots < 2 or any(job.background for job in running.values()):
        return None
    if not any(slots_of(job.node, slots) == slots and not job.background for job in running.values()):
        return None
    return next((n for n in waiting if n.needs <= done and slots_of(n, slots) == 1), None)


def thread_limits(node: StageNode, slots: int) -> dict[str, str]:
    """The environment that holds a stage to as many threads as the slots it holds: torch, OpenMP and
    OpenBLAS otherwise start one thread per core in every stage, four threads on two cores for two
    evaluations side by side, and a background stage would take the idle moments of every core rather
    than of one. Stages that take every slot, and limits the user has set, are left alone."""
    n = slots_of(node, slots)
    if n >= slots:
        return {}
    return {name: str(n) for name in THREAD_VARIABLES if name not in os.environ}


def repro_parallel(root: Path, slots: int, *, force: bool = False, stream: bool = True,
                   background: bool = False) -> ReproResult:
    """Reproduce every stage of dvc.yaml, up to `slots` cores' worth at once (see the module's text),
    with background stages when `background`. Returns what `dvc_repro` returns for the whole pipeline."""
    nodes = stage_graph(root)
    for node in nodes:
        slots_of(node, slots)  # a bad meta.cores is refused before anything starts
    runs = _to_run(nodes, {n.name for n in nodes} if force else changed_stages(root))
    done = {n.name for n in nodes if n.name not in runs}
    waiting = sorted((n for n in nodes if n.name in runs), key=lambda n: -n.after)  # stable among equals
    by_name = {n.name: n for n in nodes}
    running: dict[str, _Running] = {}
    events: queue.Queue = queue.Queue()
    logs: list[str] = []
    failed: list[_Running] = []
    say = _printer(stream, prefixed=slots > 1)
    if done:
        say(None, f"[paco-fr] {len(done)} of {len(nodes)} stages up to date (dvc status)\n")

    def start(node: StageNode, background: bool = False) -> None:
        cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item",
               *(["--force"] if force else []), node.name]
        proc = subprocess.Popen(cmd, cwd=root, env=tool_env(thread_limits(node, slots)), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        if background:  # before DVC (seconds of imports) starts the stage's command, which inherits it
            lower_to_idle_priority(proc.pid)
            say(None, f"[paco-fr] {node.name} runs in the background (idle priority) beside "
                      f"{', '.join(running)}\n")
        job = running[node.name] = _Running(node, proc, time.perf_counter(), background=background,
                                            began_in_background=background)
        threading.Thread(target=_pump, args=(job, events), daemon=True).start()

    try:
        while waiting or running:
            while waiting and not failed:
                ready = next((n for n in waiting if n.needs <= done
                              and not _held_back(n, waiting, running, done, slots, by_name)), None)
                if ready is not None:
                    _make_room(ready, running, slots)
                if ready is None or not _fits(ready, running, slots):
                    break  # the most urgent ready stage waits for its slots; nothing overtakes it
                waiting.remove(ready)
                start(ready)
            extra = None if failed or not background else _background_candidate(waiting, running, done, slots)
            if extra is not None:
                waiting.remove(extra)
                start(extra, background=True)
            if not running:
                break  # after a failure: nothing left to wait for
            kind, job, text = events.get()
            if kind == "line":
                job.lines.append(text)
                say(job.node.name, text)
                continue
            del running[job.node.name]
            logs.append("".join(job.lines))
            seconds = time.perf_counter() - job.started
            if job.proc.returncode == 0:
                done.add(job.node.name)
                say(None, f"[paco-fr] {len(done)}/{len(nodes)} stages done: {job.node.name} ({seconds:.0f} s)"
                          + (f"; running {', '.join(running)}" if running else "") + "\n")
            else:
                failed.append(job)
                say(None, f"[paco-fr] {job.node.name} failed after {seconds:.0f} s"
                          + (f"; letting {', '.join(running)} finish" if running else "") + "\n")
            if slots_of(job.node, slots) == slots and not job.background:
                _end_background(waiting, running, done, slots)
    except BaseException:
        _stop(running.values())
        raise
    if failed:
        job = failed[0]
        raise PipelineError(f"dvc repro {job.node.name} failed with exit code {job.proc.returncode}:\n"
                            + "".join(job.lines[-40:]))
    if waiting:  # cannot happen in DVC's acyclic graph; never report success for stages that did not run
        raise PipelineError(f"stages never became ready: {', '.join(n.name for n in waiting)}")
    return ReproResult(targets=[], outs=stage_outputs(root=root), log="".join(logs))


def changed_stages(root: Path) -> set[str]:
    """The stages `dvc status` finds changed now (their own dependencies, parameters or outputs)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "--wait-for-lock", "status", "--json"], cwd=root,
                          env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"dvc status failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    return set(json.loads(proc.stdout or "{}"))


def _to_run(nodes: list[StageNode], changed: set[str]) -> set[str]:
    """The changed stages and every stage after one of them: an unchanged stage can only change
    through the outputs of a stage before it (it may still skip itself, if those come out the same)."""
    runs = {n.name for n in nodes} & changed
    grew = True
    while grew:
        before = len(runs)
        runs |= {n.name for n in nodes if n.needs & runs}
        grew = len(runs) > before
    return runs


def _stop(jobs) -> None:
    """Interrupt the running stages as Ctrl-C does (DVC then stops its command), then make sure."""
    for job in jobs:
        job.proc.send_signal(signal.SIGINT)
    for job in jobs:
        try:
            job.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            job.proc.kill()
            job.proc.wait()


def _pump(job: _Running, events: queue.Queue) -> None:
    assert job.proc.stdout is not None
    for line in job.proc.stdout:
        events.put(("line", job, line))
    job.proc.wait()
    events.put(("exit", job, ""))


def _printer(stream: bool, *, prefixed: bool) -> Callable[[str | None, str], None]:
    """Lines of concurrent stages, each prefixed with its stage's name (they interleave)."""
    def say(stage: str | None, line: str) -> None:
        if stream:
            sys.stdout.write(f"[{stage}] {line}" if stage and prefixed else line)
            sys.stdout.flush()
    return say


__all__ = ["StageNode", "stage_graph", "repro_parallel", "ALL_CORES"]
