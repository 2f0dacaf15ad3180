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
    # off: no codebook (MAE); single: one candidate per patch (k = 1); multi: top_k candidates.
    codebook: Literal["off", "single", "multi"] = "multi"
    codebook_size: int = 64
    code_dim: int = 64
    top_k: int = 4
    codebook_update: Literal["grad", "ema"] = "grad"
    ema_decay: float = 0.99
    # A code is dead when its running share of top-1 assignments falls below this.
    dead_code_threshold: float = 1e-3
    # Decay of that running share (per step); lower reacts faster.
    usage_decay: float = 0.9
    # Optimizer steps between dead-code restarts; 0 disables restarts.
    restart_every: int = 10
    belief_hidden: int = 128
    # What the belief predictor sees and the code-to-pixel head reconstructs: per-patch standardised
    # pixels (norm_pix: texture and edges) or the ImageNet-normalised pixels (pixels: colour too).
    code_pixels: Literal["norm_pix", "pixels"] = "norm_pix"
    # Cosine-similarity logits of the belief predictor are divided by this.
    code_temperature: float = 0.1
    # Weight of the commitment term ||z - sg(c)||^2 inside L_align.
    commit_weight: float = 0.25
    # Weight of the usage term log K - H(batch-mean belief) inside L_align (keeps codes in use).
    usage_weight: float = 0.3
    replace_ratio: float = 0.15
    spatial: bool = True
    relation_dim: int = 128
    flip_consistency: bool = False
    norm_pix_loss: bool = True
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if not 0.0 <= self.replace_ratio < 1.0:
            raise ValueError(f"replace_ratio must be in [0, 1), got {self.replace_ratio}")
        if self.codebook == "off" and self.replace_ratio > 0:
            raise ValueError("replace_ratio > 0 replaces patches by code tokens and needs a codebook;"
                             " set model.replace_ratio=0 with model.codebook=off")
        if self.codebook != "off":
            if not 1 <= self.top_k <= self.codebook_size:
                raise ValueError(f"top_k must be in [1, codebook_size], got {self.top_k}")
            if self.codebook_size < 2:
                raise ValueError("codebook_size must be at least 2")
        if self.flip_consistency and not self.spatial:
            raise ValueError("flip_consistency is part of spatial consistency: it needs model.spatial=true")
        if not 0.0 < self.ema_decay < 1.0 or not 0.0 < self.usage_decay < 1.0:
            raise ValueError("ema_decay and usage_decay must be in (0, 1)")
        if self.code_temperature <= 0:
            raise ValueError("code_temperature must be positive")

    @property
    def candidates(self) -> int:
        """Candidates per patch: 0 without a codebook, 1 for `single`, top_k for `multi`."""
        return {"off": 0, "single": 1, "multi": self.top_k}[self.codebook]
