"""One progress view over all curation workers, for a person and for an orchestrator.

The parent process counts the inputs its workers finish and shows one tqdm bar (inputs, faces
and rejections so far, faces/s, ETA). Every `every_s` seconds, and once at the end, it also
writes one line to stderr (unless `json_lines` is off) that an orchestrator can relay (Dagster's run log, a CI log):

    {"event": "curate_progress", "stage": "curate-part 0/2", "done": 1200, "total": 5000,
     "faces": 1150, "rejected": 50, "inputs_per_s": 81.2, "faces_per_s": 77.9, "eta_s": 46.8}

`done`, `faces` and `rejected` count this run's work plus what it reused; the rates are of this
run's work only. `faces` are candidate faces: duplicates across the corpus are decided by the merge.
An `on_progress(dict)` callback receives the same dictionaries.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable


class Progress:
    def __init__(self, total: int, *, label: str, reused: tuple[int, int, int] = (0, 0, 0), bar: bool = True,
                 every_s: float = 10.0, json_lines: bool = True, on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        from tqdm.auto import tqdm  # noqa: PLC0415

        self.label = label
        self.total = total
        self.done, self.faces, self.rejected = reused
        self._reused = self.done
        self._started = time.monotonic()
        self._every = every_s
        self._json_lines = json_lines
        self._last_json = self._started
        self._on_progress = on_progress
        self._bar = tqdm(total=total, initial=self.done, desc=label, unit="img", disable=not bar, file=sys.stderr,
                         dynamic_ncols=True)
        self._bar.set_postfix(faces=self.faces, rejected=self.rejected, refresh=False)

    def add(self, inputs: int, faces: int, rejected: int) -> None:
        self.done += inputs
        self.faces += faces
        self.rejected += rejected
        self._bar.update(inputs)
        self._bar.set_postfix(faces=self.faces, rejected=self.rejected, refresh=False)
        now = time.monotonic()
        if now - self._last_json >= self._every:
            self._last_json = now
            self._emit(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        worked = self.done - self._reused
        rate = worked / elapsed
        face_rate = self.faces / max(self.done, 1) * rate
        left = self.total - self.done
        return {"event": "curate_progress", "stage": self.label, "done": self.done, "total": self.total,
                "faces": self.faces, "rejected": self.rejected, "inputs_per_s": round(rate, 2),
                "faces_per_s": round(face_rate, 2), "eta_s": round(left / rate, 1) if rate > 0 else None}

    def _emit(self, snapshot: dict[str, Any]) -> None:
        if self._on_progress is not None:
            self._on_progress(snapshot)
        if self._json_lines:
            line = json.dumps(snapshot)
            if self._bar.disable:
                print(line, file=sys.stderr, flush=True)
            else:
                self._bar.write(line, file=sys.stderr)

    def close(self) -> dict[str, Any]:
        snapshot = self.snapshot()
        self._emit(snapshot)
        self._bar.close()
        return snapshot
