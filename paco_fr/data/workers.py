"""Worker processes that curate chunks, and the parent loop that feeds them and survives their deaths.

Each worker is a fresh Python process (`python -c ...`, never a fork: MediaPipe is not fork-safe
once initialised, and unlike multiprocessing's spawn it never re-imports the caller's __main__)
with a socket of its own, so a worker killed mid-message cannot wedge the others. The parent hands out one chunk at a
time; the worker reports ("risk", i) when it starts on input i of the chunk and ("done", i) once
that input is written, then ("chunk",) when the chunk's files are published.

When a worker dies (a segfault inside a decoder or the detector, an out-of-memory kill), its chunk
is queued again in *careful* mode (one input at a time) and every input it had in hand gets a
strike. An input with two strikes whose second death was careful (it alone was in hand) is
rejected as `worker_crash`; the chunk then runs again without it. Everything else about the chunk
is redone from scratch, so a retried chunk has exactly the bytes of an untroubled one.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from paco_fr.data.config import CurationConfig
from paco_fr.data.sources import SourceItem
from paco_fr.io import available_cores

log = logging.getLogger(__name__)

# A chunk whose worker keeps dying with no input in hand (e.g. while writing its files) is not
# the input's fault: after this many such deaths the run stops with an error instead of looping.
MAX_BLAMELESS_DEATHS = 3


@dataclass
class ChunkTask:
    part: int
    index: int
    part_dir: Path
    items: list[SourceItem]
    fingerprint: str
    careful: bool = False
    poisoned: dict[int, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, int]:
        return (self.part, self.index)


@dataclass
class WorkerDeath:
    part: int
    chunk: int
    exitcode: int | None
    in_hand: list[str]  # source paths the worker had started and not finished


class WorkerError(RuntimeError):
    """A worker failed in a way that is not an input's fault (a bug, a full disk)."""


