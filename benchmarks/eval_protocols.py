"""What the issue-14 evaluation changes cost, as ratios measured in one run on this machine.

1. LDA (verification probe): the span-restricted solve of paco_fr.eval.probes.fit_lda_path against the
   previous full-space solve (copied below as the baseline), on the random encoder's features of
   synthetic_verification at the params.yaml sizes; alternated, same scores checked.
2. Whole `evaluate`, warm (benchmark and features cached), for every embedded benchmark: this tree
   against a baseline tree (`--baseline-tree DIR`, e.g. `git archive <commit> | tar -x -C DIR`), each
   in its own process, alternated round by round.
3. The HOG row of the default pipeline: `evaluate hog` on every embedded benchmark with the
   benchmarks cached and its features not (what a fresh `paco-fr run` adds), next to `pixels`.

    python benchmarks/eval_protocols.py [--baseline-tree /tmp/old] [--rounds 2] [--quick]
        [--benchmarks synthetic_landmarks lfw_subset_faces] [--parts lda evaluate hog] [--out FILE]

Run it from a clean checkout (`git archive HEAD | tar -x -C /tmp/new; cd /tmp/new`) so that the
measured tree is exactly a commit; each tree's own params.yaml is used.

Prints a table and writes benchmarks/results/eval_protocols.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "eval_protocols.json"
EMBEDDED = ("synthetic_attributes", "synthetic_expression", "synthetic_landmarks", "synthetic_parsing",
            "synthetic_verification", "lfw_subset_faces")

# One warm evaluate in a fresh process of a given tree; prints its wall time.
_CHILD = """
import json, sys, time
sys.path.insert(0, {tree!r})
from paco_fr.eval.stage import evaluate
sys.path.insert(0, {here!r})
from eval_protocols import eval_and_model_config
eval_cfg, model_cfg, zoom = eval_and_model_config({params!r}, {overrides!r})
t = time.perf_counter()
res = evaluate(eval_cfg, {encoder!r}, {bench!r}, {out!r}, model_cfg=model_cfg, fallback_zoom=zoom)
print(json.dumps({{"s": time.perf_counter() - t, "value": res.primary["value"]}}))
"""


def eval_and_model_config(params: str, overrides: dict):
    """The eval and model sections of a params.yaml (and curation.template_zoom), with eval overrides:
    only what evaluation reads, so that a tree's other sections cannot get in the way."""
    import yaml

    from paco_fr.config import from_dict
    from paco_fr.eval.config import EvalConfig
    from paco_fr.model.config import ModelConfig

    data = yaml.safe_load(Path(params).read_text())
    return (from_dict(EvalConfig, {**data["eval"], **overrides}, "eval"), from_dict(ModelConfig, data["model"], "model"),
            data["curation"]["template_zoom"])


def _full_space_lda_path(x, identity, shrinkages):
    """The previous fit_lda_path: eigh of the (D, D) within-class scatter whatever N is."""
    from paco_fr.eval.probes import Projection

    x = np.asarray(x, dtype=np.float64)
    ids, inverse = np.unique(identity, return_inverse=True)
    d = x.shape[1]
    mean = x.mean(axis=0)
    class_means = np.zeros((len(ids), d))
    np.add.at(class_means, inverse, x)
    counts = np.bincount(inverse).astype(np.float64)
    class_means /= counts[:, None]
    within = x - class_means[inverse]
    sw = within.T @ within / len(x)
    between = (class_means - mean) * np.sqrt(counts / len(x))[:, None]
    sw_evals, sw_evecs = np.linalg.eigh(sw)
    isotropic = np.trace(sw) / d
    n_comp = min(len(ids) - 1, d)
    out = {}
    for shrinkage in shrinkages:
        whiten = sw_evecs / np.sqrt(np.clip((1 - shrinkage) * sw_evals + shrinkage * isotropic, 1e-12, None))
        _, _, vt = np.linalg.svd(between @ whiten, full_matrices=False)
        out[shrinkage] = Projection(mean, whiten @ vt[:n_comp].T)
    return out


