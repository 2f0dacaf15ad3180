"""Curation at scale: worker processes against one, the default run against an older commit, and
peak memory of a worker and of the merge as the corpus grows.

1. Throughput, same inputs, alternating in one run: `paco-fr curate --workers 2` against
   `--workers 1` on procedural faces with ground truth disabled (MediaPipe on every image, the
   expensive path of a real photo collection). Wall time and CPU seconds of the whole process tree
   (RUSAGE_CHILDREN). Targets: throughput x1.4 or more, CPU seconds per face within x1.15. From the
   two-worker run's faces per CPU-second: the projected time for 2,000,000 faces on 32 cores.
2. `--baseline REF`: the default `paco-fr curate` of the builtin raw folder with this tree against
   the same command at git commit REF (exported with `git archive`), alternating. Target: x1.0 or less.
3. `--rss SMALL LARGE`: peak RSS (VmHWM) of the largest curation worker (`paco-fr curate-part`) and
   of the merge (`paco-fr curate-merge`, its own process) at two corpus sizes, procedural faces with
   ground truth (the first SMALL or LARGE faces of one folder). Target: within x1.25.

    python benchmarks/curation_scale.py --faces 400 --baseline HEAD~5 --rss 2000 20000

   `--merge-baseline REF` measures REF's merge on the same partitions too (`--rss-reuse` with
   `--work-dir` keeps and reuses the subsets and partitions, so old and new merges share them).

Prints a table and writes benchmarks/results/curation_scale.json. A section this run did not measure
(e.g. `--skip-throughput`) is kept from the file's previous content; each section records the command
and the load average it was measured under.
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
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "curation_scale.json"
ENV = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
ENV.setdefault("PACO_FR_LINEAGE_LOG", os.path.join(tempfile.gettempdir(), "paco-fr-bench-lineage.jsonl"))  # not ours
QUIET = ["--no-progress"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None) -> dict:
    """Wall and CPU seconds (the command and every process it waited for) of one command."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, check=False, cwd=cwd)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "stderr": proc.stderr}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "paco_fr.cli", *args]


def materialise(n: int, folder: Path, seed: int = 0) -> Path:
    from paco_fr.data.builtin import write_builtin_raw
    from paco_fr.data.config import BuiltinSourceConfig

    return write_builtin_raw(BuiltinSourceConfig(photos=False, n_synthetic=n, n_identities=n, seed=seed), folder,
                             progress=False)


BLOCK = 5000  # faces per generation task of `materialise_many`


