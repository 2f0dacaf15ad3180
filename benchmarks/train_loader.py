"""Training data loader at scale: DataLoader worker memory against corpus size, and throughput.

Writes two corpora in the corpus layout (docs/architecture.md: ``shards/shard-XXXXXX.tar`` with
``{id}.json`` and ``{id}.png`` per face in curation order, ``regions-XXXXXX.tar`` with ``{id}.png``
sorted by name, ``manifest.parquet``), of 10,000 and 100,000 faces, directly from a small pool of
pre-encoded cartoon faces (the bytes repeat; ids, shards and manifest are those of a real corpus).
Then, each in a fresh child process (so that nothing from one measurement stays in the next),
alternating corpus sizes and worker counts rep after rep:

1. peak RSS (VmHWM: resident pages, those shared with the parent included) and peak USS (pages of
   the worker alone) of each DataLoader worker over `--batches` batches. Target: a worker's peak
   RSS at 100,000 faces within 1.25x of that at 10,000.
2. images/s delivered to the training loop (the first batch, worker start-up, excluded) with 1 and
   2 workers, and the workers' CPU milliseconds per image (less sensitive to a shared machine's load).

`--baseline REF` measures the same for the loader of git revision REF beside it (default: the
seek-based loader that held one Python object per face); `--baseline ''` skips it.

    python benchmarks/train_loader.py [--batches 100] [--reps 2] [--baseline f1f3e22]

Writes benchmarks/results/train_loader.json.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (10_000, 100_000)
SHARD_SIZE = 1000  # params.yaml curation.shard_size


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def face_pool(size: int, n: int = 64) -> list[tuple[bytes, bytes]]:
    """n cartoon faces as (crop PNG, region map PNG) bytes."""
    from paco_fr.data.records import png_bytes
    from paco_fr.train.toydata import toy_face

    rng = np.random.default_rng(0)
    return [(png_bytes(image), png_bytes(labels, mode="L")) for image, labels in (toy_face(size, rng) for _ in range(n))]


def write_corpus(root: Path, n_faces: int, pool: list[tuple[bytes, bytes]]) -> tuple[Path, Path]:
    """A corpus of n_faces in shards of SHARD_SIZE, and its regions; 1% of the faces are val."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    corpus, regions = root / "corpus", root / "regions"
    (corpus / "shards").mkdir(parents=True, exist_ok=True)
    regions.mkdir(parents=True, exist_ok=True)
    ids = [hashlib.sha256(f"{n_faces}:{i}".encode()).hexdigest()[:16] for i in range(n_faces)]
    shards = [f"shard-{i // SHARD_SIZE:06d}.tar" for i in range(n_faces)]
    for start in tqdm(range(0, n_faces, SHARD_SIZE), desc=f"corpus {n_faces}", unit="shard"):
        name = shards[start]
        chunk = range(start, min(start + SHARD_SIZE, n_faces))
        with tarfile.open(corpus / "shards" / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in chunk:
                _add(tar, f"{ids[i]}.json", json.dumps({"face_id": ids[i], "split": "train"}).encode())
                _add(tar, f"{ids[i]}.png", pool[i % len(pool)][0])
        with tarfile.open(regions / ("regions-" + name[len("shard-"):]), "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in sorted(chunk, key=lambda i: ids[i]):
                _add(tar, f"{ids[i]}.png", pool[i % len(pool)][1])
    split = ["val" if i % 100 == 99 else "train" for i in range(n_faces)]
    pq.write_table(pa.table({"face_id": ids, "shard": [f"shards/{s}" for s in shards], "split": split}),
                   corpus / "manifest.parquet")
    return corpus, regions


def baseline_module(ref: str):
    """paco_fr/train/data.py as of git revision `ref`, imported under another name."""
    source = subprocess.run(["git", "show", f"{ref}:paco_fr/train/data.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_train_data.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_train_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_train_data"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class WorkerWatch:
    """Polls the DataLoader workers (children of this process): peak USS while they run, peak RSS
    (the kernel's VmHWM), and their CPU seconds between `mark()` and the last poll."""

    def __init__(self, interval: float = 0.25) -> None:
        import psutil

        self.me, self.interval = psutil.Process(), interval
        self.peak_uss: dict[int, int] = {}
        self.peak_rss: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.cpu_at_mark: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> None:
        for child in self.me.children():
            try:
                uss = child.memory_full_info().uss
                hwm = _status_kib(child.pid, "VmHWM") * 1024
                times = child.cpu_times()
            except Exception:  # noqa: BLE001 (a worker that just ended)
                continue
            self.cpu[child.pid] = times.user + times.system
            self.peak_uss[child.pid] = max(self.peak_uss.get(child.pid, 0), uss)
            self.peak_rss[child.pid] = max(self.peak_rss.get(child.pid, 0), hwm)

    def mark(self) -> None:
        self.poll()
        self.cpu_at_mark = dict(self.cpu)

    def cpu_since_mark(self) -> float:
        return sum(self.cpu[pid] - self.cpu_at_mark.get(pid, 0.0) for pid in self.cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> "WorkerWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.poll()
        self._stop.set()
        self._thread.join()


def make_stream(loader: str, corpus: Path, regions: Path, workers: int):
    """(data module, FaceRegionStream) of the current loader or of git revision `loader`."""
    import torch

    from paco_fr.config import load_config
    from paco_fr.train.augment import AugmentParams

    torch.set_num_threads(1)
    cfg = load_config(ROOT / "params.yaml")
    t, m = cfg.train, cfg.model
    common = dict(corpus_dir=str(corpus), regions_dir=str(regions), img_size=m.img_size,
                  patch_size=m.patch_size, batch_size=t.batch_size, seed=cfg.seed, mask_strategy=cfg.masking.strategy,
                  mask_ratio=cfg.masking.ratio, replace_ratio=m.replace_ratio,
                  augment=AugmentParams(t.hflip, t.scale_jitter, t.translate_jitter, t.color_jitter))
    if loader == "current":
        from paco_fr.train import data

        spec = data.StreamSpec(faces=data.read_split(corpus, "train"), streams=max(1, workers),
                               shuffle_buffer=t.shuffle_buffer, interleave=t.interleave_shards, **common)
    else:
        data = baseline_module(loader)
        spec = data.StreamSpec(faces=tuple(data.read_split(corpus, "train")), **common)
    return data, data.FaceRegionStream(spec)


def inprocess(args: argparse.Namespace) -> int:
    """CPU ms per image of the loaders' own work (no workers), alternating in one process, 5 batches
    at a time: what a shared machine's load disturbs least. Prints one JSON line."""
    streams = {name: iter(make_stream(name, args.corpus, args.regions, 0)[1]) for name in args.loader.split(",")}
    times: dict[str, list[float]] = {name: [] for name in streams}
    for name in streams:
        next(streams[name])
    for rep in range(args.batches // 5):
        for name in list(streams) if rep % 2 == 0 else list(streams)[::-1]:
            start = time.process_time()
            images = sum(len(next(streams[name])["images"]) for _ in range(5))
            times[name].append(1000 * (time.process_time() - start) / images)
    print(json.dumps({name: statistics.median(v) for name, v in times.items()}))
    return 0


def child(args: argparse.Namespace) -> int:
    """One measurement: `--batches` batches from a fresh loader; prints one JSON line."""
    data, stream = make_stream(args.loader, args.corpus, args.regions, args.workers)
    batch_size = stream.spec.batch_size
    loader = data.make_loader(stream, args.workers, seed=0)
    with WorkerWatch() as watch:
        batches = iter(loader)
        next(batches)
        watch.mark()
        start = time.perf_counter()
        for _ in range(args.batches):
            next(batches)
        elapsed = time.perf_counter() - start
        watch.poll()  # prefetched batches count at both ends alike
        cpu = watch.cpu_since_mark()
        time.sleep(0.3)  # one more memory poll while the workers are alive
    del batches
    print(json.dumps({"images_per_s": args.batches * batch_size / elapsed,
                      "worker_cpu_ms_per_image": 1000 * cpu / (args.batches * batch_size),
                      "worker_peak_rss_mib": max(watch.peak_rss.values()) / 2**20,
                      "worker_peak_uss_mib": max(watch.peak_uss.values()) / 2**20,
                      "main_peak_rss_mib": _status_kib(os.getpid(), "VmHWM") / 1024}))
    return 0


def measure(loader: str, corpus: tuple[Path, Path], workers: int, batches: int, mode: str = "--child") -> dict:
    cmd = [sys.executable, __file__, mode, "--loader", loader, "--corpus", str(corpus[0]),
           "--regions", str(corpus[1]), "--workers", str(workers), "--batches", str(batches)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> dict:
    """Per (loader, faces, workers): median throughput and the largest peaks over the reps; then
    the memory ratio 100k / 10k and the growth per face, and the throughput ratios."""
    table: dict[str, dict] = {}
    for run in runs:
        key = f"{run['loader']}/{run['faces']}/{run['workers']}"
        row = table.setdefault(key, {k: run[k] for k in ("loader", "faces", "workers")} | {"reps": []})
        row["reps"].append({k: run[k] for k in run if k not in ("loader", "faces", "workers")})
    for row in table.values():
        for key in ("images_per_s", "worker_cpu_ms_per_image"):
            row[key] = statistics.median(r[key] for r in row["reps"])
        for key in ("worker_peak_rss_mib", "worker_peak_uss_mib", "main_peak_rss_mib"):
            row[key] = max(r[key] for r in row["reps"])
    small, large = SIZES
    ratios: dict[str, dict] = {}
    for loader in sorted({r["loader"] for r in runs}):
        for workers in sorted({r["workers"] for r in runs}):
            a, b = table[f"{loader}/{small}/{workers}"], table[f"{loader}/{large}/{workers}"]
            ratios[f"{loader}/{workers}"] = {
                "worker_rss_ratio": b["worker_peak_rss_mib"] / a["worker_peak_rss_mib"],
                "worker_uss_ratio": b["worker_peak_uss_mib"] / a["worker_peak_uss_mib"],
                "worker_rss_bytes_per_face": (b["worker_peak_rss_mib"] - a["worker_peak_rss_mib"]) * 2**20
                / (0.99 * (large - small)),
                "worker_cpu_per_image_ratio": b["worker_cpu_ms_per_image"] / a["worker_cpu_ms_per_image"],
                "two_over_one_workers": (table[f"{loader}/{small}/2"]["images_per_s"]
                                         / table[f"{loader}/{small}/1"]["images_per_s"]) if workers == 1 else None,
            }
    return {"rows": table, "ratios": ratios}


def print_table(summary: dict, baseline: str | None) -> None:
    print(f"{'loader':<10} {'faces':>7} {'workers':>7} {'images/s':>9} {'CPU ms/image':>12} {'worker RSS MiB':>15} "
          f"{'worker USS MiB':>15} {'main RSS MiB':>13}")
    for row in summary["rows"].values():
        print(f"{row['loader']:<10} {row['faces']:>7} {row['workers']:>7} {row['images_per_s']:>9.1f} "
              f"{row['worker_cpu_ms_per_image']:>12.2f} {row['worker_peak_rss_mib']:>15.1f} "
              f"{row['worker_peak_uss_mib']:>15.1f} {row['main_peak_rss_mib']:>13.1f}")
    for key, r in summary["ratios"].items():
        line = (f"{key}: worker peak RSS 100k/10k = {r['worker_rss_ratio']:.3f} (target <= 1.25), USS "
                f"{r['worker_uss_ratio']:.3f}, {r['worker_rss_bytes_per_face']:.0f} bytes per face; CPU per image "
                f"100k/10k {r['worker_cpu_per_image_ratio']:.3f}")
        if r["two_over_one_workers"] is not None:
            line += f"; 2 workers / 1 = {r['two_over_one_workers']:.2f}x images/s"
        print(line)
    if baseline:
        rows = summary["rows"]
        for workers in (1, 2):
            cur, base = rows[f"current/{SIZES[0]}/{workers}"], rows[f"{baseline}/{SIZES[0]}/{workers}"]
            print(f"current / {baseline} at {SIZES[0]} faces, {workers} worker(s): images/s "
                  f"{cur['images_per_s'] / base['images_per_s']:.3f}, worker CPU per image "
                  f"{cur['worker_cpu_ms_per_image'] / base['worker_cpu_ms_per_image']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="batches timed per measurement")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--baseline", default="f1f3e22", help="git revision of a loader to compare ('' : none)")
    parser.add_argument("--data", type=Path, default=None, help="keep the corpora here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_loader.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inprocess", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loader", default="current", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--regions", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.inprocess:
        return inprocess(args)

    from paco_fr.config import load_config
    from paco_fr.io import write_json_atomic

    cfg = load_config(ROOT / "params.yaml")
    temp = tempfile.TemporaryDirectory() if args.data is None else None
    data_dir = Path(temp.name) if temp is not None else args.data
    pool = face_pool(cfg.model.img_size)
    corpora = {}
    for n in SIZES:
        root = data_dir / f"faces_{n}"
        done = (root / "corpus" / "manifest.parquet").exists()
        corpora[n] = (root / "corpus", root / "regions") if done else write_corpus(root, n, pool)
    loaders = ["current"] + ([args.baseline] if args.baseline else [])
    load_before = os.getloadavg()
    runs = []
    for rep in range(args.reps):
        # Alternate everything, and reverse the order every other rep, so that load hits all alike.
        plan = [(lo, n, w) for lo in loaders for n in SIZES for w in (1, 2)]
        for loader, n, workers in plan if rep % 2 == 0 else plan[::-1]:
            result = measure(loader, corpora[n], workers, args.batches)
            runs.append({"loader": loader, "faces": n, "workers": workers, **result})
            print(f"  rep {rep} {loader} {n} faces {workers} worker(s): {result['images_per_s']:.1f} images/s, "
                  f"{result['worker_cpu_ms_per_image']:.2f} worker CPU ms per image, worker peak RSS "
                  f"{result['worker_peak_rss_mib']:.1f} MiB (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
    summary = summarise(runs)
    summary["inprocess_cpu_ms_per_image"] = measure(",".join(loaders), corpora[SIZES[0]], 0, args.batches,
                                                    mode="--inprocess")
    result = {
        "benchmark": "train_loader", "sizes": list(SIZES), "shard_size": SHARD_SIZE, "batches": args.batches,
        "reps": args.reps, "batch_size": cfg.train.batch_size, "img_size": cfg.model.img_size,
        "shuffle_buffer": cfg.train.shuffle_buffer, "interleave_shards": cfg.train.interleave_shards,
        "baseline": args.baseline or None, "host": platform.node(), "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        **summary,
    }
    result["pass"] = {k: r["worker_rss_ratio"] <= 1.25 for k, r in summary["ratios"].items()
                      if k.startswith("current/")}
    print(f"train_loader: batch {cfg.train.batch_size}, {cfg.model.img_size}px, {args.batches} batches x "
          f"{args.reps} reps; load average {load_before[0]:.2f} before, {result['load_average_after'][0]:.2f} after")
    print_table(summary, args.baseline or None)
    print("in one process, alternating, CPU ms per image: "
          + ", ".join(f"{k} {v:.2f}" for k, v in summary["inprocess_cpu_ms_per_image"].items()))
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    if temp is not None:
        temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
