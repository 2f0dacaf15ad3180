"""Curation benchmark: what the pipeline costs on top of the landmark model, and whether its
memory stays flat as the corpus grows.

1. Throughput, on the same procedural faces: MediaPipe (detector + 478-point mesh) alone on
   pre-decoded images, vs the whole `curate` path with ground truth disabled (so MediaPipe runs on
   every image): read, hash, decode, detect, align, quality, perceptual hash, PNG, tar, parquet,
   Great Expectations, preview. Both sides run in one warm process (library imports done before
   timing) and alternate; the best of `--repeats` is kept. Target: the pipeline adds <= 25%.
2. Peak RSS (VmHWM) of curating N vs 10 N procedural faces, each in a fresh subprocess
   (ground-truth path, default settings). Target: flat within 20%.

    python benchmarks/curation.py            # 1,000 faces; RSS at 1,000 and 10,000 (~10 min on 2 cores)
    python benchmarks/curation.py --faces 400
    python benchmarks/curation.py --quick    # 60 faces; RSS at 200 and 2,000

The end-to-end figure includes the fixed cost of finishing a corpus (~0.5 s: tables, Great
Expectations, preview), which weighs ~10% at 400 faces and ~4% at 1,000; the loop figure is the
steady-state cost per image.

Prints a table and writes benchmarks/results/curation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paco_fr.config import apply_overrides  # noqa: E402
from paco_fr.data.builtin import write_builtin_raw  # noqa: E402
from paco_fr.data.config import BuiltinSourceConfig, CurationConfig  # noqa: E402
from paco_fr.io import write_json_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "curation.json"

# Peak RSS from /proc/self/status VmHWM: on Linux ru_maxrss survives execve, so a child started by a
# big parent would report the parent's footprint. ru_maxrss is the fallback elsewhere.
RSS_RUNNER = """
import json, resource, sys, time
from paco_fr.data.config import CurationConfig
from paco_fr.data.curate import curate

def peak_rss_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

started = time.perf_counter()
result = curate(CurationConfig(), sys.argv[1], sys.argv[2], progress=False)
print(json.dumps({"peak_rss_mb": peak_rss_mb(),
                  "wall_s": time.perf_counter() - started, "faces": result.summary["faces"],
                  "inputs": result.summary["inputs"], "timing": result.summary["run"]["timing"]}))
