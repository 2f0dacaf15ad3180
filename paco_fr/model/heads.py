"""Small heads on top of the codebook, the decoder and the encoder."""

from __future__ import annotations

import torch
from torch import nn


class CodeToPixelHead(nn.Module):
    """Reconstructs a patch's normalised pixels from its code token alone (keeps codes pixel-aligned)."""

    def __init__(self, code_dim: int, patch_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code_dim, hidden), nn.GELU(), nn.Linear(hidden, patch_dim))

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.net(token)  # [...,d_c] -> [...,P]


class TokenHead(nn.Module):
    """Distribution over the codebook for a masked patch, from its decoder feature.

    The feature is mapped into code space and scored against every (unit) code by cosine similarity
    / temperature, like the belief predictor. So a code moved by learning or restarted onto a new
    embedding is scored by where it is now, with no per-code output row to relearn. The codes enter
    without gradient: the token loss trains the decoder, not the codebook."""

    def __init__(self, dim: int, code_dim: int, temperature: float) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, code_dim))
        self.temperature = temperature

    def forward(self, features: torch.Tensor, unit_codes: torch.Tensor) -> torch.Tensor:
        """features [...,d], unit_codes [K,d_c] -> logits [...,K]."""
        query = torch.nn.functional.normalize(self.proj(features).float(), dim=-1)
        return query @ unit_codes.detach().t() / self.temperature


def region_pool(features: torch.Tensor, membership: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean feature of each region's tokens.

    features [B,L,D], membership [B,L,R] bool -> pooled [B,R,D], count [B,R] (tokens per region)."""
    weights = membership.to(features.dtype)
    count = weights.sum(dim=1)  # [B,R]
    pooled = torch.einsum("blr,bld->brd", weights, features) / count.clamp_min(1).unsqueeze(-1)
    return pooled, count


class RelationHead(nn.Module):
    """Predicts, from two region features, the normalised offset between the regions' centroids."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden))
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [B,R,D] -> offsets [B,R,R,2]: entry (i, j) predicts centroid_j - centroid_i."""
        h = self.proj(pooled)  # [B,R,h]
        r = h.shape[1]
        pairs = torch.cat([h.unsqueeze(2).expand(-1, -1, r, -1), h.unsqueeze(1).expand(-1, r, -1, -1)], dim=-1)
        return self.mlp(pairs)


def relation_matrix(pooled: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between region features: [B,R,D] -> [B,R,R] (flip consistency)."""
    unit = torch.nn.functional.normalize(pooled.float(), dim=-1)
    return unit @ unit.transpose(1, 2)
