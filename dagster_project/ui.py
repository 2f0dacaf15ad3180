"""`paco-fr-ui`: start `dagster dev` (webserver and daemon: schedules, sensors, automation, the run
queue) for this project's code location `paco_fr` (workspace.yaml), with a persistent DAGSTER_HOME
inside the repo (.dagster_home/: telemetry off, queued runs, one slot per pool)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from paco_fr.pipeline import repo_root


def prepare_dagster_home(root: Path) -> Path:
    """.dagster_home/ with the project's instance settings (kept up to date with dagster.yaml)."""
    home = root / ".dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    return home


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = repo_root()
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(prepare_dagster_home(root))
    env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("WANDB_MODE", "offline")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dagster = shutil.which("dagster", path=env["PATH"]) or "dagster"
    cmd = [dagster, "dev", "-w", str(root / "workspace.yaml"), "-h", "127.0.0.1", "-p", "3000", *argv]
    print(f"DAGSTER_HOME={env['DAGSTER_HOME']} {' '.join(cmd)}", flush=True)
    os.chdir(root)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
