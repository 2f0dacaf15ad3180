"""The README's main command against an older commit's, from fresh clones, alternating in one run.

For each of REF (the baseline) and CANDIDATE (default: HEAD): `git clone` this repository, check out
the commit, and time `paco-fr run` in the clone, the way a user runs the README's command (no DVC
cache, no run cache, nothing built). Both use this virtual environment's packages with the clone's
own code first on the path (`PYTHONPATH`), so the two runs differ only in the project's code and
configuration. Wall time and CPU seconds of the whole process tree (RUSAGE_CHILDREN), per repeat;
the ratio is candidate / baseline of the best wall times. Target: x1.0 or less.

    python benchmarks/main_job.py --baseline f1f3e22            # ~2 x 13 min on 2 cores
    python benchmarks/main_job.py --baseline f1f3e22 --repeats 2

Prints a table and writes benchmarks/results/main_job.json (earlier results kept under "earlier").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "main_job.json"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def clone(ref: str, where: Path) -> str:
    """A fresh clone of this repository at `ref`; returns the full commit id."""
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(where)], check=True)
    subprocess.run(["git", "-C", str(where), "checkout", "-q", ref], check=True)
    return subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def run_main_job(repo: Path, log: Path) -> dict:
    """`paco-fr run` in `repo` with its own code; its output goes to `log`."""
    home = repo / ".dagster_home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(repo), "DAGSTER_HOME": str(home), "WANDB_MODE": "offline",
           "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "DAGSTER_DISABLE_TELEMETRY": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # dvc.yaml's `paco-fr`
    env.pop("PACO_FR_LINEAGE_LOG", None)
    env.pop("WANDB_SERVICE", None)
    cpu0, t0 = _cpu(), time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "paco_fr.cli", "run"], cwd=repo, env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"paco-fr run failed in {repo} (exit {proc.returncode}); last lines:\n"
                           + "".join(log.read_text().splitlines(True)[-30:]))
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, metavar="REF")
    parser.add_argument("--candidate", default="HEAD", metavar="REF")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work-dir", default=None, help="kept afterwards (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="paco-fr-mainjob-"))
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    result: dict = {"benchmark": "main_job", "command": " ".join(["python benchmarks/main_job.py", *(argv or sys.argv[1:])]),
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform(), "load_avg_1m_at_start": load},
                    "runs": {"baseline": [], "candidate": []}, "commits": {}}
    try:
        for repeat in range(args.repeats):
            for name, ref in (("baseline", args.baseline), ("candidate", args.candidate)):
                repo = work / f"{name}-{repeat}"
                shutil.rmtree(repo, ignore_errors=True)
                result["commits"][name] = clone(ref, repo)
                print(f"[{time.strftime('%H:%M:%S')}] {name} {result['commits'][name][:10]}: paco-fr run ...",
                      flush=True)
                run = run_main_job(repo, work / f"{name}-{repeat}.log")
                print(f"    {run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} CPU-s", flush=True)
                result["runs"][name].append(run)
                if not args.work_dir:
                    shutil.rmtree(repo, ignore_errors=True)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    best = {k: min(r["wall_s"] for r in v) for k, v in result["runs"].items()}
    result["best_wall_s"] = best
    result["ratio"] = best["candidate"] / best["baseline"]
    result["load_avg_1m_at_end"] = os.getloadavg()[0]
    print(f"\nmain job (`paco-fr run` in a fresh clone; {os.cpu_count()} CPUs, load {load:.2f} at start)")
    for name in ("baseline", "candidate"):
        print(f"{name:9}  {result['commits'][name][:10]}  {best[name]:8.0f} s  "
              + ("baseline" if name == "baseline" else f"x{result['ratio']:.2f}"))
    if RESULTS.exists():  # earlier pairs stay on record (one pair is a small sample on a drifting VM)
        previous = json.loads(RESULTS.read_text())
        result["earlier"] = [*previous.pop("earlier", []), previous]
    sys.path.insert(0, str(ROOT))
    from paco_fr.io import write_json_atomic

    write_json_atomic(RESULTS, result)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
