"""Resume bookkeeping of the curation stage: a journal per completed shard.

After shard N is renamed into place, ``.curate-work/journal-NNNNNN.json`` records the shard's
manifest rows, the rejections since the previous journal and the input cursor. A restarted run
reuses the longest run of consecutive journals whose shards are present with the recorded size,
provided ``run.json`` shows the same inputs and settings; every other shard, journal and partial
file is deleted, so a partial shard is never read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

from paco_fr.data.config import CurationConfig
from paco_fr.data.shards import remove_partials, shard_name
from paco_fr.data.sources import SourceItem, fingerprint
from paco_fr.io import write_json_atomic

WORK_DIR = ".curate-work"
SHARD_DIR = "shards"
JOURNAL_VERSION = 1


def journal_path(work: Path, index: int) -> Path:
    return work / f"journal-{index:06d}.json"


def write_journal(work: Path, index: int, journal: dict[str, Any]) -> Path:
    return write_json_atomic(journal_path(work, index), {"version": JOURNAL_VERSION, **journal})


def run_fingerprint(cfg: CurationConfig, items: Iterable[SourceItem]) -> str:
    """What a journal is valid for: the inputs as discovered and every setting that changes outputs."""
    settings = dataclasses.asdict(cfg)
    settings.pop("preview_faces", None)  # does not change shards or tables
    settings.pop("source", None)
    payload = json.dumps({"journal": JOURNAL_VERSION, "inputs": fingerprint(items), "cfg": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_out_dir(out_dir: Path, run_id: str, *, resume: bool, final_files: Sequence[str]) -> list[dict[str, Any]]:
    """Load the journals a resumed run may reuse; delete every other trace of earlier runs (only
    files this stage writes; anything else in `out_dir` is left alone)."""
    work = out_dir / WORK_DIR
    shard_dir = out_dir / SHARD_DIR
    # The manifest goes first: from here on the folder never looks like a finished corpus.
    for name in final_files:
        (out_dir / name).unlink(missing_ok=True)
    remove_partials(shard_dir)
    journals: list[dict[str, Any]] = []
    run_file = work / "run.json"
    if resume and run_file.exists():
        try:
            same_run = json.loads(run_file.read_text()).get("run") == run_id
        except (OSError, ValueError):
            same_run = False
        if same_run:
            journals = load_journals(out_dir)
    if not journals:
        shutil.rmtree(work, ignore_errors=True)
    keep = {j["shard"].split("/")[-1] for j in journals if j["shard"]}
    if shard_dir.is_dir():
        for path in shard_dir.glob("shard-*.tar"):
            if path.name not in keep:
                path.unlink()
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "run.json", {"run": run_id})
    return journals


def load_journals(out_dir: Path) -> list[dict[str, Any]]:
    """Consecutive valid journals from 0; the first missing, unreadable or inconsistent one ends
    the list and it and everything after it is deleted."""
    work = out_dir / WORK_DIR
    journals: list[dict[str, Any]] = []
    shard_index = 0
    for path in sorted(work.glob("journal-*.json")):
        expected = work / f"journal-{len(journals):06d}.json"
        ok = path == expected
        journal = None
        if ok:
            try:
                journal = json.loads(path.read_text(encoding="utf-8"))
                ok = journal.get("version") == JOURNAL_VERSION
            except (OSError, ValueError):
                ok = False
        if ok and journal["shard"] is not None:
            shard = out_dir / journal["shard"]
            ok = (journal["shard"] == f"{SHARD_DIR}/{shard_name(shard_index)}" and shard.is_file()
                  and shard.stat().st_size == journal["shard_bytes"])
            shard_index += 1
        if not ok:
            for stale in sorted(work.glob("journal-*.json")):
                if stale.name >= path.name:
                    stale.unlink(missing_ok=True)
            break
        journals.append(journal)
    return journals
