"""Mask sampling throughput: masks/s per strategy at batch 256 on a 14x14 grid, one thread.

    .venv/bin/python benchmarks/masks.py [--batch 256] [--side 14] [--seconds 3] [--preview PNG] [--device cuda]

Target: structured >= 20,000 masks/s (masking must never show in a training step). Each strategy is
reported as a ratio against `random` (MAE) measured in the same run. Writes benchmarks/results/masks.json.
`--preview docs/img/masks_preview.png` also draws sampled masks on procedural faces, one row per strategy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from paco_fr.masks import REGION_INDEX, STRATEGIES, patch_membership, sample_masks

RESULTS = Path(__file__).resolve().parent / "results" / "masks.json"
TARGET_STRUCTURED = 20_000


def schematic_faces(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, size, size) uint8 label maps of upright schematic faces, each shifted and scaled a little
    so that patch memberships differ across the batch."""
    lin = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    jitter = (torch.rand(batch, 3, generator=generator) - 0.5) * 0.2  # dx, dy, scale
    x = ((xx[None] - jitter[:, 0, None, None]) / (1 + jitter[:, 2, None, None]))
    y = ((yy[None] - jitter[:, 1, None, None]) / (1 + jitter[:, 2, None, None]))
    lab = torch.zeros(batch, size, size, dtype=torch.uint8)
    parts = [
        ("head_other", (y / 0.95) ** 2 + (x / 0.8) ** 2 < 1),
        ("skin", (y / 0.75) ** 2 + (x / 0.6) ** 2 < 1),
        ("left_brow", ((y + 0.35).abs() < 0.05) & ((x + 0.3).abs() < 0.17)),
        ("right_brow", ((y + 0.35).abs() < 0.05) & ((x - 0.3).abs() < 0.17)),
        ("left_eye", ((y + 0.2) / 0.07) ** 2 + ((x + 0.3) / 0.15) ** 2 < 1),
        ("right_eye", ((y + 0.2) / 0.07) ** 2 + ((x - 0.3) / 0.15) ** 2 < 1),
        ("nose", (y > -0.15) & (y < 0.2) & (x.abs() < 0.1 + 0.3 * (y + 0.15))),
        ("mouth", ((y - 0.42) / 0.08) ** 2 + (x / 0.25) ** 2 < 1),
    ]
    for name, where in parts:
        lab[where] = REGION_INDEX[name]
    return lab


def rate(fn, items_per_call: int, seconds: float, device: str = "cpu") -> float:
    def call():
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    call()  # warm-up
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        call()
        calls += 1
    return calls * items_per_call / elapsed


def write_preview(path: Path, n_faces: int = 6, crop: int = 112, patch: int = 8, ratio: float = 0.75) -> None:
    """Masks of every strategy on a few procedural faces (ground-truth regions), one row per strategy."""
    import numpy as np  # noqa: PLC0415

    from paco_fr.data.align import align_face, warp_image  # noqa: PLC0415
    from paco_fr.data.synthetic import generate_faces  # noqa: PLC0415
    from paco_fr.masks import REGION_GROUPS, structured_masks, num_masked  # noqa: PLC0415
    from paco_fr.masks.preview import mask_grid  # noqa: PLC0415

    crops, maps = [], []
    for face in generate_faces(n_faces, seed=4, size=192):
        aligned = align_face(face.image, face.keypoints5, crop, zoom=0.8)
        crops.append(aligned.crop)
        maps.append(warp_image(face.label_map, aligned.matrix, crop, nearest=True))
    membership = patch_membership(torch.from_numpy(np.stack(maps)), patch)
    generator = torch.Generator().manual_seed(0)
    masks = {s: sample_masks(membership, s, ratio, generator).numpy() for s in ("random", "block")}
    structured, groups = structured_masks(membership, num_masked(membership.shape[1], ratio), generator)
    masks["structured"] = structured.numpy()
    captions = {"structured": [REGION_GROUPS[g] if g >= 0 else "none" for g in groups.tolist()]}
    image = mask_grid(crops, masks, patch, label_maps=maps, captions_by_strategy=captions)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--side", type=int, default=14)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--ratio", type=float, default=0.75)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--preview", type=Path, default=None, help="also write a PNG of sampled masks")
    parser.add_argument("--device", default="cpu", help="cpu (the target: one thread) or cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    label_maps = schematic_faces(args.batch, args.side * args.patch, torch.Generator().manual_seed(0)).to(args.device)
    generator = torch.Generator(device=args.device).manual_seed(0)
    membership = patch_membership(label_maps, args.patch)

    rows = {}
    for strategy in STRATEGIES:
        rows[strategy] = rate(lambda s=strategy: sample_masks(membership, s, args.ratio, generator),
                              args.batch, args.seconds, args.device)
    membership_rate = rate(lambda: patch_membership(label_maps, args.patch), args.batch, args.seconds, args.device)

    print(f"batch {args.batch}, grid {args.side}x{args.side}, ratio {args.ratio}, 1 thread, device {args.device}, "
          f"torch {torch.__version__}")
    print(f"{'strategy':<12}{'masks/s':>12}{'vs random':>11}")
    for strategy, value in rows.items():
        print(f"{strategy:<12}{value:>12,.0f}{value / rows['random']:>11.2f}")
    print(f"{'membership':<12}{membership_rate:>12,.0f}   label maps/s "
          f"({args.side * args.patch} px, patch {args.patch})")
    verdict = "PASS" if rows["structured"] >= TARGET_STRUCTURED else "FAIL"
    print(f"structured target >= {TARGET_STRUCTURED:,}/s: {verdict}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "masks",
        "config": {"batch": args.batch, "grid": args.side, "patch": args.patch, "ratio": args.ratio,
                   "threads": 1, "device": args.device, "seconds_per_strategy": args.seconds},
        "masks_per_s": rows,
        "ratio_vs_random": {k: v / rows["random"] for k, v in rows.items()},
        "membership_label_maps_per_s": membership_rate,
        "target": {"structured_masks_per_s": TARGET_STRUCTURED, "met": verdict == "PASS"},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None},
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.preview is not None:
        write_preview(args.preview)


if __name__ == "__main__":
    main()
