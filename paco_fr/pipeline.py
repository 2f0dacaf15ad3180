"""Running the pipeline through DVC: what `paco-fr run`, dvc.yaml and the Dagster assets share.

DVC owns execution of the stages (`dvc repro` skips what is up to date and records output md5s in
dvc.lock); the stage commands it runs are `paco-fr <stage>`, which call the library. Production runs
take every parameter from the committed params.yaml. A run with overrides is a DVC experiment
(`dvc exp run --set-param ...`) run in a git worktree of its own that shares the repository's DVC cache
and git refs: the shared params.yaml is never rewritten (not even for a moment, as `dvc exp run --temp`
does while it stashes the workspace), production artifacts are never overwritten, and `dvc exp show`
lists the experiment with its metrics.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from paco_fr.config import ConfigError, apply_preset, load_config

PARAMS_FILE = "params.yaml"
# The raw folder's versions are recorded when `dvc add` makes them, not by a stage: their own log.
RAW_LOG = Path("lineage") / "raw.jsonl"


class PipelineError(RuntimeError):
    """A DVC command failed; the message carries the tail of its output."""


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding dvc.yaml and params.yaml."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() and (folder / PARAMS_FILE).exists():
            return folder
    raise PipelineError(f"no dvc.yaml with params.yaml found at or above {here}")


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Stage commands are `paco-fr ...`: make this interpreter's scripts reachable even when the
    # virtualenv is not activated.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    if extra:
        env.update(extra)
    return env


def override_pairs(preset: str | None, overrides: Sequence[str], root: Path) -> list[str]:
    """Expand a preset into key=value pairs plus overrides, validated against the typed config
    (an unknown key or a value of the wrong type raises ConfigError before anything runs)."""
    pairs: list[str] = []
    base = load_config(root / PARAMS_FILE)
    if preset:
        if preset not in base.presets:
            apply_preset(base, preset)  # raises the standard "unknown preset" error
        pairs += [f"{k}={json.dumps(v)}" for k, v in base.presets[preset].items()]
    pairs += list(overrides)
    load_config(root / PARAMS_FILE, overrides=pairs)
    return pairs


def _run_dvc(args: Sequence[str], *, root: Path, env: dict[str, str] | None = None, stream: bool = True,
             what: str = "", on_line: Callable[[str], None] | None = None) -> str:
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.Popen(cmd, cwd=root, env=tool_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if stream:
            sys.stdout.write(line)
            sys.stdout.flush()
        if on_line is not None:
            on_line(line)
    code = proc.wait()
    if code != 0:
        raise PipelineError(f"dvc {what or ' '.join(args)} failed with exit code {code}:\n{''.join(lines[-40:])}")
    return "".join(lines)


@dataclass
class ReproResult:
    targets: list[str]
    outs: dict[str, str]  # output path -> DVC md5 from dvc.lock
    log: str

    @property
    def ran(self) -> list[str]:
        """Stages DVC ran (rather than skipped as up to date)."""
        return re.findall(r"Running stage '([^']+)'", self.log)


def dvc_repro(targets: Sequence[str] = (), *, root: Path | None = None, single_item: bool = False,
              force: bool = False, env: dict[str, str] | None = None, stream: bool = True,
              on_line: Callable[[str], None] | None = None) -> ReproResult:
    """`dvc repro` the targets (all stages when empty); returns the targets' output md5s. Waits for
    DVC's repository lock when another DVC command holds it. `on_line` sees every line of output
    (the stages' progress lines included) as it comes."""
    root = root or repo_root()
    args = ["--wait-for-lock", "repro", *(["--single-item"] if single_item else []), *(["--force"] if force else []),
            *targets]
    log = _run_dvc(args, root=root, env=env, stream=stream, what=f"repro {' '.join(targets) or '(all)'}",
                   on_line=on_line)
    return ReproResult(targets=list(targets), outs=stage_outputs(targets, root=root), log=log)


# PyYAML's pure-Python parser takes about a second for the dvc.lock of a default run (80 kB, 31 stages),
# and recording a run in Dagster reads it once per asset partition: 31 reads were 20 of that recording's
# 44 s. libyaml's parser (PyYAML's C extension, when present) and a cache keyed on the file's bytes (not
# its mtime, which can repeat within a clock tick) make a read milliseconds.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LOCK_CACHE: dict[str, tuple[bytes, dict[str, Any]]] = {}


def lock_stages(root: Path) -> dict[str, Any]:
    """Stage name -> its dvc.lock entry (a copy: callers may change it)."""
    lock_file = Path(root) / "dvc.lock"
    try:
        text = lock_file.read_bytes()
    except FileNotFoundError:
        return {}
    key = str(lock_file.resolve())
    cached = _LOCK_CACHE.get(key)
    if cached is None or cached[0] != text:
        cached = _LOCK_CACHE[key] = (text, (yaml.load(text, Loader=_SAFE_LOADER) or {}).get("stages", {}))
    return copy.deepcopy(cached[1])


def stage_outputs(targets: Sequence[str] = (), *, root: Path | None = None) -> dict[str, str]:
    """Output path -> md5 for the given stages (all stages when empty), read from dvc.lock."""
    root = root or repo_root()
    stages = lock_stages(root)
    wanted = set(targets) or set(stages)
    outs: dict[str, str] = {}
    for name, stage in stages.items():
        if name in wanted:
            for out in stage.get("outs", []):
                outs[out["path"]] = out.get("md5") or out.get("hash", "")
    return outs


def declared_outputs(target: str, root: Path) -> list[str]:
    """The outputs dvc.yaml declares for stage `target` (known before it has ever run)."""
    from dvc.repo import Repo

    root = root.resolve()
    with Repo(str(root)) as repo:
        stage = repo.stage.collect(str(root / "dvc.yaml") + ":" + target)[0]
        return [Path(o.fs_path).resolve().relative_to(root).as_posix() for o in stage.outs]


def stage_output(stage: str, path: str, root: Path) -> str:
    """The md5 dvc.lock records for `path` produced by `stage` (the artifact's identity)."""
    outs = stage_outputs([stage], root=root)
    if path not in outs:
        raise PipelineError(f"dvc.lock has no output {path} of stage {stage}: has it run?")
    return outs[path]


# --------------------------------------------------------------------------------------------- #
# the raw folder: versioned on every path


def version_raw(root: Path, raw_dir: str, *, params: dict[str, Any] | None = None) -> str:
    """`dvc add` the raw folder (its files go into the DVC cache, `<raw>.dvc` records its md5) and
    record that version in the lineage log; returns the md5. Every entry point calls this before
    curation: `paco-fr run`, and the Dagster raw asset behind the UI, the schedule and the sensor."""
    from paco_fr.lineage import find_record, record_provenance

    raw = root / raw_dir
    if not raw.is_dir():
        raise PipelineError(f"raw folder {raw} does not exist")
    if not raw.resolve().is_relative_to(root.resolve()):
        raise PipelineError(f"raw folder {raw} is outside the repository {root}: DVC can only version what is "
                            "inside it (move or link the images into the repository, or set paths.raw_dir)")
    _run_dvc(["add", "-q", raw_dir], root=root, stream=False, what=f"add {raw_dir}")
    dvc_file = raw.with_name(raw.name + ".dvc")
    md5 = (yaml.safe_load(dvc_file.read_text()) or {})["outs"][0]["md5"]
    if find_record(raw_dir, md5, root=root) is None:
        record_provenance(raw, "raw", inputs={}, params=params or {}, key=md5, log=root / RAW_LOG)
    return md5


# --------------------------------------------------------------------------------------------- #
# experiments: overrides that never touch the workspace


@dataclass
class ExperimentResult:
    name: str
    rev: str                  # the experiment commit
    params: list[str]
    log: str
    metrics: dict[str, Any] = field(default_factory=dict)


def run_experiment(root: Path, pairs: Sequence[str], *, targets: Sequence[str] = (), name: str | None = None,
                   env: dict[str, str] | None = None, stream: bool = True) -> ExperimentResult:
    """Reproduce with overrides as a DVC experiment, in a git worktree of its own: the user's workspace
    (params.yaml included, even while they edit it) is never written. The worktree starts from HEAD
    plus a copy of the workspace's uncommitted files, shares the repository's DVC cache and git refs,
    and runs `dvc exp run --set-param ...` there; the experiment commit lands in this repository's
    refs (`dvc exp show` lists it, `dvc exp apply NAME` brings it into the workspace) and the worktree
    is removed."""
    load_config(root / PARAMS_FILE, overrides=list(pairs))  # refuse bad keys before DVC starts
    worktree = root / ".dvc" / "tmp" / "paco-fr-experiments" / uuid.uuid4().hex[:12]
    worktree.parent.mkdir(parents=True, exist_ok=True)
    _git(root, "worktree", "add", "--detach", str(worktree), "HEAD")
    try:
        _carry_workspace(root, worktree)
        _share_dvc_cache(root, worktree)
        args = ["exp", "run", *(["--name", name] if name else [])]
        for pair in pairs:
            args += ["--set-param", _hydra_pair(pair)]
        log = _run_dvc([*args, *targets], root=worktree, env=env, stream=stream, what="exp run")
    finally:
        _git(root, "worktree", "remove", "--force", str(worktree))
    found = re.findall(r"Ran experiment\(s\): (\S+)", log)
    if not found:
        raise PipelineError(f"dvc exp run finished without naming its experiment:\n{log[-2000:]}")
    exp = found[-1]
    rev = _git(root, "rev-parse", _exp_ref(root, exp))
    return ExperimentResult(name=exp, rev=rev, params=list(pairs), log=log, metrics=experiment_metrics(root, rev))


def _carry_workspace(root: Path, worktree: Path) -> None:
    """The workspace's uncommitted state of git-visible files (dvc.lock, .dvc files, lineage logs,
    a params.yaml being edited) as it is now, copied into the worktree."""
    status = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"], cwd=root,
                            capture_output=True, check=True).stdout.decode()
    entries = [e for e in status.split("\0") if e]
    skip_next = False
    for entry in entries:
        if skip_next:  # the source path of a rename
            skip_next = False
            continue
        code, path = entry[:2], entry[3:]
        skip_next = "R" in code or "C" in code
        target = worktree / path
        if "D" in code:
            target.unlink(missing_ok=True)
        elif (root / path).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / path, target)


