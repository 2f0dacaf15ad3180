"""Near duplicates at scale: distinct faces kept apart, copies caught, index queries sublinear.

1. Distinct: D procedural faces of D identities (different identities, expressions, poses), curated
   with ground truth: the share rejected as `near_duplicate` is wrongly dropped. Target: < 0.1%.
2. Copies: K procedural originals, each with 5 copies (JPEG q50, mode L, resized 0.5x, cropped 2%,
   brightened x1.2), curated (a) with their ground truth carried through the copy and (b) with
   MediaPipe on originals and copies alike (use_ground_truth=false). Share of copies caught, per
   kind. Target: >= 95%.
3. Query time of the index (paco_fr.data.dedup.BinaryHashIndex) holding 10,000 vs 100,000 hashes:
   random 256-bit codes (distinct faces are ~100-130 bits apart, like random codes), queried with
   stored codes with 10 bits flipped (a copy) and with fresh random codes (a new face).

    python benchmarks/curation_neardup.py --distinct 20000 --copies 200
    python benchmarks/curation_neardup.py --distinct-raw /tmp/raw20k   # an existing builtin raw folder

Prints a table and writes benchmarks/results/curation_neardup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "benchmarks" / "results" / "curation_neardup.json"

from curation_testdata import copy_transforms, encode, gt_record, transformed_record  # noqa: E402
from paco_fr.config import apply_overrides  # noqa: E402
from paco_fr.data.config import BuiltinSourceConfig, CurationConfig  # noqa: E402


def distinct(raw: Path, work: Path) -> dict:
    from paco_fr.data.curate import curate

    out = work / "corpus-distinct"
    started = time.perf_counter()
    result = curate(CurationConfig(), raw, out, workers=2, progress=True)
    rejected = pd.read_parquet(out / "rejected.parquet")
    images = result.summary["inputs"] - int((rejected["reason"] == "unsupported_format").sum())
    near = rejected[rejected["reason"] == "near_duplicate"]
    dropped_faces = result.summary["faces_rejected_in_accepted_inputs"].get("near_duplicate", 0)
    shutil.rmtree(out, ignore_errors=True)
    return {"images": images, "faces": result.summary["faces"], "near_duplicate_images": len(near),
            "near_duplicate_faces_in_kept_images": dropped_faces,
            "wrongly_dropped_share": (len(near) + dropped_faces) / images, "examples": near["detail"].head(5).tolist(),
            "wall_s": time.perf_counter() - started}


def copies(k: int, work: Path, *, ground_truth: bool) -> dict:
    from paco_fr.data.curate import curate
    from paco_fr.data.synthetic import generate_faces

    src = work / f"copies-{'gt' if ground_truth else 'mediapipe'}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    kinds: dict[str, str] = {}
    for i, face in enumerate(generate_faces(k, seed=101, size=192, n_identities=k)):
        record = gt_record(face)
        (src / f"a{i:05d}.png").write_bytes(encode(face.image))
        (src / f"a{i:05d}.gt.json").write_text(json.dumps(record))
        for name, (image, scale, offset) in copy_transforms(face.image).items():
            (src / f"b{i:05d}_{name}.png").write_bytes(encode(image))
            (src / f"b{i:05d}_{name}.gt.json").write_text(json.dumps(transformed_record(record, scale, offset)))
            kinds[f"b{i:05d}_{name}.png"] = name
    cfg = apply_overrides(CurationConfig(), [f"use_ground_truth={str(ground_truth).lower()}"])
    out = work / "corpus-copies"
    shutil.rmtree(out, ignore_errors=True)
    curate(cfg, src, out, workers=2, progress=True)
    rejected = pd.read_parquet(out / "rejected.parquet").set_index("source_path")
    manifest = pd.read_parquet(out / "manifest.parquet")
    originals_kept = {p for p in manifest["source_path"] if p.startswith("a")}
    per_kind: dict[str, dict] = {}
    for path, kind in kinds.items():
        original = "a" + path[1:6] + ".png"
        if original not in originals_kept:
            continue  # the original itself was not accepted (e.g. MediaPipe found no face): not a test
        caught = path in rejected.index and rejected.loc[path, "reason"] in ("near_duplicate", "duplicate")
        entry = per_kind.setdefault(kind, {"copies": 0, "caught": 0})
        entry["copies"] += 1
        entry["caught"] += int(caught)
    for entry in per_kind.values():
        entry["share"] = entry["caught"] / entry["copies"]
    total = sum(e["copies"] for e in per_kind.values())
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return {"originals": k, "originals_accepted": len(originals_kept), "per_kind": per_kind,
            "share": sum(e["caught"] for e in per_kind.values()) / max(total, 1)}


def query_time(sizes: tuple[int, ...], queries: int = 2000) -> dict:
    from paco_fr.data.dedup import BinaryHashIndex

    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        index = BinaryHashIndex(16)
        started = time.perf_counter()
        for label, code in enumerate(codes):
            index.add(code, label)
        build = time.perf_counter() - started
        picks = rng.integers(0, n, queries)
        near = codes[picks].copy()
        for row in near:
            for bit in rng.choice(256, 10, replace=False):
                row[bit // 8] ^= np.uint8(1 << (bit % 8))
        far = rng.integers(0, 256, (queries, 32), dtype=np.uint8)
        started = time.perf_counter()
        found = sum(1 for i, q in enumerate(near) if (index.nearest(q) or (-1,))[0] == picks[i])
        near_us = (time.perf_counter() - started) / queries * 1e6
        started = time.perf_counter()
        false = sum(1 for q in far if index.nearest(q) is not None)
        far_us = (time.perf_counter() - started) / queries * 1e6
        out[n] = {"build_s": build, "near_query_us": near_us, "far_query_us": far_us,
                  "near_recall": found / queries, "far_false_hits": false}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distinct", type=int, default=20000)
    parser.add_argument("--distinct-raw", default=None, metavar="DIR", help="existing builtin raw folder to use")
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs=2, default=(10000, 100000))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="paco-fr-neardup-"))
    try:
        if args.distinct_raw:
            raw = Path(args.distinct_raw)
        else:
            from paco_fr.data.builtin import write_builtin_raw

            raw = write_builtin_raw(BuiltinSourceConfig(photos=False, n_synthetic=args.distinct,
                                                        n_identities=args.distinct, seed=3), work / "raw", progress=True)
        result = {"benchmark": "curation_neardup",
                  "command": " ".join(["python benchmarks/curation_neardup.py", *(argv or sys.argv[1:])]),
                  "query": query_time(tuple(args.sizes)),
                  "copies_ground_truth": copies(args.copies, work, ground_truth=True),
                  "copies_mediapipe": copies(args.copies, work, ground_truth=False),
                  "distinct": distinct(raw, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    d, q = result["distinct"], result["query"]
    print(f"\ndistinct faces: {d['images']} images, {d['near_duplicate_images']} images + "
          f"{d['near_duplicate_faces_in_kept_images']} faces dropped as near duplicates "
          f"({100 * d['wrongly_dropped_share']:.3f}%; target < 0.1%)")
    for mode in ("copies_ground_truth", "copies_mediapipe"):
        c = result[mode]
        kinds = ", ".join(f"{k} {100 * v['share']:.1f}%" for k, v in c["per_kind"].items())
        print(f"{mode}: {100 * c['share']:.1f}% caught of copies of {c['originals_accepted']} originals ({kinds})")
    small, large = sorted(q)
    for n in (small, large):
        print(f"index of {n}: near query {q[n]['near_query_us']:.1f} us (recall {q[n]['near_recall']:.4f}), "
              f"far query {q[n]['far_query_us']:.1f} us, build {q[n]['build_s']:.1f} s")
    print(f"query time x{q[large]['near_query_us'] / q[small]['near_query_us']:.2f} for x{large / small:.0f} hashes")
    from paco_fr.io import write_json_atomic

    write_json_atomic(RESULTS, result)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
