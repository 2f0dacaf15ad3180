"""Configuration of pre-training (section `train`). Imports nothing beyond the standard library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    epochs: int = 18
    max_steps: int = 0  # > 0 caps the run regardless of epochs
    batch_size: int = 64  # global: split evenly over DDP ranks
    grad_accum: int = 1
    lr: float = 1.5e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    clip_grad: float = 1.0  # 0 disables clipping
    # Learning-rate factor of the codebook, belief predictor and code-to-pixel head after incubation.
    codebook_lr_scale: float = 1.0
    incubation_epochs: int = 1
    num_workers: int = 1
    # Shard groups (0: one per DDP rank) and streams per group (0: one per DataLoader worker): each
    # stream reads its own shards. The data order depends on these, not on the number of ranks or
    # workers: set them (multiples of those) to resume or compare runs on another layout.
    loader_groups: int = 0
    loader_streams: int = 0
    # Faces a stream holds (compressed) to shuffle them, and shards it reads at once.
    shuffle_buffer: int = 1000
    interleave_shards: int = 4
    compile: bool = False
    log_every: int = 10
    image_every: int = 100
    checkpoint_every: int = 100
    hflip: float = 0.5
    scale_jitter: float = 0.05
    translate_jitter: float = 0.05
    color_jitter: float = 0.2
    # Faces shown in the original / masked / reconstructed grid.
    image_rows: int = 8
    # Batches of the val split scored at the end of the run (0: none).
    val_batches: int = 4

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "log_every", "image_every", "checkpoint_every", "shuffle_buffer",
                     "interleave_shards"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("epochs", "max_steps", "warmup_steps", "incubation_epochs", "num_workers", "val_batches",
                     "image_rows", "loader_groups", "loader_streams"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must not be negative, got {getattr(self, name)}")
        if self.epochs == 0 and self.max_steps == 0:
            raise ValueError("train.epochs and train.max_steps are both 0: nothing to train")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"train.hflip is a probability, got {self.hflip}")
        if self.codebook_lr_scale < 0:
            raise ValueError(f"train.codebook_lr_scale must not be negative, got {self.codebook_lr_scale}")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ValueError(f"need 0 <= train.min_lr <= train.lr and lr > 0, got lr={self.lr} min_lr={self.min_lr}")