def _share_dvc_cache(root: Path, worktree: Path) -> None:
    """The worktree reads and writes the repository's DVC cache, and links rather than copies from it;
    benchmark caches (keyed by what built them) are shared too."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        cache = repo.cache.local.path
    cache_root = Path(cache).parents[1]  # <cache dir>/files/md5 -> <cache dir>
    _run_dvc(["cache", "dir", "--local", str(cache_root)], root=worktree, stream=False, what="cache dir")
    _run_dvc(["config", "--local", "cache.type", "reflink,hardlink,symlink,copy"], root=worktree, stream=False,
             what="config cache.type")
    _run_dvc(["checkout", "--quiet", "--allow-missing"], root=worktree, stream=False, what="checkout")
    benchmarks = root / "data" / "benchmarks"
    if benchmarks.is_dir() and not (worktree / "data" / "benchmarks").exists():
        (worktree / "data").mkdir(exist_ok=True)
        (worktree / "data" / "benchmarks").symlink_to(benchmarks.resolve(), target_is_directory=True)


def _hydra_pair(pair: str) -> str:
    """A key=value override in the syntax of `dvc exp run --set-param` (Hydra's): YAML flow values
    (lists, quoted strings) are re-emitted as JSON, which Hydra's grammar accepts."""
    key, _, raw = pair.partition("=")
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, (list, dict)):
        return f"{key}={json.dumps(value)}"
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.\-/]+", value):
        return f"{key}={json.dumps(value)}"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if value is None:
        return f"{key}=null"
    return f"{key}={value}"


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise PipelineError(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def _exp_ref(root: Path, name: str) -> str:
    for line in _git(root, "for-each-ref", "--format=%(refname)", "refs/exps").splitlines():
        if line.rsplit("/", 1)[-1] == name:
            return line
    raise PipelineError(f"no experiment named {name} (git refs/exps)")


def experiment_metrics(root: Path, rev: str) -> dict[str, Any]:
    """The metrics files of an experiment commit, by path (what `dvc exp show` tabulates)."""
    import dvc.api

    try:
        return dict(dvc.api.metrics_show(rev=rev, repo=str(root)))
    except Exception as exc:  # metrics are a convenience of the result, not its proof
        return {"error": f"{type(exc).__name__}: {exc}"}


def read_experiment_file(root: Path, rev: str, path: str) -> bytes:
    """A file (git- or DVC-tracked) as it is in an experiment commit."""
    import dvc.api

    return dvc.api.read(path, repo=str(root), rev=rev, mode="rb")


__all__ = ["PipelineError", "ReproResult", "ExperimentResult", "repo_root", "dvc_repro", "stage_outputs",
           "stage_output", "override_pairs", "version_raw", "run_experiment", "read_experiment_file", "tool_env",
           "ConfigError"]
