"""The pre-training loop: one function that runs in every process of a (torchrun) launch.

Rank 0 alone writes files. Everything that decides the next weights (model and optimizer state,
step, RNG states) is in the checkpoint, and the data stream is a pure function of (seed, epoch,
position), so a run resumed from a checkpoint continues exactly where the interrupted one was.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from paco_fr.config import ConfigError
from paco_fr.io import remove_stale_temporaries_under
from paco_fr.model.config import ModelConfig
from paco_fr.model.paco import PaCoFR
from paco_fr.train.augment import AugmentParams
from paco_fr.train.checkpoint import (LAST, capture_rng, load_checkpoint, remove_partial_checkpoints,
                                     restore_rng, save_checkpoint)
from paco_fr.train.config import TrainConfig
from paco_fr.train.data import FaceRegionStream, StreamSpec, make_loader, read_split
from paco_fr.train.distributed import DistContext, all_reduce_mean, barrier, setup_distributed, teardown
from paco_fr.train.optim import build_optimizer, lr_at, set_lr
from paco_fr.train.tracking import (METRICS_FILE, PROGRESS_FILE, MetricsLog, ProgressLog, WandbRun, reconstruction_grid,
                                   save_png)

# The run's output while it trains, inside its run folder (published to the stage's output at the end).
WORK_DIR = "output"
# Per-step history kept for the run summary (first/last-window averages).
HISTORY_KEYS = ("loss", "rec", "tok", "tok_acc", "tok_chance", "perplexity")


@dataclass
class TrainOutcome:
    out_dir: Path                         # where the run wrote its output (RUN_DIR/output), to publish
    model: PaCoFR                         # unwrapped, on the training device
    step: int
    total_steps: int
    steps_per_epoch: int
    incubation_steps: int
    history: dict[str, list[float]]       # per-step values of HISTORY_KEYS
    last_metrics: dict[str, float]        # the last logged record
    val_metrics: dict[str, float]
    wall_time_s: float
    is_main: bool
    world_size: int
    resumed_from: int | None = None
    images_per_s: float = 0.0
    run_dir: Path | None = None           # checkpoints, progress.jsonl, wandb: facts of the run


def build_model(model_cfg: ModelConfig, seed: int) -> PaCoFR:
    torch.manual_seed(seed)
    return PaCoFR(model_cfg)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _unwrap(model: nn.Module) -> PaCoFR:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model  # type: ignore[return-value]


def train(
    cfg: Any,  # paco_fr.config.ProjectConfig (not imported: the loop runs without the data stack)
    corpus_dir: str | os.PathLike[str],
    regions_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> TrainOutcome:
    """Train the encoder that `out_dir` will hold. The run works in `run_dir` (default runs/<out_dir>):
    its output so far (RUN_DIR/output: metrics.jsonl, sample images), checkpoints, progress.jsonl
    (throughput, ETA) and the wandb run, so a killed run resumes from there whatever happened to
    `out_dir` (DVC deletes a stage's outputs before it runs); the stage publishes RUN_DIR/output into
    `out_dir` when the run is complete (paco_fr.train.stage)."""
    ctx = setup_distributed(device)
    run_path = Path(run_dir) if run_dir is not None else default_run_dir(out_dir)
    try:
        return _train(cfg, Path(corpus_dir), Path(regions_dir), Path(out_dir), resume, progress, ctx, run_path)
    finally:
        teardown(ctx)


def default_run_dir(out_dir: str | os.PathLike[str]) -> Path:
    """<repo>/runs/<out_dir relative to the repo> inside a repository (git-ignored, one run folder per
    artifact path; $PACO_FR_RUNS_DIR moves it), else the sibling folder <out_dir>.run."""
    from paco_fr.lineage import find_repo_root

    out = Path(out_dir).resolve()
    root = find_repo_root(out.parent)
    if root is not None and out.is_relative_to(root):
        return Path(os.environ.get("PACO_FR_RUNS_DIR", root / "runs")) / out.relative_to(root)
    return out.with_name(out.name + ".run")


def _train(cfg: Any, corpus_dir: Path, regions_dir: Path, out_dir: Path, resume: bool, progress: bool,
           ctx: DistContext, run_dir: Path) -> TrainOutcome:
    started = time.perf_counter()
    tcfg: TrainConfig = cfg.train
    mcfg: ModelConfig = cfg.model
    if tcfg.incubation_epochs and mcfg.codebook == "off":
        raise ConfigError("train.incubation_epochs > 0 trains the codebook alone first, but model.codebook is off;"
                         " set train.incubation_epochs=0")
    if tcfg.batch_size % ctx.world_size:
        raise ConfigError(f"train.batch_size {tcfg.batch_size} does not split over {ctx.world_size} processes")
    rank_batch = tcfg.batch_size // ctx.world_size

    faces = read_split(corpus_dir, "train")
    if not faces:
        raise ValueError(f"the corpus at {corpus_dir} has no faces in its train split")
    spec = StreamSpec(
        corpus_dir=str(corpus_dir), regions_dir=str(regions_dir), faces=faces, img_size=mcfg.img_size,
        patch_size=mcfg.patch_size, batch_size=rank_batch, seed=cfg.seed, mask_strategy=cfg.masking.strategy,
        mask_ratio=cfg.masking.ratio, replace_ratio=mcfg.replace_ratio,
        augment=AugmentParams(tcfg.hflip, tcfg.scale_jitter, tcfg.translate_jitter, tcfg.color_jitter),
        shuffle=True, drop_last=True, rank=ctx.rank, world_size=ctx.world_size, groups=tcfg.loader_groups,
        streams=tcfg.loader_streams or max(1, tcfg.num_workers), shuffle_buffer=tcfg.shuffle_buffer,
        interleave=tcfg.interleave_shards)
    steps_per_epoch = spec.batches_per_epoch // tcfg.grad_accum
    if steps_per_epoch == 0:
        raise ConfigError(f"one epoch of {len(faces)} faces has fewer than grad_accum={tcfg.grad_accum} batches of "
                         f"{tcfg.batch_size}; lower train.batch_size or train.grad_accum")
    total_steps = tcfg.epochs * steps_per_epoch
    if tcfg.max_steps:
        total_steps = min(total_steps, tcfg.max_steps) if tcfg.epochs else tcfg.max_steps
    incubation_steps = min(tcfg.incubation_epochs * steps_per_epoch, total_steps)
    # Batches used per epoch: whole accumulation cycles only, so an epoch never splits a step.
    batches_per_epoch = steps_per_epoch * tcfg.grad_accum

    model = build_model(mcfg, cfg.seed).to(ctx.device)
    optimizer = build_optimizer(model, tcfg.lr, tcfg.weight_decay, tcfg.betas, ctx.device)
    ckpt_path = run_dir / "checkpoints" / LAST
    work_dir = run_dir / WORK_DIR
    step = 0
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    wandb_id: str | None = None
    resumed_from: int | None = None
    elapsed_before = 0.0
    fingerprint = run_fingerprint(cfg, corpus_dir, regions_dir, ctx.world_size, (spec.groups, spec.streams))
    state = _compatible_checkpoint(ckpt_path, fingerprint, ctx) if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"])
        step = int(state["step"])
        history = {k: list(v) for k, v in state["history"].items()}
        wandb_id = state.get("wandb_id")
        elapsed_before = float(state.get("wall_time_s", 0.0))
        resumed_from = step

    if tcfg.compile:
        model.encoder.vit.blocks.compile()
        model.decoder.blocks.compile()
    train_model: nn.Module = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            # Incubation leaves the encoder and decoder without gradients.
            find_unused_parameters=incubation_steps > step, broadcast_buffers=False)

    metrics_log: MetricsLog | None = None
    progress_log: ProgressLog | None = None
    wandb_run: WandbRun | None = None
    if ctx.is_main:
        if resumed_from is None:  # a fresh run: nothing of an earlier one may end up in the artifact
            shutil.rmtree(work_dir, ignore_errors=True)
        else:  # a kill during a save left its temporary (e.g. images/.step_000008.png.x.tmp) in the output
            remove_stale_temporaries_under(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        metrics_log = MetricsLog(work_dir / METRICS_FILE, resume_step=step if resumed_from is not None else None)
        progress_log = ProgressLog(run_dir / PROGRESS_FILE, total_steps=total_steps)
        from paco_fr.config import to_dict

        wandb_run = WandbRun(run_dir, to_dict(cfg), wandb_id)
    barrier(ctx)

    dataset = FaceRegionStream(spec, start_epoch=step // steps_per_epoch,
                               start_batch=(step % steps_per_epoch) * tcfg.grad_accum,
                               batches_per_epoch=batches_per_epoch)
    batches = iter(make_loader(dataset, tcfg.num_workers, cfg.seed))

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=step, desc="pretrain", unit="step", dynamic_ncols=True,
               disable=not (progress and ctx.is_main))
    window: list[dict[str, torch.Tensor]] = []
    last_record: dict[str, float] = {}
    window_start = time.perf_counter()
    window_images = 0
    images_per_s = 0.0
    try:
        while step < total_steps:
            incubating = step < incubation_steps
            lr, codebook_lr = schedule_lr(step, tcfg, incubation_steps, total_steps)
            set_lr(optimizer, lr, codebook_lr)
            train_model.train()
            step_terms: dict[str, torch.Tensor] = {}
            for micro in range(tcfg.grad_accum):
                batch = _to_device(next(batches), ctx.device)
                sync = micro == tcfg.grad_accum - 1 or not ctx.distributed
                with (contextlib.nullcontext() if sync else train_model.no_sync()):  # type: ignore[operator]
                    with _autocast(ctx.device):
                        out = train_model(batch, incubation=incubating)
                    (out.loss / tcfg.grad_accum).backward()
                for key, value in out.terms.items():
                    step_terms[key] = step_terms.get(key, 0.0) + value.float() / tcfg.grad_accum
            params = [p for p in model.parameters() if p.grad is not None]
            if tcfg.clip_grad > 0 and params:
                step_terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, tcfg.clip_grad).detach().float()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            codebook = model.codebook
            if codebook is not None:
                if mcfg.restart_every and step % mcfg.restart_every == 0 and out.embeddings is not None:
                    codebook.restart_dead_codes(out.embeddings)
                step_terms["dead_codes"] = codebook.dead_codes().sum().float()
                step_terms["code_restarts"] = codebook.restarts.float()
            step_terms["incubation"] = torch.full((), float(incubating), device=ctx.device)
            window.append(step_terms)
            window_images += tcfg.batch_size * tcfg.grad_accum
            bar.update(1)

            checkpoint_now = step % tcfg.checkpoint_every == 0 or step == total_steps
            if step % tcfg.log_every == 0 or checkpoint_now:
                per_step = _reduce_window(window, ctx)
                window = []
                for row in per_step:
                    for key in HISTORY_KEYS:
                        if key in row:
                            history[key].append(row[key])
                now = time.perf_counter()
                images_per_s = window_images / max(now - window_start, 1e-9)
                window_start, window_images = now, 0
                record = {"step": step, "epoch": (step - 1) // steps_per_epoch, "split": "train", "lr": lr,
                          "codebook_lr": codebook_lr,
                          **{k: float(np.mean([r[k] for r in per_step if k in r])) for k in per_step[-1]}}
                record["incubation"] = bool(per_step[-1].get("incubation", 0.0))
                last_record = record
                if metrics_log is not None:
                    metrics_log.write(record)
                if progress_log is not None:
                    progress_log.write(step, record, images_per_s)
                if wandb_run is not None:
                    wandb_run.log({**{f"train/{k}": v for k, v in record.items() if k not in ("step", "split")},
                                   "train/images_per_s": images_per_s}, step)
                bar.set_postfix(loss=f"{record['loss']:.3f}", rec=f"{record.get('rec', float('nan')):.3f}",
                                img_s=f"{images_per_s:.0f}")
            if ctx.is_main and out.pred is not None and (step % tcfg.image_every == 0 or step == total_steps):
                grid = reconstruction_grid(batch["images"], batch["mask"], batch.get("replaced"), out.pred,
                                           mcfg.patch_size, mcfg.norm_pix_loss, tcfg.image_rows)
                save_png(grid, work_dir / "images" / f"step_{step:06d}.png")
                save_png(grid, work_dir / "reconstructions.png")
                if wandb_run is not None:
                    wandb_run.log_image("reconstructions", grid, step, "original | input | reconstruction")
            if checkpoint_now:
                if ctx.is_main:
                    save_checkpoint(ckpt_path, {
                        "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": capture_rng(), "history": history, "model_config": _plain(mcfg),
                        "world_size": ctx.world_size, "batch_size": tcfg.batch_size,
                        "data_layout": [spec.groups, spec.streams],
                        "wandb_id": wandb_run.run_id if wandb_run is not None else None, "fingerprint": fingerprint,
                        "wall_time_s": elapsed_before + time.perf_counter() - started,
                    })
                barrier(ctx)
    finally:
        bar.close()
        if metrics_log is not None:
            metrics_log.close()
        if progress_log is not None:
            progress_log.close()

    val_metrics = evaluate(model, cfg, corpus_dir, regions_dir, ctx)
    if wandb_run is not None:
        if val_metrics:
            wandb_run.log({f"val/{k}": v for k, v in val_metrics.items()}, step)
        wandb_run.finish()
    if ctx.is_main and val_metrics:
        with open(work_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            import json

            handle.write(json.dumps({"step": step, "split": "val", **val_metrics}) + "\n")
    return TrainOutcome(out_dir=work_dir, model=model, step=step, total_steps=total_steps,
                        steps_per_epoch=steps_per_epoch, incubation_steps=incubation_steps, history=history,
                        last_metrics=last_record, val_metrics=val_metrics,
                        wall_time_s=elapsed_before + time.perf_counter() - started, is_main=ctx.is_main,
                        world_size=ctx.world_size, resumed_from=resumed_from, images_per_s=images_per_s,
                        run_dir=run_dir)


# Settings that change neither the weights nor the files of a run (the stream is the same with any
# number of loader workers), so a checkpoint written under other values still continues the same run.
RESUME_NEUTRAL = ("num_workers",)


def run_fingerprint(cfg: Any, corpus_dir: Path, regions_dir: Path, world_size: int,
                    data_layout: tuple[int, int]) -> str:
    """What a checkpoint must share with this run to be continued by it: the configuration that
    decides the weights and outputs, the data versions (manifest and region summary bytes), the process
    count and the data layout actually used (loader groups x streams, which 0 settings derive from the
    number of ranks and workers)."""
    import hashlib
    import json

    from paco_fr.config import to_dict

    train_cfg = {k: v for k, v in to_dict(cfg.train).items() if k not in RESUME_NEUTRAL}
    digest = hashlib.sha256(json.dumps({"seed": cfg.seed, "masking": to_dict(cfg.masking), "model": to_dict(cfg.model),
                                        "train": train_cfg, "world_size": world_size,
                                        "data_layout": list(data_layout)}, sort_keys=True).encode())
    for data_file in (corpus_dir / "manifest.parquet", regions_dir / "regions_summary.json"):
        if data_file.exists():
            digest.update(data_file.read_bytes())
    return digest.hexdigest()


def _compatible_checkpoint(path: Path, fingerprint: str, ctx: DistContext) -> dict[str, Any] | None:
    """The checkpoint at `path` when it continues this run; None (start at step 0) when there is none
    or it belongs to another configuration, data version or process layout, said on stderr."""
    if ctx.is_main:
        remove_partial_checkpoints(path.parent)
    barrier(ctx)
    if not path.exists():
        return None
    state = load_checkpoint(path, map_location=ctx.device)
    if state.get("fingerprint") != fingerprint:
        if ctx.is_main:
            print(f"pretrain: {path} was written by a run with another configuration, data version or "
                  "process count; starting from step 0", file=sys.stderr, flush=True)
        return None
    if ctx.is_main:
        print(f"pretrain: resuming from step {int(state['step'])} ({path})", file=sys.stderr, flush=True)
    return state


def schedule_lr(step: int, tcfg: TrainConfig, incubation_steps: int, total_steps: int) -> tuple[float, float]:
    """(model rate, codebook rate) at `step`.

    Incubation: the codebook warms up to the base rate and holds it. Main phase: the model (encoder,
    decoder, heads) has its own warmup, since it starts from scratch there, then a cosine decay to
    min_lr at the last step; the codebook, already trained, continues without a second warmup on a
    cosine from `codebook_lr_scale` x the base rate."""
    if step < incubation_steps:
        lr = lr_at(step, base_lr=tcfg.lr, min_lr=tcfg.lr, warmup_steps=min(tcfg.warmup_steps, incubation_steps),
                   total_steps=incubation_steps)
        return lr, lr
    main_step, main_total = step - incubation_steps, total_steps - incubation_steps
    model_lr = lr_at(main_step, base_lr=tcfg.lr, min_lr=tcfg.min_lr, warmup_steps=tcfg.warmup_steps,
                     total_steps=main_total)
    warmup = tcfg.warmup_steps if incubation_steps == 0 else 0
    codebook_lr = tcfg.codebook_lr_scale * lr_at(main_step, base_lr=tcfg.lr, min_lr=tcfg.min_lr,
                                                 warmup_steps=warmup, total_steps=main_total)
    return model_lr, codebook_lr


def _reduce_window(window: list[dict[str, torch.Tensor]], ctx: DistContext) -> list[dict[str, float]]:
    """Per-step scalars of the window, averaged over ranks, with one device sync."""
    keys = sorted({k for row in window for k in row})
    table = torch.stack([torch.stack([row.get(k, torch.tensor(float("nan"), device=ctx.device)).float().reshape(())
                                      for k in keys]) for row in window])  # [steps, keys]
    table = all_reduce_mean(table, ctx).cpu()
    out = []
    for values in table.tolist():
        out.append({k: v for k, v in zip(keys, values) if not math.isnan(v)})
    return out


def _plain(mcfg: ModelConfig) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(mcfg)


@torch.no_grad()
def evaluate(model: PaCoFR, cfg: Any, corpus_dir: Path, regions_dir: Path, ctx: DistContext) -> dict[str, float]:
    """Mean loss terms over up to `train.val_batches` batches of the val split (no augmentation,
    fixed masks); {} when there is no val split or val_batches is 0."""
    tcfg: TrainConfig = cfg.train
    if not tcfg.val_batches:
        return {}
    faces = read_split(corpus_dir, "val")
    per_rank = len(faces) // ctx.world_size
    if per_rank == 0:
        return {}
    spec = StreamSpec(
        corpus_dir=str(corpus_dir), regions_dir=str(regions_dir), faces=faces, img_size=cfg.model.img_size,
        patch_size=cfg.model.patch_size, batch_size=min(tcfg.batch_size // ctx.world_size, per_rank),
        seed=cfg.seed + 1, mask_strategy=cfg.masking.strategy, mask_ratio=cfg.masking.ratio,
        replace_ratio=cfg.model.replace_ratio, augment=None, shuffle=False, drop_last=False,
        rank=ctx.rank, world_size=ctx.world_size)
    n_batches = min(tcfg.val_batches, spec.batches_per_epoch)
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for i, batch in enumerate(FaceRegionStream(spec, epochs=1)):
        if i >= n_batches:
            break
        with _autocast(ctx.device):
            out = model(_to_device(batch, ctx.device))
        for k, v in out.terms.items():
            sums[k] = sums.get(k, 0.0) + v.float()
    keys = sorted(sums)
    values = all_reduce_mean(torch.stack([sums[k] / n_batches for k in keys]), ctx).cpu().tolist()
    model.train()
    return dict(zip(keys, values))
