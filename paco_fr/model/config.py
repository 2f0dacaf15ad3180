"""Configuration of the PaCo-FR model (section `model`). Imports nothing beyond the standard library."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class LossWeights:
    tok: float = 1.0
    align: float = 1.0
    spatial: float = 0.5


@dataclass
class ModelConfig:
    encoder: str = "vit_tiny_patch16_224"
    img_size: int = 112
    patch_size: int = 8
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    codebook: Literal["off", "single", "multi"] = "multi"
    codebook_size: int = 256
    code_dim: int = 64
    top_k: int = 4
    codebook_update: Literal["grad", "ema"] = "grad"
    ema_decay: float = 0.99
    dead_code_threshold: float = 1e-3
    replace_ratio: float = 0.15
    spatial: bool = True
    flip_consistency: bool = False
    norm_pix_loss: bool = True
    loss_weights: LossWeights = field(default_factory=LossWeights)
