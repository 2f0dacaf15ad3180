"""Evaluation speed: wall time of `evaluate` per embedded benchmark for a ViT-tiny (112 px, patch 8,
random init) at the params.yaml sizes, on this machine's CPUs.

For each benchmark three runs in one warm process, in this order:
  cold   - empty cache: the benchmark is materialised, features extracted, probe fitted, scored
  warm   - benchmark and features cached: probe fitting and scoring only
  pixels - the raw-pixel baseline on the same (cached) data: the probe cost without an encoder
Ratios reported: cold / warm (what caching saves) and warm / pixels (what the ViT features cost the
probes, e.g. bigger feature vectors). Also the total for the main job's shape: every embedded
benchmark for two ViT encoders (one cold, one with the benchmarks cached but its own features not).

    python benchmarks/eval_speed.py                 # params.yaml sizes
    python benchmarks/eval_speed.py --quick         # n_train/val/test = 60/20/60

Prints a table and writes benchmarks/results/eval_speed.json.

A second mode checks that the protocols are *sensitive* (a representation that learned something
beats random init, and raw pixels are reported beside it):

    python benchmarks/eval_speed.py --sensitivity   # a GPU makes it take ~5 minutes

It renders --faces procedural faces (seed 7, identities 0..: disjoint from the benchmarks'), trains
a quick MAE for --train-s seconds (the project's PaCoFR with model.codebook=off, spatial=false,
random 75 % masks, bf16 on CUDA), then evaluates random / mae_quick / pixels on every embedded
benchmark at the params.yaml sizes and writes the comparison table to
benchmarks/results/eval_sensitivity.json (and .md beside it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paco_fr.config import load_config  # noqa: E402
from paco_fr.eval.stage import evaluate  # noqa: E402
from paco_fr.io import write_json_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "eval_speed.json"
SENSITIVITY_RESULTS = ROOT / "benchmarks" / "results" / "eval_sensitivity.json"


def _save_random_encoder(directory: Path, model_cfg, seed: int) -> None:
    import timm
    import torch

    from paco_fr.model.export import save_encoder

    torch.manual_seed(seed)
    vit = timm.create_model(model_cfg.encoder, pretrained=False, img_size=model_cfg.img_size,
                            patch_size=model_cfg.patch_size, num_classes=0)
    save_encoder(vit, directory, name=model_cfg.encoder, img_size=model_cfg.img_size,
                 patch_size=model_cfg.patch_size, card={"preset": "second_random"})


def make_chunk(args: tuple[int, int]) -> np.ndarray:
    k, n = args
    from paco_fr.data.align import align_face
    from paco_fr.data.synthetic import generate_faces

    out = np.empty((n, 112, 112, 3), np.uint8)
    for i, face in enumerate(generate_faces(n, seed=7 + k, size=192, identity_offset=k * n)):
        out[i] = align_face(face.image, face.keypoints5, 112, 0.8).crop
    return out


def corpus(n_faces: int) -> np.ndarray:
    workers = max(1, min(16, (os.cpu_count() or 2)))
    per = math.ceil(n_faces / workers)
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(make_chunk, [(k, per) for k in range(workers)]))
    return np.concatenate(parts)[:n_faces]


def pretrain(images: np.ndarray, enc_dir: Path, train_s: float) -> dict:
    import torch

    from paco_fr.model.config import ModelConfig
    from paco_fr.model.export import save_encoder
    from paco_fr.model.paco import PaCoFR

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cfg = ModelConfig(codebook="off", replace_ratio=0.0, spatial=False)
    model = PaCoFR(cfg).to(dev).train()
    bs = 512 if dev.type == "cuda" else 16
    lr = 1.5e-4 * bs / 256
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(dev)
    n_patch = model.num_patches
    n_mask = int(round(0.75 * n_patch))
    gen = torch.Generator(device=dev).manual_seed(0)
    step, losses, t_start = 0, [], time.time()
    warmup = 100
    while time.time() - t_start < train_s:
        frac = (time.time() - t_start) / train_s
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        idx = torch.randint(0, len(data), (bs,), device=dev, generator=gen)
        imgs = data[idx]
        flip = torch.rand(bs, device=dev, generator=gen) < 0.5
        imgs = torch.where(flip[:, None, None, None], imgs.flip(-1), imgs)
        noise = torch.rand(bs, n_patch, device=dev, generator=gen)
        mask = noise.argsort(dim=1).argsort(dim=1) < n_mask
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model({"images": imgs, "mask": mask})
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0 or step == 1:
            losses.append((step, float(out.loss.detach())))
            print(f"step {step} loss {losses[-1][1]:.4f}", flush=True)
    model.eval()
    save_encoder(model.encoder.vit.float().cpu(), enc_dir, name=cfg.encoder, img_size=cfg.img_size,
                 patch_size=cfg.patch_size,
                 card={"preset": "mae_quick", "config": {"curation": {"template_zoom": 0.8}},
                       "note": "quick MAE for the eval sensitivity check", "steps": step, "batch_size": bs})
    return {"steps": step, "batch_size": bs, "images_seen": step * bs, "losses": losses}


def sensitivity(args) -> int:
    """See the module docstring: quick MAE vs random vs pixels on the embedded benchmarks."""
    import shutil

    import torch

    from paco_fr.eval.compare import compare

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = corpus(args.faces)
        print(f"corpus {images.shape} in {time.time() - t0:.1f} s", flush=True)
        enc_dir = tmp / "mae_quick"
        info = pretrain(images, enc_dir, args.train_s)
        del images
        overrides = [f"eval.cache_dir={tmp / 'cache'}", f"eval.device={'cuda' if torch.cuda.is_available() else 'cpu'}"]
        if args.quick:
            overrides += ["eval.n_train=60", "eval.n_val=20", "eval.n_test=60"]
        cfg = load_config(ROOT / "params.yaml", overrides=overrides)
        timings = {}
        for enc in ("random", str(enc_dir), "pixels"):
            for bench in cfg.eval.benchmarks:
                t = time.time()
                res = evaluate(cfg.eval, enc, bench, tmp / "reports" / Path(enc).name / bench, model_cfg=cfg.model,
                               fallback_zoom=cfg.curation.template_zoom)
                timings[f"{res.encoder_label}/{bench}"] = round(time.time() - t, 1)
                m = res.primary
                print(f"{res.encoder_label:10s} {bench:24s} {res.primary_metric} {m['value']:.4f} "
                      f"[{m['ci_low']:.4f}, {m['ci_high']:.4f}]", flush=True)
        result = compare([tmp / "reports"], tmp / "summary")
        table = result.table_md.read_text()
        print(table)
        out = Path(args.out if args.out != str(RESULTS) else SENSITIVITY_RESULTS)
        summary = json.loads(result.table_json.read_text())
        write_json_atomic(out, {"what": "protocol sensitivity: quick MAE vs random init vs raw pixels",
                                "pretrain": info, "faces": args.faces, "train_s": args.train_s,
                                "sizes": {"n_train": cfg.eval.n_train, "n_val": cfg.eval.n_val,
                                          "n_test": cfg.eval.n_test},
                                "cuda": torch.cuda.is_available(), "timings_s": timings,
                                "cells": summary["cells"],
                                "beats_random_non_overlapping_ci": summary["beats_random_non_overlapping_ci"]})
        shutil.copy(result.table_md, out.with_suffix(".md"))
        print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small splits (60/20/60), for a smoke run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--sensitivity", action="store_true", help="the protocol sensitivity check (see above)")
    parser.add_argument("--faces", type=int, default=16000, help="--sensitivity: pre-training faces")
    parser.add_argument("--train-s", type=float, default=170.0, help="--sensitivity: pre-training seconds")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sensitivity:
        return sensitivity(args)
    overrides = ["model.encoder=vit_tiny_patch16_224", "model.img_size=112", "model.patch_size=8"]
    if args.quick:
        overrides += ["eval.n_train=60", "eval.n_val=20", "eval.n_test=60"]
    cfg = load_config(ROOT / "params.yaml", overrides=overrides)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ecfg = cfg.eval
        ecfg.cache_dir = str(tmp / "cache")
        second = tmp / "second_encoder"
        _save_random_encoder(second, cfg.model, seed=ecfg.seed + 1)
        for bench in ecfg.benchmarks:
            row = {"benchmark": bench}
            for kind, encoder in (("cold", "random"), ("warm", "random"), ("pixels", "pixels")):
                t0 = time.perf_counter()
                res = evaluate(ecfg, encoder, bench, tmp / kind / bench, model_cfg=cfg.model)
                row[f"{kind}_s"] = time.perf_counter() - t0
                rep = json.loads(res.report_json.read_text())
                row[f"{kind}_timing"] = rep["timing"]
                row[f"{kind}_{res.primary_metric}"] = res.primary["value"]
            # A second ViT (saved like a pre-trained encoder) whose features are not cached yet:
            # the main job's second encoder.
            t0 = time.perf_counter()
            evaluate(ecfg, str(second), bench, tmp / "second" / bench, model_cfg=cfg.model)
            row["second_encoder_s"] = time.perf_counter() - t0
            row["cold_over_warm"] = row["cold_s"] / row["warm_s"]
            row["warm_over_pixels"] = row["warm_s"] / row["pixels_s"]
            rows.append(row)
            print(f"{bench:24s} cold {row['cold_s']:7.1f} s  second encoder {row['second_encoder_s']:7.1f} s  "
                  f"warm {row['warm_s']:6.1f} s  pixels {row['pixels_s']:6.1f} s", flush=True)
    total_main = sum(r["cold_s"] + r["second_encoder_s"] for r in rows)
    print()
    print(f"{'benchmark':24s} {'cold s':>8s} {'2nd enc s':>10s} {'warm s':>8s} {'pixels s':>9s} "
          f"{'cold/warm':>10s} {'warm/pixels':>12s}")
    for r in rows:
        print(f"{r['benchmark']:24s} {r['cold_s']:8.1f} {r['second_encoder_s']:10.1f} {r['warm_s']:8.1f} "
              f"{r['pixels_s']:9.1f} {r['cold_over_warm']:10.2f} {r['warm_over_pixels']:12.2f}")
    print(f"main job shape (all embedded benchmarks, two ViT encoders): {total_main:.1f} s")
    result = {
        "what": "evaluate wall time per embedded benchmark, ViT-tiny 112 px / patch 8, random init",
        "sizes": {"n_train": cfg.eval.n_train, "n_val": cfg.eval.n_val, "n_test": cfg.eval.n_test},
        "quick": args.quick, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "host": platform.node(), "python": platform.python_version(),
        "rows": rows, "main_job_two_encoders_s": total_main,
    }
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
