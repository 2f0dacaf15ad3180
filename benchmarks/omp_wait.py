"""How torch's OpenMP threads wait: libgomp's default (spin, then sleep) against passive waiting, which
paco_fr/__init__.py sets unless the user did. Alternating in one run, on this workspace's built data.

Two pieces of the main job, each run with both policies:

- pretrain-alone: `paco-fr pretrain` with the default settings, capped at --steps steps (the training
  process and its DataLoader worker share the cores);
- two-evaluations: two `paco-fr evaluate` processes at once, as `paco-fr run` starts them, with the
  feature cache off so that both extract features with torch's threads.

The spin arm imports torch before paco_fr with OMP_WAIT_POLICY unset, so libgomp starts with its default
and paco_fr's setting comes too late; the passive arm runs the `paco-fr` entry point as a user does.
Both arms must give the same output bytes (compared by DVC's directory md5).

    python benchmarks/omp_wait.py                  # needs data/corpus, data/regions, data/encoders/paco_fr-s0
    python benchmarks/omp_wait.py --repeats 2 --steps 15

Prints a table and writes benchmarks/results/omp_wait.json.
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
RESULTS = ROOT / "benchmarks" / "results" / "omp_wait.json"
ENCODER = "data/encoders/paco_fr-s0"
BENCHMARKS = ("synthetic_expression", "synthetic_parsing")
# The spin arm: torch (and its libgomp) loads before paco_fr can set the policy.
SPIN = ("import os, sys; os.environ.pop('OMP_WAIT_POLICY', None); import torch; "
        "from paco_fr.cli import main; sys.exit(main(sys.argv[1:]))")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _command(policy: str, args: list[str]) -> list[str]:
    if policy == "spin":
        return [sys.executable, "-c", SPIN, *args]
    return [str(Path(sys.executable).parent / "paco-fr"), *args]


def _env(lineage: Path) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2",
           "PACO_FR_LINEAGE_LOG": str(lineage)}  # records of these throw-away runs stay out of lineage/
    env.pop("OMP_WAIT_POLICY", None)
    return env


def _timed(commands: list[list[str]], env: dict[str, str]) -> tuple[float, float]:
    """Start `commands` at once; (wall seconds until the last ends, CPU seconds of all of them)."""
    cpu0, t0 = _cpu(), time.perf_counter()
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{' '.join(proc.args[-6:])} failed:\n{err[-2000:]}")
    return time.perf_counter() - t0, _cpu() - cpu0


def pretrain_alone(policy: str, work: Path, steps: int) -> tuple[float, float, list[str]]:
    out = work / f"pretrain-{policy}"
    shutil.rmtree(out, ignore_errors=True)
    args = ["pretrain", "--corpus", "data/corpus", "--regions", "data/regions", "--out", str(out), "--preset",
            "paco_fr", "--set", "seed=0", "--set", f"train.max_steps={steps}", "--no-progress"]
    wall, cpu = _timed([_command(policy, args)], _env(work / "lineage.jsonl"))
    return wall, cpu, [_md5(out)]


def two_evaluations(policy: str, work: Path) -> tuple[float, float, list[str]]:
    outs = [work / f"eval-{policy}-{b}" for b in BENCHMARKS]
    commands = []
    for bench, out in zip(BENCHMARKS, outs):
        shutil.rmtree(out, ignore_errors=True)
        commands.append(_command(policy, ["evaluate", "--encoder", ENCODER, "--benchmark", bench, "--out", str(out),
                                          "--set", "eval.feature_cache=false"]))
    wall, cpu = _timed(commands, _env(work / "lineage.jsonl"))
    return wall, cpu, [_md5(o) for o in outs]


def _md5(path: Path) -> str:
    from paco_fr.lineage import content_hash

    return content_hash(path)


CASES = {"pretrain-alone": pretrain_alone, "two-evaluations": two_evaluations}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="OpenMP waiting: libgomp's default (spin) against passive, alternating, "
                                 "on two pieces of the main job.")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=15, help="pre-training steps per run")
    args = ap.parse_args(argv)
    for needed in ("data/corpus", "data/regions", ENCODER):
        if not (ROOT / needed).is_dir():
            print(f"omp_wait: {needed} is missing: run `paco-fr run` first", file=sys.stderr)
            return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="omp-wait-") as tmp:
        work = Path(tmp)
        for case, fn in CASES.items():
            runs: dict[str, list[tuple[float, float, list[str]]]] = {"spin": [], "passive": []}
            for _ in range(args.repeats):
                for policy in ("spin", "passive"):  # alternating: drift hits both arms alike
                    runs[policy].append(fn(policy, work, args.steps) if case == "pretrain-alone" else fn(policy, work))
            best = {p: min(r[0] for r in runs[p]) for p in runs}
            rows.append({"case": case,
                         "spin_wall_s": [round(r[0], 2) for r in runs["spin"]],
                         "passive_wall_s": [round(r[0], 2) for r in runs["passive"]],
                         "spin_cpu_s": [round(r[1], 2) for r in runs["spin"]],
                         "passive_cpu_s": [round(r[1], 2) for r in runs["passive"]],
                         "ratio_best_wall": round(best["passive"] / best["spin"], 3),
                         "same_bytes": len({tuple(r[2]) for p in runs for r in runs[p]}) == 1})
    print(f"{'case':<18} {'spin wall s':>16} {'passive wall s':>16} {'spin CPU s':>16} {'passive CPU s':>16} "
          f"{'passive/spin':>12} same bytes")
    for r in rows:
        print(f"{r['case']:<18} {str(r['spin_wall_s']):>16} {str(r['passive_wall_s']):>16} {str(r['spin_cpu_s']):>16} "
              f"{str(r['passive_cpu_s']):>16} {r['ratio_best_wall']:>12} {r['same_bytes']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    RESULTS.write_text(json.dumps({"host": platform.node(), "cpus": os.cpu_count(), "load_at_end": round(load, 2),
                                   "steps": args.steps, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if all(r["same_bytes"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
