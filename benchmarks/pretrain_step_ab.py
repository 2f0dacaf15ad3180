"""The cost of one pre-training step, an older commit against this one, alternating in one run.

Each side is `paco-fr pretrain` of its own exported source tree (run inside that tree, so it imports its
own code; checked) on a corpus and region maps the caller names, for SHORT and LONG steps; the slope
(wall(LONG) - wall(SHORT)) / (LONG - SHORT) is the cost of a step once started, free of start-up. The
main job's clones are a convenient source of each commit's own corpus:

    python benchmarks/main_job.py --baseline f1f3e22 --work-dir /tmp/mj
    python benchmarks/pretrain_step_ab.py --baseline f1f3e22 \\
        --baseline-data /tmp/mj/baseline-0/data --candidate-data /tmp/mj/candidate-0/data

Prints a table and writes benchmarks/results/pretrain_step_ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pretrain_step_ab.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

from curation_scale import export_tree  # noqa: E402  (the same tree export as the curation baselines)


def run_pretrain(tree: Path, data: Path, steps: int, work: Path) -> float:
    """Wall seconds of `paco-fr pretrain --set train.max_steps=STEPS` with the code of `tree`."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name("out.run"), ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "WANDB_MODE": "disabled", "GLOG_minloglevel": "2",
           "PACO_FR_LINEAGE_LOG": str(work / "lineage.jsonl")}
    probe = "import sys, runpy; sys.argv = ['paco-fr', *sys.argv[1:]]; print('CODE', __import__('paco_fr').__file__, file=sys.stderr); runpy.run_module('paco_fr.cli', run_name='__main__')"
    cmd = [sys.executable, "-c", probe, "pretrain", "--corpus", str(data / "corpus"), "--regions", str(data / "regions"),
           "--out", str(out), "--params", "params.yaml", "--preset", "paco_fr", "--set", f"train.max_steps={steps}",
           "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"pretrain in {tree} failed:\n{proc.stderr[-3000:]}")
    code = proc.stderr.split("CODE ")[1].split()[0]
    if not code.startswith(str(tree)):
        raise RuntimeError(f"the run in {tree} imported {code}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, metavar="REF")
    parser.add_argument("--candidate", default="HEAD", metavar="REF")
    parser.add_argument("--baseline-data", required=True, type=Path, help="folder holding corpus/ and regions/")
    parser.add_argument("--candidate-data", required=True, type=Path)
    parser.add_argument("--steps", type=int, nargs=2, default=(8, 32), metavar=("SHORT", "LONG"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="paco-fr-step-ab-"))
    sides = {"baseline": (export_tree(args.baseline, work), args.baseline_data),
             "candidate": (export_tree(args.candidate, work), args.candidate_data)}
    short, long_ = args.steps
    slopes: dict[str, list[float]] = {name: [] for name in sides}
    starts: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for _ in range(args.repeats):
            for name, (tree, data) in sides.items():
                a, b = (run_pretrain(tree, data, n, work) for n in (short, long_))
                slopes[name].append((b - a) / (long_ - short))
                starts[name].append(a)
                print(f"{name}: {short} steps {a:.1f} s, {long_} steps {b:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mean = {k: sum(v) / len(v) for k, v in slopes.items()}
    result = {"benchmark": "pretrain_step_ab", "command": " ".join(["python benchmarks/pretrain_step_ab.py",
                                                                      *(argv or sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
              "refs": {"baseline": args.baseline, "candidate": args.candidate}, "steps": [short, long_],
              "s_per_step": slopes, f"wall_{short}_steps_s": starts, "ratio": mean["candidate"] / mean["baseline"]}
    print(f"\npre-training step ({os.cpu_count()} CPUs), slope between {short} and {long_} steps")
    for name in sides:
        print(f"{name:<10} {args.baseline if name == 'baseline' else args.candidate:<10} "
              f"{', '.join(f'{x:.2f}' for x in slopes[name])} s/step")
    print(f"ratio candidate / baseline: x{result['ratio']:.2f}")
    from paco_fr.io import write_json_atomic

    write_json_atomic(RESULTS, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
