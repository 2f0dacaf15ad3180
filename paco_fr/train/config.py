"""Configuration of pre-training (section `train`). Imports nothing beyond the standard library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    epochs: int = 30
    max_steps: int = 0  # > 0 caps the run regardless of epochs
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 1.5e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    clip_grad: float = 1.0
    incubation_epochs: int = 1
    num_workers: int = 1
    compile: bool = False
    log_every: int = 10
    image_every: int = 100
    checkpoint_every: int = 100
    hflip: float = 0.5
    scale_jitter: float = 0.05
    translate_jitter: float = 0.05
    color_jitter: float = 0.2
    wandb_mode: str = "offline"
    wandb_project: str = "paco-fr"