def lda_ratio(eval_cfg, model_cfg, zoom: float, cache: str, rounds: int) -> dict:
    from paco_fr.eval import registry
    from paco_fr.eval.data import TRAIN, VAL
    from paco_fr.eval.encoders import resolve_encoder
    from paco_fr.eval.feature_cache import features_for
    from paco_fr.eval.materialise import materialise
    from paco_fr.eval.probes import Standardizer, cosine_pair_scores, fit_lda_path
    from paco_fr.eval.stage import build_context
    from paco_fr.eval.threads import limit_threads

    handle = resolve_encoder("random", model_cfg, seed=eval_cfg.seed)
    data, *_ = materialise(registry.get("synthetic_verification"),
                           build_context(eval_cfg, handle.img_size, zoom, None), cache)
    feats, _ = features_for(handle, data.images, ("cls", "mean", "grid"), batch_size=64, cache_dir=cache)
    fit = np.flatnonzero((data.split == TRAIN) | (data.split == VAL))
    pairs = data.targets["pairs"]
    out = {}
    with limit_threads(eval_cfg.probe_threads):
        for kind in ("cls", "grid"):
            z = Standardizer.fit(feats[kind][fit])(feats[kind])
            times = {"full_space": [], "span": []}
            for _ in range(rounds):
                for name, fn in (("full_space", _full_space_lda_path), ("span", fit_lda_path)):
                    t = time.perf_counter()
                    path = fn(z[fit], data.targets["identity"][fit], tuple(eval_cfg.lda_shrinkage))
                    times[name].append(time.perf_counter() - t)
                    scores = {s: cosine_pair_scores(p(z), pairs) for s, p in path.items()}
                    if name == "full_space":
                        reference = scores
            diff = max(float(np.abs(scores[s] - reference[s]).max()) for s in scores)
            out[kind] = {"dims": int(z.shape[1]), "fit_rows": int(len(fit)),
                         "full_space_s": min(times["full_space"]), "span_s": min(times["span"]),
                         "ratio_span_over_full": min(times["span"]) / min(times["full_space"]),
                         "max_score_difference": diff}
    return out


def _overrides(cache: str, quick: bool) -> dict:
    return {"cache_dir": cache, **({"n_train": 60, "n_val": 20, "n_test": 60} if quick else {})}


