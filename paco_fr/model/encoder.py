"""The encoder: a timm Vision Transformer built by name, run MAE style on a subset of patch tokens.

timm builds the ViT (its state dict is what gets exported); this wrapper runs its parts itself so
that some patch tokens can be replaced (by code tokens) before the position embedding and only the
kept tokens go through the blocks.
"""

from __future__ import annotations

import torch
from torch import nn


def build_vit(name: str, img_size: int, patch_size: int) -> nn.Module:
    """timm.create_model(name, pretrained=False, img_size, patch_size, num_classes=0): exactly what
    :func:`paco_fr.model.export.load_encoder` rebuilds, so exported weights load strictly."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    try:
        vit = timm.create_model(name, pretrained=False, img_size=img_size, patch_size=patch_size, num_classes=0)
    except RuntimeError as exc:  # timm raises RuntimeError for an unknown model name
        raise ValueError(f"cannot build encoder {name!r}: {exc}") from exc
    if not isinstance(vit, VisionTransformer):
        raise ValueError(f"encoder {name!r} is a {type(vit).__name__}; PaCo-FR needs a timm VisionTransformer")
    if getattr(vit, "rope", None) is not None:
        raise ValueError(f"encoder {name!r}: rotary position embeddings are not supported")
    return vit


class MaskedViTEncoder(nn.Module):
    def __init__(self, name: str, img_size: int, patch_size: int) -> None:
        super().__init__()
        self.vit = build_vit(name, img_size, patch_size)
        self.name = name
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim: int = self.vit.embed_dim
        self.num_prefix_tokens: int = self.vit.num_prefix_tokens
        self.grid: tuple[int, int] = tuple(self.vit.patch_embed.grid_size)  # type: ignore[assignment]
        self.num_patches = self.grid[0] * self.grid[1]
        self._use_matmul_embed = self._plain_patch_embed()

    def _plain_patch_embed(self) -> bool:
        """A non-overlapping conv with nothing after it but an optional norm: computable as a matmul."""
        from timm.layers import PatchEmbed

        pe = self.vit.patch_embed
        conv = getattr(pe, "proj", None)
        return (type(pe) is PatchEmbed and isinstance(conv, nn.Conv2d) and getattr(pe, "flatten", False)
                and not getattr(pe, "dynamic_img_pad", False) and conv.kernel_size == conv.stride
                and conv.kernel_size == (self.patch_size, self.patch_size) and conv.padding == (0, 0)
                and conv.groups == 1)

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """timm's patch embedding. A plain one runs as one matmul on (channel, row, column)-ordered
        patches: same weights and result as the conv, but its weight gradient is a GEMM, where
        cuDNN's strided-conv weight gradient was slow."""
        pe = self.vit.patch_embed
        if not self._use_matmul_embed:
            return pe(images)
        b, c, h, w = images.shape
        p = self.patch_size
        if (h, w) != (self.img_size, self.img_size):
            raise ValueError(f"expected {self.img_size}x{self.img_size} images, got {h}x{w}")
        patches = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        x = torch.nn.functional.linear(patches, pe.proj.weight.flatten(1), pe.proj.bias)  # [B,N,D]
        return pe.norm(x)

    def forward(
        self,
        images: torch.Tensor,
        ids_keep: torch.Tensor | None = None,
        replace_tokens: torch.Tensor | None = None,
        replaced: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """images [B,3,H,W] (normalised); ids_keep [B,L] indices of the patches to encode (all when
        None); replace_tokens [B,N,D] and replaced [B,N] bool: patch embeddings swapped for code
        tokens before the position embedding. Returns [B, prefix + L, D] after the final norm."""
        vit = self.vit
        x = self.embed_patches(images)  # [B,N,D], or [B,gh,gw,D] for dynamic-size ViTs
        if replaced is not None and replace_tokens is not None:
            grid_shape = x.shape
            x = x.reshape(x.shape[0], -1, x.shape[-1])
            x = torch.where(replaced.unsqueeze(-1), replace_tokens.to(x.dtype), x).reshape(grid_shape)
        x = vit._pos_embed(x)  # [B, P+N, D]: prefix tokens first
        if ids_keep is not None:
            p = self.num_prefix_tokens
            patches = x[:, p:].gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # [B,L,D]
            x = torch.cat([x[:, :p], patches], dim=1)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        return vit.norm(x)
