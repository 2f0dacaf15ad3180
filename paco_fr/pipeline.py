"""Running the pipeline through DVC: what `paco-fr run`, dvc.yaml and the Dagster assets share.

DVC owns execution of the stages (`dvc repro` skips what is up to date and records output hashes
in dvc.lock); the stage commands it runs are `paco-fr <stage>`, which call the library. Parameter
overrides for one run are applied the way `dvc exp run --set-param` applies them: params.yaml is
patched for the duration of the run (under a lock) and restored afterwards, so dvc.lock records
the values that really produced each output, and `dvc status` afterwards truthfully reports those
outputs as out of date with respect to params.yaml.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import yaml

from paco_fr.config import PATCH_ENV, ConfigError, apply_preset, load_config

PARAMS_FILE = "params.yaml"
LOCK_FILE = ".paco_fr_params.lock"


class PipelineError(RuntimeError):
    """A DVC stage failed; the message carries the tail of its output."""


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding dvc.yaml and params.yaml."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() and (folder / PARAMS_FILE).exists():
            return folder
    raise PipelineError(f"no dvc.yaml with params.yaml found at or above {here}")


def _tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
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
    """Expand a preset into key=value pairs (validated against the typed config) plus overrides."""
    pairs: list[str] = []
    base = load_config(root / PARAMS_FILE)
    if preset:
        if preset not in base.presets:
            apply_preset(base, preset)  # raises the standard "unknown preset" error
        pairs += [f"{k}={json.dumps(v)}" for k, v in base.presets[preset].items()]
    pairs += list(overrides)
    load_config(root / PARAMS_FILE, overrides=pairs)  # validate before touching params.yaml
    return pairs


@contextlib.contextmanager
def patched_params(root: Path, pairs: Sequence[str]) -> Iterator[dict[str, str]]:
    """Hold the params lock; if `pairs` is non-empty, patch params.yaml with them (comments kept)
    and restore the original bytes afterwards. Yields the environment stage commands should get."""
    lock_path = root / LOCK_FILE
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        params = root / PARAMS_FILE
        original = params.read_bytes()
        try:
            if pairs:
                params.write_text(_patched_text(original.decode("utf-8"), pairs), encoding="utf-8")
            yield {PATCH_ENV: json.dumps(list(pairs))} if pairs else {}
        finally:
            if params.read_bytes() != original:
                params.write_bytes(original)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _patched_text(text: str, pairs: Sequence[str]) -> str:
    from io import StringIO

    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    doc = rt.load(text)
    for pair in pairs:
        key, _, raw = pair.partition("=")
        node = doc
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if part not in node:
                raise ConfigError(f"cannot patch {key!r}: section {part!r} missing from params.yaml")
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    out = StringIO()
    rt.dump(doc, out)
    return out.getvalue()


@dataclass
class ReproResult:
    targets: list[str]
    outs: dict[str, str]  # output path -> DVC md5 from dvc.lock
    log: str


def dvc_repro(targets: Sequence[str] = (), *, root: Path | None = None, single_item: bool = False,
              force: bool = False, env: dict[str, str] | None = None, stream: bool = True) -> ReproResult:
    """`dvc repro` the targets (all stages when empty); returns the targets' output hashes."""
    root = root or repo_root()
    cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro"]
    if single_item:
        cmd.append("--single-item")
    if force:
        cmd.append("--force")
    cmd += list(targets)
    proc = subprocess.Popen(cmd, cwd=root, env=_tool_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if stream:
            sys.stdout.write(line)
            sys.stdout.flush()
    code = proc.wait()
    log = "".join(lines)
    if code != 0:
        tail = "".join(lines[-40:])
        raise PipelineError(f"dvc repro {' '.join(targets) or '(all)'} failed with exit code {code}:\n{tail}")
    return ReproResult(targets=list(targets), outs=stage_outputs(targets, root=root), log=log)


def stage_outputs(targets: Sequence[str] = (), *, root: Path | None = None) -> dict[str, str]:
    """Output path -> md5 for the given stages (all stages when empty), read from dvc.lock."""
    root = root or repo_root()
    lock_file = root / "dvc.lock"
    if not lock_file.exists():
        return {}
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    wanted = set(targets) or set(stages)
    outs: dict[str, str] = {}
    for name, stage in stages.items():
        if name in wanted:
            for out in stage.get("outs", []):
                outs[out["path"]] = out.get("md5") or out.get("hash", "")
    return outs


def combined_version(outs: dict[str, str]) -> str:
    """One data version for a set of DVC outputs (stable under ordering)."""
    import hashlib

    blob = json.dumps(sorted(outs.items())).encode()
    return hashlib.md5(blob).hexdigest()[:16]
