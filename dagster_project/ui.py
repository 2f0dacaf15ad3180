"""`paco-fr-ui`: start `dagster dev` (webserver and daemon: schedules, sensors, automation, the run
queue) for this project's code location `paco_fr` (workspace.yaml), with a persistent DAGSTER_HOME
inside the repo (.dagster_home/: telemetry off, queued runs, one slot per pool), and the picture
server the asset pages show their pictures from (.dagster_home/pictures, see dagster_project.metadata).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from paco_fr.pipeline import repo_root


def prepare_dagster_home(root: Path) -> Path:
    """.dagster_home/ with the project's instance settings (kept up to date with dagster.yaml)."""
    home = root / ".dagster_home"
    (home / "pictures").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paco-fr-ui", description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port")
    parser.add_argument("--pictures-port", type=int, default=3001, help="the picture server's port")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    root = repo_root()
    home = prepare_dagster_home(root)
    env = dict(os.environ)
    env.update(DAGSTER_HOME=str(home), PACO_FR_REPO=str(root),
               PACO_FR_PICTURES_URL=f"http://127.0.0.1:{args.pictures_port}")
    for key, value in (("DAGSTER_DISABLE_TELEMETRY", "1"), ("DVC_NO_ANALYTICS", "1"), ("HF_HUB_OFFLINE", "1"),
                       ("WANDB_MODE", "offline")):
        env.setdefault(key, value)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dagster = shutil.which("dagster", path=env["PATH"]) or "dagster"
    pictures = subprocess.Popen([sys.executable, "-m", "http.server", str(args.pictures_port), "--bind", "127.0.0.1",
                                 "--directory", str(home / "pictures")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    cmd = [dagster, "dev", "-w", str(root / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port), *rest]
    print(f"DAGSTER_HOME={home} {' '.join(cmd)} (pictures on :{args.pictures_port})", flush=True)
    try:
        return subprocess.call(cmd, cwd=root, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        pictures.terminate()
        pictures.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