def materialise_many(n: int, folder: Path, *, seed: int = 3, size: int = 128, procs: int | None = None) -> Path:
    """n distinct procedural faces (one identity each) in the builtin layout (synthetic/face-NNNNNN.png,
    .labels.png, .gt.json), rendered by `procs` processes in blocks of BLOCK faces (block b: seed
    seed * 1000 + b, identities from b * BLOCK). 128-px renders take half the time of the builtin 192
    px; every face is still far above the quality floor. Faces already written are kept (resumable)."""
    from concurrent.futures import ProcessPoolExecutor

    (folder / "synthetic").mkdir(parents=True, exist_ok=True)
    blocks = [(b, min(BLOCK, n - b * BLOCK), seed, size, str(folder)) for b in range(-(-n // BLOCK))]
    with ProcessPoolExecutor(procs or os.cpu_count()) as pool:
        for done in pool.map(_render_block, blocks):
            print(f"rendered faces {done}", file=sys.stderr, flush=True)
    return folder


def _render_block(block: tuple[int, int, int, int, str]) -> str:
    from paco_fr.data.builtin import _png_bytes
    from paco_fr.data.synthetic import face_to_record, generate_faces
    from paco_fr.io import atomic_path

    b, count, seed, size, folder = block
    out = Path(folder) / "synthetic"
    faces = generate_faces(count, seed=seed * 1000 + b, size=size, identity_offset=b * BLOCK)
    for i, face in enumerate(faces):
        stem = out / f"face-{b * BLOCK + i:06d}"
        if Path(f"{stem}.gt.json").exists():
            continue
        Path(f"{stem}.png").write_bytes(_png_bytes(face.image))
        Path(f"{stem}.labels.png").write_bytes(_png_bytes(face.label_map.astype("uint8"), mode="L"))
        with atomic_path(Path(f"{stem}.gt.json")) as tmp:  # last: marks the face complete
            tmp.write_text(json.dumps({**face_to_record(face), "synthetic": True}, sort_keys=True) + "\n")
    return f"{b * BLOCK}..{b * BLOCK + count - 1}"


def throughput(n: int, repeats: int, work: Path) -> dict:
    raw = materialise(n, work / f"raw-{n}")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    faces = None
    for _ in range(repeats):
        for workers in (1, 2):
            out = work / "corpus-throughput"
            shutil.rmtree(out, ignore_errors=True)
            run = cli_in_tree(ROOT, "curate", "--source", str(raw), "--out", str(out), "--workers", str(workers),
                              "--set", "curation.use_ground_truth=false", "--no-progress-json", *QUIET)
            faces = json.loads((out / "summary.json").read_text())["faces"]
            runs[workers].append({"wall_s": run["wall_s"], "cpu_s": run["cpu_s"]})
    best = {w: min(r, key=lambda x: x["wall_s"]) for w, r in runs.items()}
    cpu_face = {w: min(x["cpu_s"] for x in r) / faces for w, r in runs.items()}
    per_core = 1.0 / cpu_face[2]  # faces per CPU-second with two workers
    return {
        "images": n, "faces": faces, "runs": runs,
        "faces_per_s": {w: faces / best[w]["wall_s"] for w in best},
        "cpu_s_per_face": cpu_face,
        "throughput_ratio": best[1]["wall_s"] / best[2]["wall_s"],
        "cpu_per_face_ratio": cpu_face[2] / cpu_face[1],
        "faces_per_cpu_s": per_core,
        "projection_2m_faces_32_cores_h": 2_000_000 / (32 * per_core) / 3600,
    }


def baseline(ref: str, repeats: int, work: Path) -> dict:
    old = export_tree(ref, work)
    raw = work / "raw-builtin"
    if not raw.is_dir():
        subprocess.run(cli("raw", "--out", str(raw), *QUIET), env=ENV, check=True, capture_output=True)
    runs: dict[str, list[dict]] = {"baseline": [], "candidate": []}
    for _ in range(repeats):
        for name, tree in (("baseline", old), ("candidate", ROOT)):
            out = work / f"corpus-{name}"
            shutil.rmtree(out, ignore_errors=True)
            # Each side in its own tree: with the working folder first on sys.path, the baseline
            # imported this tree's code up to ebca34c.
            run = cli_in_tree(tree, "curate", "--source", str(raw), "--out", str(out), *QUIET)
            runs[name].append({"wall_s": run["wall_s"], "cpu_s": run["cpu_s"]})
    best = {k: min(x["wall_s"] for x in v) for k, v in runs.items()}
    return {"ref": ref, "runs": runs, "best_wall_s": best, "ratio": best["candidate"] / best["baseline"]}


def peak_rss(n: int, raw: Path, work: Path, partitions: int = 2, *, reuse: bool = False,
             merge_trees: dict[str, Path | None] | None = None) -> dict:
    """Curate the first n faces of `raw` (a linked subset) as `partitions` parts + a merge. `reuse`: keep
    the subset and the partitions in `work` and reuse those a previous run left. `merge_trees`: name ->
    source tree (None: this one) of each merge measured on the same partitions, alternating."""
    subset = work / f"subset-{n}"
    sets = ["--set", f"curation.partitions={partitions}"]
    parts, worker_peak, part_wall = [], None, None
    fresh = not (reuse and all((work / f"part-{n}-{p}" / "part.json").is_file() for p in range(partitions)))
    if fresh:
        _link_subset(n, raw, subset)
        worker_peak, part_wall = 0.0, 0.0
    for part in range(partitions):
        out = work / f"part-{n}-{part}"
        parts.append(str(out))
        if not fresh:
            continue
        shutil.rmtree(out, ignore_errors=True)
        run = timed(cli("curate-part", "--source", str(subset), "--part", str(part), "--out", str(out),
                        "--workers", "2", "--no-progress-json", *sets, *QUIET))
        line = next(x for x in run["stderr"].splitlines() if "worker peak RSS" in x)
        worker_peak = max(worker_peak, float(line.split("worker peak RSS ")[1].split()[0]))
        part_wall += run["wall_s"]
    merges = {name: merge_peak(subset, parts, work / f"corpus-{n}", sets, tree)
              for name, tree in (merge_trees or {"candidate": None}).items()}
    faces = [m.pop("faces") for m in merges.values()][0]
    if not reuse:
        for path in [*parts, subset]:
            shutil.rmtree(path, ignore_errors=True)
    this = merges["candidate"]
    result = {"n": n, "faces": faces, "worker_peak_rss_mb": worker_peak, "curate_part_wall_s": part_wall,
              "merge_peak_rss_mb": this["peak_rss_mb"], "merge_wall_s": this["wall_s"]}
    if merge_trees:
        result["merges"] = merges
    return result


def _link_subset(n: int, raw: Path, subset: Path) -> None:
    shutil.rmtree(subset, ignore_errors=True)
    (subset / "synthetic").mkdir(parents=True)
    for i in range(n):
        for suffix in (".png", ".gt.json", ".labels.png"):
            name = f"face-{i:06d}{suffix}"
            os.symlink(raw / "synthetic" / name, subset / "synthetic" / name)


def merge_peak(subset: Path, parts: list[str], corpus: Path, sets: list[str], tree: Path | None) -> dict:
    """Peak RSS (VmHWM) and wall time of `curate-merge` in its own process, with the code of `tree`
    (an exported older commit) or of this one."""
    shutil.rmtree(corpus, ignore_errors=True)
    run = cli_in_tree(tree or ROOT, "curate-merge", "--source", str(subset), "--parts", *parts, "--out", str(corpus),
                      *sets, *QUIET)
    peak = int(run["stderr"].split("PEAK ")[1].split()[0]) / 1024
    faces = json.loads((corpus / "summary.json").read_text())["faces"]
    shutil.rmtree(corpus, ignore_errors=True)
    return {"peak_rss_mb": peak, "wall_s": run["wall_s"], "faces": faces}


# `paco-fr ARGS` that reports its peak RSS (VmHWM, KiB) and which paco_fr it imported.
RUNNER = ("import resource, runpy, sys; sys.argv = ['paco-fr', *sys.argv[1:]]\n"
          "try:\n    runpy.run_module('paco_fr.cli', run_name='__main__')\n"
          "finally:\n    print('PEAK', open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
          "    print('CODE', sys.modules['paco_fr'].__file__, file=sys.stderr)")


def cli_in_tree(tree: Path, *args: str) -> dict:
    """`paco-fr ARGS` timed, with the code of `tree` (this checkout or an exported commit), checked.
    `python -c` puts the working folder first on sys.path, so it runs in `tree`; its worker
    processes inherit PYTHONPATH."""
    run = timed([sys.executable, "-c", RUNNER, *args], env={**ENV, "PYTHONPATH": str(tree)}, cwd=tree)
    code = run["stderr"].split("CODE ")[1].split()[0]
    if not code.startswith(str(tree)):
        raise RuntimeError(f"paco-fr {args[0]} ran {code}, not the code of {tree}")
    return run


def export_tree(ref: str, work: Path) -> Path:
    """The source tree of git commit `ref`, exported into `work` (as --baseline does)."""
    old = work / f"tree-{ref}"
    if not old.is_dir():
        old.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    return old


def _keep_worker_figures(result: dict, previous: dict) -> None:
    """With reused partitions no worker ran: keep the previous run's worker figures for the same sizes."""
    for point in ("small", "large"):
        now, before = result.get("rss", {}).get(point), previous.get("rss", {}).get(point, {})
        if now and now["worker_peak_rss_mb"] is None and before.get("n") == now["n"]:
            now["worker_peak_rss_mb"] = before.get("worker_peak_rss_mb")
            now["curate_part_wall_s"] = before.get("curate_part_wall_s")
            now["worker_figures_from"] = before.get("measured", {}).get("command")
    rss = result.get("rss")
    if rss and rss["worker_ratio"] is None and rss["small"]["worker_peak_rss_mb"] and rss["large"]["worker_peak_rss_mb"]:
        rss["worker_ratio"] = rss["large"]["worker_peak_rss_mb"] / rss["small"]["worker_peak_rss_mb"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=400, help="faces for the 2-vs-1 worker comparison")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", default=None, metavar="REF", help="git commit for the default-run comparison")
    parser.add_argument("--rss", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"))
    parser.add_argument("--rss-raw", default=None, metavar="DIR", help="an existing builtin raw folder of >= LARGE faces")
    parser.add_argument("--rss-reuse", action="store_true",
                        help="keep the subsets and partitions in --work-dir and reuse those already there")
    parser.add_argument("--merge-baseline", default=None, metavar="REF",
                        help="also measure the merge of git commit REF on the same partitions (alternating)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="paco-fr-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    command = " ".join(["python benchmarks/curation_scale.py", *(argv or sys.argv[1:])])
    result: dict = {"benchmark": "curation_scale", "command": command,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform(), "load_avg_1m_at_start": load}}
    rows = []
    try:
        if not args.skip_throughput:
            t = throughput(args.faces, args.repeats, work)
            result["throughput"] = t
            rows += [(f"1 worker, {t['faces']} faces (MediaPipe)", f"{t['faces_per_s'][1]:.1f} faces/s",
                      f"{t['cpu_s_per_face'][1] * 1000:.1f} ms CPU/face", "baseline"),
                     ("2 workers, same inputs", f"{t['faces_per_s'][2]:.1f} faces/s",
                      f"{t['cpu_s_per_face'][2] * 1000:.1f} ms CPU/face",
                      f"x{t['throughput_ratio']:.2f} throughput, x{t['cpu_per_face_ratio']:.2f} CPU/face"),
                     ("projected: 2M faces, 32 cores", f"{t['faces_per_cpu_s'] * 32:.0f} faces/s",
                      f"{t['projection_2m_faces_32_cores_h']:.2f} h", "curation only (see docs)")]
        if args.baseline:
            b = baseline(args.baseline, args.repeats, work)
            result["baseline"] = b
            rows += [(f"default `paco-fr curate` builtin, at {args.baseline}", "", f"{b['best_wall_s']['baseline']:.2f} s",
                      "baseline"),
                     ("default `paco-fr curate` builtin, this tree", "", f"{b['best_wall_s']['candidate']:.2f} s",
                      f"x{b['ratio']:.2f}")]
        if args.rss:
            raw = Path(args.rss_raw) if args.rss_raw else materialise(max(args.rss), work / "raw-rss", seed=3)
            trees = None
            if args.merge_baseline:
                trees = {"baseline": export_tree(args.merge_baseline, work), "candidate": None}
            small, large = (peak_rss(n, raw, work, reuse=args.rss_reuse, merge_trees=trees) for n in args.rss)
            result["rss"] = {"small": small, "large": large,
                             "worker_ratio": (large["worker_peak_rss_mb"] / small["worker_peak_rss_mb"]
                                              if small["worker_peak_rss_mb"] else None),
                             "merge_ratio": large["merge_peak_rss_mb"] / small["merge_peak_rss_mb"]}
            for key, label in (("worker_peak_rss_mb", "curation worker"), ("merge_peak_rss_mb", "merge")):
                if small[key] is None or large[key] is None:  # partitions reused: not measured this run
                    continue
                rows += [(f"peak RSS {label}, {small['n']} faces", f"{small[key]:.0f} MB", "", "baseline"),
                         (f"peak RSS {label}, {large['n']} faces", f"{large[key]:.0f} MB", "",
                          f"x{large[key] / small[key]:.2f}")]
            if trees:
                for point in (small, large):
                    old, new = point["merges"]["baseline"], point["merges"]["candidate"]
                    rows.append((f"merge at {args.merge_baseline} vs this tree, {point['n']} faces",
                                 f"{old['peak_rss_mb']:.0f} -> {new['peak_rss_mb']:.0f} MB",
                                 f"{old['wall_s']:.1f} -> {new['wall_s']:.1f} s",
                                 f"x{new['wall_s'] / old['wall_s']:.2f} wall"))
                result["rss"]["baseline_merge_ratio"] = (large["merges"]["baseline"]["peak_rss_mb"]
                                                         / small["merges"]["baseline"]["peak_rss_mb"])
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    result["load_avg_1m_at_end"] = os.getloadavg()[0]
    measured = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_1m": [load, result["load_avg_1m_at_end"]]}
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    _keep_worker_figures(result, previous)
    for section in ("throughput", "baseline", "rss"):
        if section in result:
            result[section]["measured"] = measured
        elif section in previous:
            result[section] = previous[section]
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\ncuration at scale ({os.cpu_count()} CPUs, load average {load:.2f} at start, "
          f"{result['load_avg_1m_at_end']:.2f} at end)")
    for name, rate, secs, ratio in rows:
        print(f"{name.ljust(width)}  {rate:>16}  {secs:>20}  {ratio}")
    from paco_fr.io import write_json_atomic

    write_json_atomic(RESULTS, result)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
