"""What the training loader reads and what it costs, on a corpus as training lays it out, against the
loader of an earlier revision.

Both loaders stream the same batches (the layout of params.yaml: `train.loader_groups` x
`train.loader_streams` streams, shuffle buffer, interleave) in this process, on one thread, alternating
rep after rep: process CPU seconds per batch, and tar headers parsed per face (calls of
tarfile.TarFile.next, which both webdataset's tar iterator and the header index go through). Each rep
starts with cold per-process caches. On the default corpus (one shard of 542 training faces cut into
16 pieces) the loader before 64be720 read every piece's crop tar from the start and its region tar
through.

    python benchmarks/loader_reads.py [--corpus data/corpus --regions data/regions] [--baseline 3048a8b]

Prints a table and writes benchmarks/results/loader_reads.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paco_fr.config import load_config  # noqa: E402
from paco_fr.io import write_json_atomic  # noqa: E402
from paco_fr.train import data as current  # noqa: E402
from paco_fr.train.augment import AugmentParams  # noqa: E402
from train_loader import baseline_module  # noqa: E402

HEADERS = {"n": 0}
_next = tarfile.TarFile.next


def _counting_next(self):
    HEADERS["n"] += 1
    return _next(self)


def measure(module, cfg, corpus: Path, regions: Path, batches: int) -> dict:
    """CPU seconds per batch and tar headers per face over `batches` batches after the first."""
    if hasattr(module, "_tar_index"):
        module._tar_index.cache_clear()
    t, m = cfg.train, cfg.model
    spec = module.StreamSpec(
        corpus_dir=str(corpus), regions_dir=str(regions), faces=module.read_split(corpus, "train"),
        img_size=m.img_size, patch_size=m.patch_size, batch_size=t.batch_size, seed=cfg.seed,
        mask_strategy=cfg.masking.strategy, mask_ratio=cfg.masking.ratio, replace_ratio=m.replace_ratio,
        augment=AugmentParams(t.hflip, t.scale_jitter, t.translate_jitter, t.color_jitter), groups=t.loader_groups,
        streams=t.loader_streams, shuffle_buffer=t.shuffle_buffer, interleave=t.interleave_shards)
    stream = iter(module.FaceRegionStream(spec))
    next(stream)
    HEADERS["n"] = 0
    cpu = time.process_time()
    for _ in range(batches):
        next(stream)
    cpu = time.process_time() - cpu
    return {"cpu_s_per_batch": cpu / batches, "headers_per_face": HEADERS["n"] / (batches * t.batch_size)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    parser.add_argument("--regions", type=Path, default=ROOT / "data" / "regions")
    parser.add_argument("--baseline", default="3048a8b", help="git revision of the loader to compare")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loader_reads.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tarfile.TarFile.next = _counting_next
    cfg = load_config(ROOT / "params.yaml")
    loaders = {"current": current, args.baseline: baseline_module(args.baseline)}
    runs: dict[str, list[dict]] = {name: [] for name in loaders}
    for rep in range(args.reps):
        for name, module in loaders.items():
            runs[name].append(measure(module, cfg, args.corpus, args.regions, args.batches))
            print(f"  rep {rep} {name}: {runs[name][-1]['cpu_s_per_batch']:.3f} CPU-s per batch, "
                  f"{runs[name][-1]['headers_per_face']:.1f} tar headers per face", flush=True)
    summary = {name: {"cpu_s_per_batch": statistics.median(r["cpu_s_per_batch"] for r in rows),
                      "headers_per_face": statistics.median(r["headers_per_face"] for r in rows)}
               for name, rows in runs.items()}
    ratio = summary["current"]["cpu_s_per_batch"] / summary[args.baseline]["cpu_s_per_batch"]
    print(f"\nloader reads ({args.batches} batches of {cfg.train.batch_size}, one thread, median of {args.reps})")
    print(f"{'loader':<10} {'CPU-s/batch':>12} {'headers/face':>13}")
    for name, row in summary.items():
        print(f"{name:<10} {row['cpu_s_per_batch']:>12.3f} {row['headers_per_face']:>13.1f}")
    print(f"current / {args.baseline} CPU per batch: x{ratio:.2f}")
    write_json_atomic(args.out, {
        "benchmark": "loader_reads", "command": " ".join(["python benchmarks/loader_reads.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "corpus": str(args.corpus), "baseline": args.baseline,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "runs": runs, "median": summary, "cpu_ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
