"""The `evaluate` stage: one encoder on one benchmark -> a report folder.

    evaluate(cfg.eval, "data/encoders/paco_fr", "synthetic_landmarks", "data/reports/paco_fr/synthetic_landmarks",
             model_cfg=cfg.model)

Steps: resolve the encoder, materialise the benchmark (cached) at the encoder's crop size, extract
the features the task needs once, run the protocol (hyperparameters on val), score test with
bootstrap intervals, write report.json, report.md and plots. The report folder is written
atomically (a temporary folder renamed into place).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paco_fr.config import to_dict
from paco_fr.eval import protocols, registry, scoring
from paco_fr.eval.build import BuildContext
from paco_fr.eval.config import EvalConfig
from paco_fr.eval.encoders import EncoderHandle, resolve_encoder
from paco_fr.eval.feature_cache import features_for
from paco_fr.eval.materialise import materialise
from paco_fr.eval.threads import limit_threads
from paco_fr.eval.report import REPORT_JSON, REPORT_MD, write_plots, write_report
from paco_fr.eval.paired import save_items
from paco_fr.io import atomic_dir

DEFAULT_ZOOM = 0.8


@dataclass
class EvalResult:
    out_dir: Path
    report_json: Path
    report_md: Path
    plots: list[Path]
    benchmark: str
    encoder_label: str
    primary_metric: str
    metrics: dict[str, dict[str, Any]]
    data_version: str
    benchmark_cache: Path
    encoder_dir: Path | None
    wall_time_s: float
    run: dict[str, Any] = field(default_factory=dict)  # timing and cache use: facts of this run

    @property
    def primary(self) -> dict[str, Any]:
        return self.metrics[self.primary_metric]


# Settings that decide where and how fast a report is made, not what it says: left out of the
# report (and of the DVC stage's params) so that changing them neither changes its bytes nor re-runs it.
RUN_ONLY_KEYS = ("benchmarks", "cache_dir", "feature_cache", "probe_threads", "batch_size", "data_root")


def protocol_settings(cfg: EvalConfig) -> protocols.ProtocolSettings:
    return protocols.ProtocolSettings(
        protocol=cfg.protocol, l2_grid=tuple(cfg.l2_grid), ridge_grid=tuple(cfg.ridge_grid),
        knn_k=tuple(cfg.knn_k), lda_shrinkage=tuple(cfg.lda_shrinkage), parsing_subgrid=cfg.parsing_subgrid,
        finetune_epochs=cfg.finetune_epochs, finetune_lr=cfg.finetune_lr,
        finetune_encoder_lr=cfg.finetune_encoder_lr, finetune_batch_size=cfg.finetune_batch_size, seed=cfg.seed)


def resolve_zoom(cfg: EvalConfig, handle: EncoderHandle, fallback_zoom: float | None) -> tuple[float, str]:
    """The crop zoom of the benchmark faces, with where it came from: eval.template_zoom, else the
    encoder card's config.curation.template_zoom, else `fallback_zoom` (the CLI passes params
    curation.template_zoom), else 0.8."""
    if cfg.template_zoom is not None:
        return float(cfg.template_zoom), "eval.template_zoom"
    card_zoom = ((handle.card.get("config") or {}).get("curation") or {}).get("template_zoom")
    if card_zoom is not None:
        return float(card_zoom), "encoder model card"
    if fallback_zoom is not None:
        return float(fallback_zoom), "curation.template_zoom"
    return DEFAULT_ZOOM, "default"


def encoder_identity(handle: EncoderHandle) -> dict[str, Any]:
    """Who made the features, explicitly (compare groups reports by preset and treats seeds as
    repeats; folder names are not relied on): ``name`` (the encoder folder's name, or the baseline),
    ``preset`` (the model card's, else the folder name; the baseline's name), ``seed`` (the card's
    config.seed, the pre-training seed; random init's seed; None for the deterministic pixels and
    hog baselines), ``kind`` (vit, pixels, hog)."""
    card = handle.card
    if handle.source_dir is not None:
        name = Path(handle.source_dir).name
        return {"name": name, "preset": card.get("preset") or name, "seed": (card.get("config") or {}).get("seed"),
                "kind": handle.kind}
    seed = (card.get("random_init") or {}).get("seed")
    return {"name": handle.label, "preset": handle.label, "seed": seed, "kind": handle.kind}


def build_context(cfg: EvalConfig, crop_size: int, zoom: float, data_root: str | None) -> BuildContext:
    return BuildContext(crop_size=crop_size, zoom=zoom, n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test,
                        seed=cfg.seed, data_root=data_root or cfg.data_root, real_subsample=cfg.real_subsample,
                        verification_images_per_identity=cfg.verification_images_per_identity,
                        landmark_jitter=tuple(cfg.landmark_jitter),  # type: ignore[arg-type]
                        cache_dir=cfg.cache_dir)


def evaluate(cfg: EvalConfig, encoder: str, benchmark: str, out_dir: str | os.PathLike[str], *,
             data_root: str | None = None, model_cfg: Any | None = None,
             fallback_zoom: float | None = None) -> EvalResult:
    """Evaluate `encoder` (a directory, `random`, `random:DIR` or `pixels`) on `benchmark`; see
    :func:`resolve_zoom` for `fallback_zoom`."""
    t_start = time.perf_counter()
    bench = registry.get(benchmark)
    handle = resolve_encoder(encoder, model_cfg, seed=cfg.seed)
    zoom, zoom_source = resolve_zoom(cfg, handle, fallback_zoom)
    ctx = build_context(cfg, handle.img_size, zoom, data_root)

    t0 = time.perf_counter()
    data, version, cache, from_cache = materialise(bench, ctx, cfg.cache_dir)
    t_materialise = time.perf_counter() - t0

    t0 = time.perf_counter()
    kinds = protocols.feature_kinds(data.task, cfg.protocol)
    features, features_cached = features_for(handle, data.images, kinds, batch_size=cfg.batch_size,
                                             cache_dir=cfg.cache_dir if cfg.feature_cache else None,
                                             desc=f"{handle.label} features {benchmark}", device=cfg.device)
    t_features = time.perf_counter() - t0

    settings = protocol_settings(cfg)
    # Training the encoder itself is big work: leave its threads alone.
    trains_encoder = cfg.protocol == "finetune" and cfg.finetune_encoder_lr > 0
    with limit_threads(0 if trains_encoder else cfg.probe_threads):
        t0 = time.perf_counter()
        output = protocols.run(data, features, settings, patch_size=handle.patch_size, encoder=handle.model)
        t_protocol = time.perf_counter() - t0
        del features
        t0 = time.perf_counter()
        scores = scoring.score(data, output, n_resamples=cfg.bootstrap, seed=cfg.seed, protocol=bench.protocol)
        t_scoring = time.perf_counter() - t0

    out_dir = Path(out_dir)
    title = f"{benchmark} - {handle.label} ({output.protocol['name']}; {bench.protocol.key})"
    with atomic_dir(out_dir) as tmp:
        plot_names = write_plots(tmp, data, output, scores, title)
        report = {
            "benchmark": benchmark,
            "task": data.task,
            "synthetic": bench.synthetic,
            "paper_name": bench.paper_name,
            "description": bench.description,
            "encoder_label": handle.label,
            "encoder_spec": encoder,
            "encoder": encoder_identity(handle),
            "model_card": handle.card,
            "benchmark_protocol": {**bench.protocol.as_dict(), "full_test_split": data.meta.get("full_test_split")},
            "protocol": output.protocol,
            "primary_metric": scores.primary,
            "higher_is_better": scores.higher_is_better,
            "metrics": scores.metrics_dict(),
            "details": {k: v for k, v in scores.details.items() if k != "nme_per_image"},
            "data_version": version,
            "data": {"counts": data.counts(), "crop_size": data.crop_size,
                     "zoom": zoom, "zoom_source": zoom_source,
                     "meta": {k: v for k, v in data.meta.items()
                              # where the dataset sits is a fact of this run, not of the report
                              if k != "files" and not (k == "source" and os.path.isabs(str(v)))}},
            "eval_config": {k: v for k, v in to_dict(cfg).items() if k not in RUN_ONLY_KEYS},
            "plots": plot_names,
        }
        write_report(tmp, report)
        save_items(tmp, scores.items)
    return EvalResult(
        out_dir=out_dir, report_json=out_dir / REPORT_JSON, report_md=out_dir / REPORT_MD,
        plots=[out_dir / p for p in plot_names], benchmark=benchmark, encoder_label=handle.label,
        primary_metric=scores.primary, metrics=report["metrics"], data_version=version, benchmark_cache=cache,
        encoder_dir=Path(handle.source_dir) if handle.source_dir else None,
        wall_time_s=time.perf_counter() - t_start,
        run={"timing": {"materialise_s": round(t_materialise, 3), "from_cache": from_cache,
                        "features_s": round(t_features, 3), "features_from_cache": features_cached,
                        "protocol_s": round(t_protocol, 3), "scoring_s": round(t_scoring, 3),
                        "total_s": round(time.perf_counter() - t_start, 3)},
             "benchmark_cache": str(cache), "data_source": data.meta.get("source")})