def _child(tree: Path, encoder: str, bench: str, cache: str, out: str, quick: bool) -> dict:
    code = _CHILD.format(tree=str(tree), here=str(Path(__file__).resolve().parent), params=str(tree / "params.yaml"),
                         overrides=_overrides(cache, quick), encoder=encoder, bench=bench, out=out)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tree))
    if proc.returncode:
        raise RuntimeError(f"{tree} {encoder} {bench}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evaluate_ratios(baseline: Path, rounds: int, quick: bool, work: Path, benches: tuple[str, ...]) -> dict:
    trees = {"baseline": baseline, "this": ROOT}
    caches = {k: str(work / f"cache-{k}") for k in trees}
    for k, tree in trees.items():  # warm: benchmarks built, features extracted
        for bench in benches:
            _child(tree, "random", bench, caches[k], str(work / f"warm-{k}-{bench}"), quick)
    times = {k: {b: [] for b in benches} for k in trees}
    values = {k: {} for k in trees}
    for r in range(rounds):
        for bench in benches:
            for k in (("baseline", "this") if r % 2 == 0 else ("this", "baseline")):
                res = _child(trees[k], "random", bench, caches[k], str(work / f"r{r}-{k}-{bench}"), quick)
                times[k][bench].append(res["s"])
                values[k][bench] = res["value"]
    rows = {b: {"baseline_s": min(times["baseline"][b]), "this_s": min(times["this"][b]),
                "ratio": min(times["this"][b]) / min(times["baseline"][b]),
                "baseline_value": values["baseline"][b], "this_value": values["this"][b],
                "baseline_all_s": times["baseline"][b], "this_all_s": times["this"][b]} for b in benches}
    total_b = sum(r["baseline_s"] for r in rows.values())
    total_t = sum(r["this_s"] for r in rows.values())
    return {"per_benchmark": rows, "total_baseline_s": total_b, "total_this_s": total_t, "ratio": total_t / total_b}


def hog_row(quick: bool, work: Path) -> dict:
    cache = str(work / "cache-hog")
    for bench in EMBEDDED:  # the benchmarks built (as after the preset's evaluation), hog features not
        _child(ROOT, "pixels", bench, cache, str(work / f"pix-warm-{bench}"), quick)
    rows = {}
    for bench in EMBEDDED:
        hog = _child(ROOT, "hog", bench, cache, str(work / f"hog-{bench}"), quick)
        pix = _child(ROOT, "pixels", bench, cache, str(work / f"pix-{bench}"), quick)
        rows[bench] = {"hog_s": hog["s"], "hog_value": hog["value"], "pixels_s": pix["s"], "pixels_value": pix["value"]}
    return {"per_benchmark": rows, "hog_total_s": sum(r["hog_s"] for r in rows.values()),
            "pixels_total_s": sum(r["pixels_s"] for r in rows.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, default=None, help="a checkout of the code to compare against")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="n_train/val/test = 60/20/60")
    ap.add_argument("--benchmarks", nargs="+", default=list(EMBEDDED), choices=EMBEDDED)
    ap.add_argument("--parts", nargs="+", default=["lda", "evaluate", "hog"], choices=["lda", "evaluate", "hog"],
                    help="what to measure (evaluate needs --baseline-tree)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    load = os.getloadavg()
    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_start": load},
                    "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="eval-protocols-") as tmp:
        work = Path(tmp)
        cache = str(work / "cache-lda")
        eval_cfg, model_cfg, zoom = eval_and_model_config(str(ROOT / "params.yaml"), _overrides(cache, args.quick))
        if "lda" in args.parts:
            result["lda"] = lda_ratio(eval_cfg, model_cfg, zoom, cache, max(args.rounds, 2))
        for kind, r in result.get("lda", {}).items():
            print(f"LDA path, {kind} features ({r['dims']} dims, {r['fit_rows']} rows): full space "
                  f"{r['full_space_s']:.3f} s, span {r['span_s']:.3f} s, ratio {r['ratio_span_over_full']:.3f}, "
                  f"max score difference {r['max_score_difference']:.1e}")
        if "evaluate" in args.parts and args.baseline_tree is not None:
            result["evaluate_warm"] = evaluate_ratios(args.baseline_tree.resolve(), args.rounds, args.quick, work,
                                                      tuple(args.benchmarks))
            print(f"\n{'benchmark':24s} {'baseline s':>10s} {'this s':>8s} {'ratio':>6s}  values (baseline, this)")
            for b, r in result["evaluate_warm"]["per_benchmark"].items():
                print(f"{b:24s} {r['baseline_s']:10.2f} {r['this_s']:8.2f} {r['ratio']:6.2f}  "
                      f"{r['baseline_value']:.4f}, {r['this_value']:.4f}")
            e = result["evaluate_warm"]
            print(f"{'all':24s} {e['total_baseline_s']:10.2f} {e['total_this_s']:8.2f} {e['ratio']:6.2f}")
        if "hog" not in args.parts:
            return _write(result, load, args.out)
        result["hog_row"] = hog_row(args.quick, work)
        print(f"\n{'benchmark':24s} {'hog s (cold features)':>22s} {'pixels s':>9s}  values (hog, pixels)")
        for b, r in result["hog_row"]["per_benchmark"].items():
            print(f"{b:24s} {r['hog_s']:22.2f} {r['pixels_s']:9.2f}  {r['hog_value']:.4f}, {r['pixels_value']:.4f}")
        h = result["hog_row"]
        print(f"{'all six':24s} {h['hog_total_s']:22.2f} {h['pixels_total_s']:9.2f}")
    return _write(result, load, args.out)


def _write(result: dict, load: tuple, out: Path) -> int:
    result["machine"]["load_avg_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nload average {load[0]:.2f} -> {result['machine']['load_avg_end'][0]:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
