"""Pre-training step cost: the `paco_fr` preset against the `mae` baseline, and data loading against training.

1. Step time (forward + backward + AdamW step) of the paco_fr and mae presets on the same encoder and
   the same images, timed alternately in one process so that machine load hits both alike.
   Target: paco_fr / mae <= 1.10.
2. DataLoader images/s (decode, augment, region membership, structured masks; the configured number
   of workers) against training images/s of the paco_fr preset. Target: loader >= 2x training.

    python benchmarks/pretrain_step.py [--corpus data/corpus --regions data/regions] [--reps 12]

Without a corpus (data/corpus missing) it writes a cartoon-face fixture corpus to a temporary folder.
Writes benchmarks/results/pretrain_step.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paco_fr.config import load_config, to_dict  # noqa: E402
from paco_fr.io import write_json_atomic  # noqa: E402
from paco_fr.model import PaCoFR  # noqa: E402
from paco_fr.train.augment import AugmentParams  # noqa: E402
from paco_fr.train.data import FaceRegionStream, StreamSpec, make_loader, read_split  # noqa: E402
from paco_fr.train.optim import build_optimizer  # noqa: E402


def stream_spec(cfg, corpus: Path, regions: Path, batch: int) -> StreamSpec:
    t = cfg.train
    return StreamSpec(corpus_dir=str(corpus), regions_dir=str(regions), faces=read_split(corpus, "train"),
                      img_size=cfg.model.img_size, patch_size=cfg.model.patch_size, batch_size=batch, seed=cfg.seed,
                      mask_strategy=cfg.masking.strategy, mask_ratio=cfg.masking.ratio,
                      replace_ratio=cfg.model.replace_ratio,
                      augment=AugmentParams(t.hflip, t.scale_jitter, t.translate_jitter, t.color_jitter),
                      streams=t.loader_streams or max(1, t.num_workers))


def first_batch(cfg, corpus: Path, regions: Path, batch: int) -> dict[str, torch.Tensor]:
    return next(iter(FaceRegionStream(stream_spec(cfg, corpus, regions, batch))))


def time_steps(corpus: Path, regions: Path, batch: int, reps: int, warmup: int) -> dict:
    presets = ("paco_fr", "mae")
    runs = {}
    for name in presets:
        cfg = load_config(ROOT / "params.yaml", preset=name)
        torch.manual_seed(0)
        model = PaCoFR(cfg.model).train()
        optimizer = build_optimizer(model, cfg.train.lr, cfg.train.weight_decay, cfg.train.betas, torch.device("cpu"))
        runs[name] = (model, optimizer, first_batch(cfg, corpus, regions, batch), [])

    def step(name: str) -> float:
        model, optimizer, data, _ = runs[name]
        start = time.perf_counter()
        out = model(data)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for name in presets:
        for _ in range(warmup):
            step(name)
    for rep in range(reps):
        # Alternate the order too, so neither preset always runs right after the other.
        for name in (presets if rep % 2 == 0 else presets[::-1]):
            runs[name][3].append(step(name))
    out = {}
    for name in presets:
        times = runs[name][3]
        out[name] = {"median_s": statistics.median(times), "min_s": min(times), "times_s": times,
                     "params_m": sum(p.numel() for p in runs[name][0].parameters()) / 1e6}
    out["ratio_median"] = out["paco_fr"]["median_s"] / out["mae"]["median_s"]
    out["ratio_min"] = out["paco_fr"]["min_s"] / out["mae"]["min_s"]
    return out


def loader_rate(corpus: Path, regions: Path, batch: int, workers: int, batches: int) -> dict:
    cfg = load_config(ROOT / "params.yaml", preset="paco_fr")
    loader = make_loader(FaceRegionStream(stream_spec(cfg, corpus, regions, batch)), workers, seed=0)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    del it
    return {"workers": workers, "batches": batches, "images_per_s": batches * batch / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    parser.add_argument("--regions", type=Path, default=ROOT / "data" / "regions")
    parser.add_argument("--batch", type=int, default=None, help="default: train.batch_size of params.yaml")
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--loader-batches", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain_step.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "params.yaml")
    batch = args.batch or cfg.train.batch_size
    fixture = None
    corpus, regions = args.corpus, args.regions
    if not (corpus / "manifest.parquet").exists():
        from paco_fr.train.toydata import write_toy_corpus

        fixture = tempfile.TemporaryDirectory()
        corpus, regions = write_toy_corpus(Path(fixture.name) / "corpus", Path(fixture.name) / "regions",
                                           n_faces=max(4 * batch, 128), size=cfg.model.img_size, shard_size=1000)
        print(f"no corpus at {args.corpus}: using a cartoon-face fixture", file=sys.stderr)

    steps = time_steps(corpus, regions, batch, args.reps, args.warmup)
    loader = loader_rate(corpus, regions, batch, cfg.train.num_workers, args.loader_batches)
    train_rate = batch / steps["paco_fr"]["median_s"]
    result = {
        "benchmark": "pretrain_step",
        "corpus": str(args.corpus) if fixture is None else "cartoon-face fixture",
        "model": to_dict(cfg.model), "batch": batch, "torch_threads": torch.get_num_threads(),
        "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "step": steps, "loader": loader, "training_images_per_s": train_rate,
        "loader_over_training": loader["images_per_s"] / train_rate,
        "targets": {"ratio_max": 1.10, "loader_over_training_min": 2.0},
    }
    result["pass"] = {"step_ratio": steps["ratio_median"] <= 1.10, "loader": result["loader_over_training"] >= 2.0}
    rows = [("paco_fr step (median)", f"{steps['paco_fr']['median_s'] * 1000:.0f} ms"),
            ("mae step (median)", f"{steps['mae']['median_s'] * 1000:.0f} ms"),
            ("paco_fr / mae (median)", f"{steps['ratio_median']:.3f}  (target <= 1.10)"),
            ("paco_fr / mae (min)", f"{steps['ratio_min']:.3f}"),
            (f"loader images/s ({loader['workers']} workers)", f"{loader['images_per_s']:.1f}"),
            ("training images/s (paco_fr)", f"{train_rate:.1f}"),
            ("loader / training", f"{result['loader_over_training']:.2f}  (target >= 2)")]
    width = max(len(r[0]) for r in rows)
    print(f"pretrain_step: {cfg.model.encoder} {cfg.model.img_size}px/p{cfg.model.patch_size}, batch {batch}, "
          f"{torch.get_num_threads()} threads, {args.reps} alternating reps")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    if fixture is not None:
        fixture.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
