"""Pixels <-> patches, in the patch order of timm's PatchEmbed (row-major over the grid).

A patch vector holds its p x p x 3 pixels in (row, column, channel) order, as in MAE.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(images: torch.Tensor, mean: torch.Tensor | None = None,
                   std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [B,3,H,W] in 0..255 (or float in 0..1) -> float ImageNet-normalised [B,3,H,W].

    `mean` and `std` ([1,3,1,1], on the images' device) avoid a host-to-device copy, which on a GPU
    would synchronise every step; without them they are built here."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    if mean is None or std is None:
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def from_model_input(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_model_input`: float [B,3,H,W] -> uint8 [B,3,H,W]."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B,C,H,W] -> [B, N, p*p*C] with N = (H/p)(W/p)."""
    b, c, h, w = images.shape
    p = patch_size
    gh, gw = h // p, w // p
    x = images.reshape(b, c, gh, p, gw, p)
    x = torch.einsum("bchpwq->bhwpqc", x)
    return x.reshape(b, gh * gw, p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """[B, N, p*p*C] -> [B,C,H,W]."""
    b = patches.shape[0]
    p = patch_size
    gh, gw = grid
    x = patches.reshape(b, gh, gw, p, p, channels)
    x = torch.einsum("bhwpqc->bchpwq", x)
    return x.reshape(b, channels, gh * p, gw * p)


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-patch standardisation (MAE's norm_pix target): returns (normalised, mean, std), mean and
    std of shape [..., 1] so that ``normalised * std + mean`` gives the patch back."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=False)
    std = (var + eps).sqrt()
    return (patches - mean) / std, mean, std


def flip_patch_grid(per_patch: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mirror a per-patch tensor [B, N, ...] left-right over the patch grid, matching
    ``torch.flip(images, dims=[-1])`` when the image width is a multiple of the patch size."""
    b, n = per_patch.shape[:2]
    gh, gw = grid
    rest = per_patch.shape[2:]
    return per_patch.reshape(b, gh, gw, *rest).flip(2).reshape(b, n, *rest)