"""


def materialise(n: int, folder: Path) -> Path:
    cfg = BuiltinSourceConfig(photos=False, n_synthetic=n, n_identities=max(1, n // 3), render_size=192, seed=0)
    return write_builtin_raw(cfg, folder, progress=True)


def landmark_only(images, cfg: CurationConfig) -> dict:
    from paco_fr.data.landmarks import MediaPipeLandmarks

    det = cfg.detector
    with MediaPipeLandmarks(min_score=det.min_score, model_selection=det.model_selection, max_faces=det.max_faces,
                            detection_floor=det.detection_floor, context=det.mesh_context) as provider:
        provider.detect(images[0])  # graph warm-up, as the pipeline's first image also pays it
        started = time.perf_counter()
        found = sum(1 for image in images if any(f.score >= det.min_score for f in provider.detect(image)))
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "images": len(images), "faces": found}


def pipeline(raw: Path, out: Path, cfg: CurationConfig) -> dict:
    from paco_fr.data.curate import curate

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = curate(cfg, raw, out, resume=False, progress=False)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "loop_seconds": result.summary["run"]["timing"]["curate_s"],
            "images": result.summary["inputs"], "faces": result.summary["faces"]}


def throughput(n: int, repeats: int, work: Path) -> dict:
    import numpy as np
    from PIL import Image

    import great_expectations  # noqa: F401 - warm import, like mediapipe below
    import mediapipe  # noqa: F401

    raw = materialise(n, work / f"raw-{n}")
    cfg = apply_overrides(CurationConfig(), ["use_ground_truth=false"])
    paths = sorted((raw / "synthetic").glob("face-*[0-9].png"))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    alone, whole = [], []
    for _ in range(repeats):
        alone.append(landmark_only(images, cfg))
        whole.append(pipeline(raw, work / "corpus-throughput", cfg))
    best_alone = min(alone, key=lambda r: r["seconds"])
    best_whole = min(whole, key=lambda r: r["seconds"])
    best_loop = min(r["loop_seconds"] for r in whole)
    return {
        "images": len(images),
        "landmark_model": {**best_alone, "images_per_s": len(images) / best_alone["seconds"]},
        "pipeline": {**best_whole, "images_per_s": best_whole["images"] / best_whole["seconds"],
                     "loop_seconds": best_loop},
        "ratio_total": best_whole["seconds"] / best_alone["seconds"],
        "ratio_loop": best_loop / best_alone["seconds"],
        "all_runs": {"landmark_model_s": [r["seconds"] for r in alone], "pipeline_s": [r["seconds"] for r in whole],
                     "pipeline_loop_s": [r["loop_seconds"] for r in whole]},
    }


def peak_rss(n: int, work: Path) -> dict:
    raw = materialise(n, work / f"raw-{n}")
    out = work / f"corpus-{n}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", RSS_RUNNER, str(raw), str(out)], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"curation of {n} faces failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(raw, ignore_errors=True)
    return {"n": n, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (60 faces; RSS at 200 and 2,000)")
    parser.add_argument("--faces", type=int, default=None, help="faces for the throughput comparison")
    parser.add_argument("--rss-sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    n_faces = args.faces or (60 if args.quick else 1000)
    small, large = args.rss_sizes or ((200, 2000) if args.quick else (1000, 10000))

    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="paco-fr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        speed = throughput(n_faces, args.repeats, work)
        rss_small = peak_rss(small, work)
        rss_large = peak_rss(large, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    rss_ratio = rss_large["peak_rss_mb"] / rss_small["peak_rss_mb"]

    lm, pl = speed["landmark_model"], speed["pipeline"]
    rows = [
        ("landmark model alone (MediaPipe det+mesh)", f"{lm['images_per_s']:.1f} img/s", f"{lm['seconds']:.2f} s", "baseline"),
        ("whole curation, end to end", f"{pl['images_per_s']:.1f} img/s", f"{pl['seconds']:.2f} s",
         f"x{speed['ratio_total']:.2f}"),
        ("whole curation, per-image loop only", f"{speed['images'] / pl['loop_seconds']:.1f} img/s",
         f"{pl['loop_seconds']:.2f} s", f"x{speed['ratio_loop']:.2f}"),
        (f"peak RSS, {small} faces", f"{rss_small['peak_rss_mb']:.0f} MB", f"{rss_small['wall_s']:.1f} s", "baseline"),
        (f"peak RSS, {large} faces", f"{rss_large['peak_rss_mb']:.0f} MB", f"{rss_large['wall_s']:.1f} s",
         f"x{rss_ratio:.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\ncuration benchmark ({speed['images']} faces for throughput; {platform.processor() or platform.machine()},"
          f" {os.cpu_count()} CPUs)")
    print(f"{'measure'.ljust(width)}  {'rate':>14}  {'time':>9}  ratio")
    for name, rate, secs, ratio in rows:
        print(f"{name.ljust(width)}  {rate:>14}  {secs:>9}  {ratio}")
    verdict_speed = "PASS" if speed["ratio_total"] <= 1.25 else "FAIL"
    verdict_loop = "PASS" if speed["ratio_loop"] <= 1.25 else "FAIL"
    verdict_rss = "PASS" if rss_ratio <= 1.2 else "FAIL"
    print(f"targets: pipeline adds <= 25%: end to end {verdict_speed}, loop {verdict_loop}; "
          f"RSS flat within 20%: {verdict_rss}")

    write_json_atomic(RESULTS, {
        "benchmark": "curation",
        "command": "python benchmarks/curation.py" + (" --quick" if args.quick else "")
                   + (f" --faces {args.faces}" if args.faces else ""),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "throughput": speed,
        "rss": {"small": rss_small, "large": rss_large, "ratio": rss_ratio},
        "targets": {"pipeline_overhead_max_ratio": 1.25, "rss_max_ratio": 1.2,
                    "end_to_end": verdict_speed, "loop": verdict_loop, "rss": verdict_rss},
    })
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
