"""The `pretrain` stage: PaCo-FR pre-training of a face encoder on a curated corpus and its regions.

Output layout (docs/architecture.md): checkpoints/last.pt, encoder.safetensors, model_card.json,
metrics.jsonl, loss_curve.png, reconstructions.png, images/, wandb/. Under torchrun every process
trains and rank 0 alone writes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paco_fr.io import atomic_dir
from paco_fr.model.export import CARD_FILE, ENCODER_FILE, save_encoder
from paco_fr.train.loop import TrainOutcome, train
from paco_fr.train.tracking import METRICS_FILE, plot_loss_curve, read_metrics

# Summary windows for the model card: how the run started and how it ended.
SUMMARY_WINDOW = 20


@dataclass
class PretrainResult:
    out_dir: Path
    encoder_path: Path
    model_card_path: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)   # facts of this run, for the lineage record
    model: Any = None                                    # the trained PaCoFR module (every part, not only the encoder)


def pretrain(cfg: Any, corpus_dir: str | os.PathLike[str], regions_dir: str | os.PathLike[str],
             out_dir: str | os.PathLike[str], *, resume: bool = False, progress: bool = True,
             device: str | None = None, run_dir: str | os.PathLike[str] | None = None) -> PretrainResult:
    """Pre-train per `cfg` (a paco_fr.config.ProjectConfig) and write the encoder and its model card.
    Everything written under `out_dir` is a function of the inputs and the configuration; facts of
    the run (time, throughput, resume point, checkpoints, wandb) are in `run` / `run_dir`."""
    corpus_dir, regions_dir, out_dir = Path(corpus_dir), Path(regions_dir), Path(out_dir)
    for what, path in (("corpus", corpus_dir), ("regions", regions_dir)):
        if not path.is_dir():
            raise FileNotFoundError(f"{what} directory {path} does not exist")
    outcome = train(cfg, corpus_dir, regions_dir, out_dir, resume=resume, progress=progress, device=device,
                    run_dir=run_dir)
    metrics = summarise(outcome, cfg)
    if outcome.is_main:
        work = outcome.out_dir
        card = model_card(cfg, outcome, corpus_dir, regions_dir, metrics)
        model = outcome.model
        save_encoder(model.encoder.vit, work / ENCODER_FILE, name=cfg.model.encoder, img_size=cfg.model.img_size,
                     patch_size=cfg.model.patch_size, card=card)
        plot_loss_curve(read_metrics(work / METRICS_FILE), work / "loss_curve.png")
        publish(work, out_dir)
        if outcome.run_dir is not None:
            # The run is complete: its checkpoint would only make a forced re-run skip the training
            # (and take disk space the size of the model and optimizer state).
            shutil.rmtree(outcome.run_dir / "checkpoints", ignore_errors=True)
    encoder_path, card_path = out_dir / ENCODER_FILE, out_dir / CARD_FILE
    run = {"wall_time_s": round(outcome.wall_time_s, 1), "images_per_s": round(outcome.images_per_s, 1),
           "resumed_from_step": outcome.resumed_from, "world_size": outcome.world_size,
           "run_dir": str(outcome.run_dir) if outcome.run_dir is not None else None}
    return PretrainResult(out_dir=out_dir, encoder_path=encoder_path, model_card_path=card_path, metrics=metrics,
                          run=run, model=outcome.model)


def publish(work: Path, out_dir: Path) -> None:
    """Move the finished run's output into `out_dir` in one rename (a reader never sees half of it)."""
    with atomic_dir(out_dir) as tmp:
        shutil.rmtree(tmp)
        shutil.move(str(work), str(tmp))  # a rename on one filesystem, a copy across two


def summarise(outcome: TrainOutcome, cfg: Any) -> dict[str, Any]:
    """Final metrics: the last logged values, start/end averages of the reconstruction loss and
    codebook health against the run's targets, and the val split's losses."""
    h = outcome.history
    out: dict[str, Any] = {"steps": outcome.step, "steps_per_epoch": outcome.steps_per_epoch,
                           "incubation_steps": outcome.incubation_steps}
    out["final"] = {k: v for k, v in outcome.last_metrics.items() if k not in ("step", "split")}
    rec = h.get("rec", [])
    if rec:
        first = float(np.mean(rec[:SUMMARY_WINDOW]))
        last = float(np.mean(rec[-SUMMARY_WINDOW:]))
        out.update(rec_first20=first, rec_last20=last, rec_drop=1.0 - last / first if first else None)
    if h.get("perplexity"):
        k = cfg.model.codebook_size
        perplexity = float(np.mean(h["perplexity"][-SUMMARY_WINDOW:]))
        out.update(codebook_size=k, perplexity_last20=perplexity, perplexity_over_k=perplexity / k)
    if h.get("tok_acc"):
        acc = float(np.mean(h["tok_acc"][-SUMMARY_WINDOW:]))
        chance = float(np.mean(h["tok_chance"][-SUMMARY_WINDOW:]))
        out.update(tok_acc_last20=acc, tok_chance_last20=chance, tok_acc_over_chance=acc / chance if chance else None)
    if outcome.val_metrics:
        out["val"] = outcome.val_metrics
    return out


def model_card(cfg: Any, outcome: TrainOutcome, corpus_dir: Path, regions_dir: Path,
               metrics: dict[str, Any]) -> dict[str, Any]:
    from paco_fr.config import to_dict
    from paco_fr.lineage import content_hash

    manifest = corpus_dir / "manifest.parquet"
    presets = [a.split("=", 1)[1] for a in cfg.applied if a.startswith("preset=")]
    model = outcome.model
    return {
        "encoder": {"name": cfg.model.encoder, "img_size": cfg.model.img_size, "patch_size": cfg.model.patch_size,
                    "embed_dim": model.encoder.embed_dim},
        "method": "paco_fr" if cfg.model.codebook != "off" else "mae",
        "preset": presets[-1] if presets else None,
        "overrides": [a for a in cfg.applied if not a.startswith("preset=")],
        "config": {k: to_dict(getattr(cfg, k)) for k in ("seed", "masking", "model", "train")},
        # Versions, not paths: where the data sat is a fact of the run (in the lineage record).
        "data": {"corpus_manifest_md5": content_hash(manifest), "split": "train"},
        "metrics": metrics,
    }