# --------------------------------------------------------------------------------------------- #
# the worker side


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so that no orphan keeps writing chunks."""
    try:
        import ctypes  # noqa: PLC0415

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child() -> None:
    """Entry point of a worker process: argv[1] is its end of the socket to the parent."""
    _die_with_parent()
    conn = multiprocessing.connection.Connection(int(sys.argv[1]))
    # The heavy imports now, while the parent is still planning the chunks.
    import imagehash  # noqa: F401, PLC0415
    import pyarrow.parquet  # noqa: F401, PLC0415

    import paco_fr.data.chunks  # noqa: F401, PLC0415
    worker_main(conn, conn.recv())


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def worker_main(conn: multiprocessing.connection.Connection, cfg: CurationConfig) -> None:
    from paco_fr.data.chunks import ChunkWriter  # noqa: PLC0415 - in the child, after spawn
    from paco_fr.data.process import ChunkProcessor  # noqa: PLC0415

    lock = threading.Lock()

    def send(*message: Any) -> None:
        with lock:  # loader threads and the main thread report through one pipe
            conn.send(message)

    processor = ChunkProcessor(cfg)
    try:
        while True:
            task: ChunkTask | None = conn.recv()
            if task is None:
                send("peak", _peak_rss_mb())
                return
            writer = ChunkWriter(task.part_dir, task.index)

            def report(kind: str, position: int, outcome: Any = None) -> None:
                if kind == "risk":
                    send("risk", position)
                else:
                    send("done", position, len(outcome.faces), outcome.row["reason"] is not None)

            try:
                processor.run(task.items, writer.write, report, careful=task.careful, poisoned=task.poisoned)
                writer.finish(task.fingerprint)
            except BaseException:
                writer.abort()
                raise
            send("chunk")
    except (EOFError, BrokenPipeError):
        return  # the parent is gone
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops the run
        try:
            send("error", traceback.format_exc())
        except OSError:
            pass
        raise
    finally:
        processor.close()


# --------------------------------------------------------------------------------------------- #
# the parent side


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    task: ChunkTask | None = None
    in_hand: set[int] = field(default_factory=set)
    tally: list[int] = field(default_factory=lambda: [0, 0, 0])  # inputs, faces, rejected of its chunk so far


class ChunkPool:
    """Runs chunk tasks on `workers` processes. In the parent, `on_input(inputs, faces, rejected)` adds
    finished work to the progress (negative when a dead worker's chunk is to be redone) and
    `on_chunk(task)` is called for every published chunk, and `on_drained()` once, when the last chunk has
    been handed out (from then on cores free up). A worker left without work is told to stop at once, so
    that its exit overlaps the last chunks."""

    def __init__(self, cfg: CurationConfig, workers: int, *, on_input, on_chunk,
                 on_drained: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.n_workers = max(1, int(workers))
        self.on_input = on_input
        self.on_chunk = on_chunk
        self.on_drained = on_drained
        self.deaths: list[WorkerDeath] = []
        self.rejected_for_crashes: list[str] = []
        self.worker_peak_rss_mb: float | None = None  # the largest worker's VmHWM
        self._workers: list[_Worker] = []
        self._strikes: Counter[tuple[int, int, int]] = Counter()
        self._blameless: Counter[tuple[int, int]] = Counter()

    def start(self, expected_tasks: int) -> None:
        """Start the processes ahead of the work (their imports overlap the caller's planning)."""
        while len(self._workers) < min(self.n_workers, expected_tasks):
            self._workers.append(self._start())

    def run(self, tasks: list[ChunkTask]) -> None:
        queue = deque(tasks)
        workers = self._workers
        stopping: list[_Worker] = []
        try:
            while queue or any(w.task for w in workers):
                # (a retried chunk can need a worker again after the idle ones were stopped)
                while queue and len(workers) < min(self.n_workers, len(queue) + sum(1 for w in workers if w.task)):
                    workers.append(self._start())
                for worker in workers:
                    if worker.task is None and queue:
                        worker.task = queue.popleft()
                        worker.in_hand = set()
                        worker.tally = [0, 0, 0]
                        worker.conn.send(worker.task)
                if not queue:
                    if self.on_drained is not None:
                        self.on_drained, on_drained = None, self.on_drained
                        on_drained()
                    for idle in [w for w in workers if w.task is None]:
                        workers.remove(idle)
                        self._ask_to_stop(idle)
                        stopping.append(idle)
                busy = [w for w in workers if w.task is not None]
                if not busy:
                    break
                ready = multiprocessing.connection.wait([w.conn for w in busy])
                for worker in busy:
                    if worker.conn in ready:
                        if not self._drain(worker):
                            workers.remove(worker)
                            self._handle_death(worker, queue)
        finally:
            for worker in workers:  # all asked first: they exit side by side
                self._ask_to_stop(worker)
            for worker in stopping + workers:
                self._wait_stopped(worker)
            workers.clear()

    def _start(self) -> _Worker:
        parent, child = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-c", "from paco_fr.data.workers import _child; _child()", str(child.fileno())],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        child.close()
        conn = multiprocessing.connection.Connection(parent.detach())
        conn.send(self.cfg)
        return _Worker(process, conn)

    def _ask_to_stop(self, worker: _Worker) -> None:
        try:
            if worker.process.poll() is None:
                worker.conn.send(None)
        except OSError:
            pass

    def _wait_stopped(self, worker: _Worker) -> None:
        """Take its last message (its peak memory); kill it if none comes within 10 s. Its exit
        (MediaPipe's graphs closing, ~0.4 s) is awaited on a thread, beside the caller's next step."""
        said_goodbye = False
        try:
            said_goodbye = worker.conn.poll(10)
            if said_goodbye:
                self._handle(worker, worker.conn.recv())
        except (OSError, EOFError):
            said_goodbye = False
        finally:
            if not said_goodbye and worker.process.poll() is None:
                worker.process.kill()
            threading.Thread(target=_reap, args=(worker,), name="curate-reap", daemon=True).start()

    def _drain(self, worker: _Worker) -> bool:
        """Handle every message the worker has sent; False once it is dead."""
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, ConnectionResetError):
            worker.process.wait()  # its end of the socket closed: it died; what it sent is handled
            return False
        return True

    def _handle(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "risk":
            worker.in_hand.add(message[1])
        elif kind == "done":
            worker.in_hand.discard(message[1])
            tally = (1, message[2], int(message[3]))
            worker.tally = [a + b for a, b in zip(worker.tally, tally)]
            self.on_input(*tally)
        elif kind == "chunk":
            task, worker.task = worker.task, None
            self.on_chunk(task)
        elif kind == "peak" and message[1] is not None:
            self.worker_peak_rss_mb = max(self.worker_peak_rss_mb or 0.0, message[1])
        elif kind == "error":
            raise WorkerError(f"curation worker failed on chunk {worker.task.index} of partition "
                              f"{worker.task.part}:\n{message[1]}")

    def _handle_death(self, worker: _Worker, queue: deque[ChunkTask]) -> None:
        task = worker.task
        worker.conn.close()
        if task is None:
            return
        self.on_input(*(-n for n in worker.tally))  # the retry counts them again
        exitcode = worker.process.returncode
        in_hand = sorted(worker.in_hand)
        paths = [task.items[i].rel_path for i in in_hand]
        self.deaths.append(WorkerDeath(task.part, task.index, exitcode, paths))
        how = f"signal {signal.Signals(-exitcode).name}" if exitcode and exitcode < 0 else f"exit code {exitcode}"
        log.warning("curation worker died (%s) on chunk %d of partition %d with %s in hand; retrying the chunk "
                    "one input at a time", how, task.index, task.part, ", ".join(paths) or "no input")
        if not in_hand:
            self._blameless[task.key] += 1
            if self._blameless[task.key] >= MAX_BLAMELESS_DEATHS:
                raise WorkerError(f"the worker died {MAX_BLAMELESS_DEATHS} times on chunk {task.index} of partition "
                                  f"{task.part} with no input in hand ({how})")
        for position in in_hand:
            self._strikes[(*task.key, position)] += 1
        poisoned = dict(task.poisoned)
        if task.careful and len(in_hand) == 1 and self._strikes[(*task.key, in_hand[0])] >= 2:
            poisoned[in_hand[0]] = f"the worker process died twice on this input (last: {how})"
            self.rejected_for_crashes.append(paths[0])
            print(f"curate: {paths[0]}: rejected as worker_crash (the worker died twice on it)", file=sys.stderr)
        queue.appendleft(ChunkTask(task.part, task.index, task.part_dir, task.items, task.fingerprint,
                                   careful=True, poisoned=poisoned))


def _reap(worker: _Worker) -> None:
    try:
        worker.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()
    worker.conn.close()


def default_workers() -> int:
    """The machine's cores available to this process."""
    return available_cores()
