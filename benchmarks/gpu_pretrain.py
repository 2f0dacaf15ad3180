"""PaCo-FR pre-training throughput on one GPU: images/s and model FLOPs utilisation (MFU).

ViT-B/16 at 224 px by default, bf16 autocast, fused AdamW, optional torch.compile, a few hundred
steps on random data (cartoon faces with their region maps, structured masks), timed after warm-up.
FLOPs of one training step (forward + backward) are counted with torch.utils.flop_counter's
FlopCounterMode on the eager model; MFU = FLOPs/step x steps/s / peak. The peak is the H100/H200
SXM dense bf16 datasheet figure (989 TFLOP/s) unless --peak-tflops says otherwise; a measured
8192^3 bf16 matmul rate is reported beside it as the practical ceiling.

Needs only torch, timm, numpy (and this repository). Smoke mode on a CPU:

    python benchmarks/gpu_pretrain.py --device cpu --steps 3 --model vit_tiny_patch16_224 --img-size 112

On a GPU:

    python benchmarks/gpu_pretrain.py --out benchmarks/results/gpu_pretrain.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paco_fr.masks import REGIONS, patch_membership, sample_masks  # noqa: E402
from paco_fr.model import ModelConfig, PaCoFR  # noqa: E402
from paco_fr.model.config import LossWeights  # noqa: E402
from paco_fr.train.augment import region_centroids  # noqa: E402
from paco_fr.train.data import choose_replaced  # noqa: E402
from paco_fr.train.optim import build_optimizer  # noqa: E402
from paco_fr.train.toydata import toy_face  # noqa: E402

H100_H200_BF16_DENSE_TFLOPS = 989.0


def model_config(args: argparse.Namespace, preset: str) -> ModelConfig:
    paco = preset == "paco_fr"
    return ModelConfig(
        encoder=args.model, img_size=args.img_size, patch_size=args.patch_size, decoder_dim=args.decoder_dim,
        decoder_depth=args.decoder_depth, decoder_heads=args.decoder_heads,
        codebook="multi" if paco else "off", codebook_size=args.codebook_size, code_dim=64, top_k=4,
        belief_hidden=256, replace_ratio=0.15 if paco else 0.0, spatial=paco, loss_weights=LossWeights())


def make_pool(args: argparse.Namespace, strategy: str, replace_ratio: float, device: torch.device,
              n_batches: int) -> list[dict[str, torch.Tensor]]:
    """Random batches prepared on the CPU as the data pipeline would, then moved to the device."""
    rng = np.random.default_rng(0)
    n_unique = min(args.batch, 64)
    faces = [toy_face(args.img_size, rng) for _ in range(n_unique)]
    generator = torch.Generator().manual_seed(0)
    pool = []
    for _ in range(n_batches):
        pick = rng.integers(0, n_unique, args.batch)
        images = torch.stack([torch.from_numpy(faces[i][0]).permute(2, 0, 1) for i in pick])
        labels = torch.stack([torch.from_numpy(faces[i][1]) for i in pick])
        membership = patch_membership(labels.long(), args.patch_size)
        mask = sample_masks(membership, strategy, 0.75, generator)
        replaced = torch.stack([choose_replaced(m, replace_ratio, generator) for m in mask])
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
        n_visible = int((~mask[0]).sum())
        cents = [region_centroids(lab, len(REGIONS)) for lab in labels]
        batch = {"images": images, "mask": mask, "replaced": replaced, "membership": membership,
                 "centroids": torch.stack([c for c, _ in cents]), "present": torch.stack([p for _, p in cents]),
                 "ids_keep": order[:, :n_visible].contiguous(), "ids_masked": order[:, n_visible:].contiguous()}
        pool.append({k: v.to(device, non_blocking=True) for k, v in batch.items()})
    return pool


def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def count_step_flops(model: PaCoFR, batch: dict[str, torch.Tensor], device: torch.device) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(device):
            out = model(batch)
        out.loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * 8192 ** 3 * 10 / (start.elapsed_time(end) / 1000) / 1e12


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_preset(args: argparse.Namespace, preset: str, device: torch.device, peak_tflops: float) -> dict:
    cfg = model_config(args, preset)
    torch.manual_seed(0)
    model = PaCoFR(cfg).to(device).train()
    if args.channels_last:
        model.encoder.vit.patch_embed.proj.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, 1.5e-4, 0.05, (0.9, 0.95), device)
    pool = make_pool(args, "structured" if preset == "paco_fr" else "random", cfg.replace_ratio, device, args.pool)
    flops = count_step_flops(model, pool[0], device)
    if args.compile == "blocks":
        model.encoder.vit.blocks.compile()
        model.decoder.blocks.compile()

    def step(i: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(device):
            out = model(batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if model.codebook is not None and (i + 1) % 10 == 0 and out.embeddings is not None:
            model.codebook.restart_dead_codes(out.embeddings)
        return out.loss.detach()

    compile_start = time.perf_counter()
    for i in range(args.warmup):
        step(i, pool[i % len(pool)])
    sync(device)
    warmup_s = time.perf_counter() - compile_start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    losses = []
    start = time.perf_counter()
    window_start = start
    for i in range(args.steps):
        losses.append(step(i, pool[i % len(pool)]))
        if (i + 1) % args.window == 0 or i == args.steps - 1:
            sync(device)
            now = time.perf_counter()
            times.append((now - window_start) / (((i % args.window) + 1)))
            window_start = now
    sync(device)
    total = time.perf_counter() - start
    step_s = total / args.steps
    images_per_s = args.batch / step_s
    achieved = flops / step_s / 1e12
    return {
        "preset": preset, "batch": args.batch, "steps": args.steps, "warmup_steps": args.warmup,
        "warmup_and_compile_s": warmup_s, "step_ms": step_s * 1000,
        "step_ms_windows_median": statistics.median(times) * 1000, "images_per_s": images_per_s,
        "flops_per_step": flops, "flops_per_image": flops / args.batch, "achieved_tflops": achieved,
        "mfu": achieved / peak_tflops,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None,
        "final_loss": float(torch.stack(losses[-10:]).float().mean()),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "encoder_params_m": sum(p.numel() for p in model.encoder.parameters()) / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=None, help="default 512 on a GPU, 8 on a CPU")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=None, help="default 15 on a GPU, 1 on a CPU")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--pool", type=int, default=4, help="distinct random batches cycled through")
    parser.add_argument("--decoder-dim", type=int, default=512)
    parser.add_argument("--decoder-depth", type=int, default=8)
    parser.add_argument("--decoder-heads", type=int, default=16)
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--presets", default="paco_fr,mae")
    # Whole-model torch.compile is not offered: the codebook's statistics (no-grad updates of buffers)
    # break the graph, and the backward came out detached in torch 2.14 (see docs/method.md).
    parser.add_argument("--compile", choices=["none", "blocks"], default=None,
                        help="torch.compile the encoder and decoder transformer blocks (default on a GPU)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=H100_H200_BF16_DENSE_TFLOPS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    args.batch = args.batch or (512 if on_gpu else 8)
    args.warmup = args.warmup if args.warmup is not None else (15 if on_gpu else 1)
    args.compile = args.compile or ("blocks" if on_gpu else "none")
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    measured_peak = matmul_tflops(device)
    results = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        results.append(run_preset(args, preset, device, args.peak_tflops))
        if on_gpu:
            torch.cuda.empty_cache()
    import timm

    report = {
        "benchmark": "gpu_pretrain",
        "device": torch.cuda.get_device_name(device) if on_gpu else platform.processor() or platform.machine(),
        "torch": torch.__version__, "timm": timm.__version__, "cuda": torch.version.cuda,
        "model": args.model, "img_size": args.img_size, "patch_size": args.patch_size,
        "decoder": {"dim": args.decoder_dim, "depth": args.decoder_depth, "heads": args.decoder_heads},
        "codebook_size": args.codebook_size, "batch": args.batch, "compile": args.compile, "dtype": "bf16 autocast"
        if on_gpu else "fp32", "peak_tflops_used": args.peak_tflops,
        "peak_source": "H100/H200 SXM dense bf16 datasheet" if args.peak_tflops == H100_H200_BF16_DENSE_TFLOPS
        else "--peak-tflops", "measured_matmul_tflops": measured_peak, "results": results,
        "total_s": time.perf_counter() - started,
    }
    if measured_peak:
        for r in results:
            r["mfu_vs_measured_matmul"] = r["achieved_tflops"] / measured_peak
    print(f"gpu_pretrain: {report['device']}, {args.model} {args.img_size}px/p{args.patch_size}, batch {args.batch}, "
          f"compile={args.compile}, peak {args.peak_tflops:.0f} TFLOP/s ({report['peak_source']})")
    if measured_peak:
        print(f"  measured 8192^3 bf16 matmul: {measured_peak:.0f} TFLOP/s")
    header = f"  {'preset':<8} {'step ms':>8} {'img/s':>8} {'GFLOP/img':>10} {'TFLOP/s':>8} {'MFU':>6} {'mem GiB':>8}"
    print(header)
    for r in results:
        mem = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "-"
        print(f"  {r['preset']:<8} {r['step_ms']:>8.1f} {r['images_per_s']:>8.0f} {r['flops_per_image'] / 1e9:>10.1f} "
              f"{r['achieved_tflops']:>8.1f} {r['mfu'] * 100:>5.1f}% {mem:>8}")
    if len(results) == 2:
        print(f"  paco_fr / mae step time: {results[0]['step_ms'] / results[1]['step_ms']:.3f}")
        report["paco_over_mae_step"] = results[0]["step_ms"] / results[1]["step_ms"]
    print(f"  total {report['total_s']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
