"""MAE-style light decoder: encoded tokens back onto the full patch grid, mask tokens elsewhere."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding [gh*gw, dim] (MAE), rows of the grid row-major."""
    if dim % 4:
        raise ValueError(f"decoder_dim must be a multiple of 4 for 2-D sin-cos positions, got {dim}")
    gh, gw = grid
    ys, xs = np.meshgrid(np.arange(gh, dtype=np.float64), np.arange(gw, dtype=np.float64), indexing="ij")

    def embed_1d(pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([embed_1d(ys), embed_1d(xs)], axis=1)
    return torch.from_numpy(table).float()


class MAEDecoder(nn.Module):
    def __init__(self, encoder_dim: int, dim: int, depth: int, heads: int, grid: tuple[int, int],
                 num_prefix_tokens: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        self.grid = grid
        self.num_patches = grid[0] * grid[1]
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, grid).unsqueeze(0), persistent=False)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, latent: torch.Tensor, ids_keep: torch.Tensor | None) -> torch.Tensor:
        """latent [B, P+L, D_enc] from the encoder, ids_keep [B,L] (None: all N patches were encoded).
        Returns per-patch features [B,N,dim] in grid order."""
        x = self.embed(latent)
        p = self.num_prefix_tokens
        prefix, kept = x[:, :p], x[:, p:]
        if ids_keep is None:
            full = kept
        else:
            b = x.shape[0]
            full = self.mask_token.to(x.dtype).expand(b, self.num_patches, -1).clone()
            full.scatter_(1, ids_keep.unsqueeze(-1).expand(-1, -1, self.dim), kept)  # [B,N,dim]
        full = full + self.pos_embed.to(full.dtype)
        x = torch.cat([prefix, full], dim=1)
        x = self.norm(self.blocks(x))
        return x[:, p:]
