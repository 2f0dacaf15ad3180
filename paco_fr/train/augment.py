"""Augmentations that keep a face crop and its region map consistent.

Horizontal flip mirrors both and swaps the left/right labels; scale and translate apply one affine
map to both (bilinear for the image, nearest for the labels, black / background outside); colour
jitter changes the image only. All randomness comes from the generator passed in, so a sample's
augmentation is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    hflip: float = 0.5
    scale_jitter: float = 0.05
    translate_jitter: float = 0.05
    color_jitter: float = 0.2

    @property
    def identity(self) -> bool:
        return self.hflip == 0 and self.scale_jitter == 0 and self.translate_jitter == 0 and self.color_jitter == 0


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment_pair(
    image: torch.Tensor,
    labels: torch.Tensor,
    out_size: int,
    params: AugmentParams | None,
    generator: torch.Generator,
    flip_permutation: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """image uint8 [3,H,W], labels uint8 [H,W] -> (uint8 [3,S,S], uint8 [S,S]) with S = out_size.

    With `params` None (evaluation) the pair is only resized when H, W differ from S. Draws happen in a
    fixed order whatever the outcome, so the same seed always gives the same augmentation."""
    _, h, w = image.shape
    if params is None or params.identity:
        if (h, w) == (out_size, out_size):
            return image, labels
        params = AugmentParams(0.0, 0.0, 0.0, 0.0)
    flip = float(torch.rand((), generator=generator)) < params.hflip
    scale = 1.0 + _uniform(generator, -params.scale_jitter, params.scale_jitter)
    tx = _uniform(generator, -params.translate_jitter, params.translate_jitter)
    ty = _uniform(generator, -params.translate_jitter, params.translate_jitter)
    cj = params.color_jitter
    brightness, contrast, saturation = (_uniform(generator, 1 - cj, 1 + cj) for _ in range(3))

    img = image.float().unsqueeze(0) / 255.0               # [1,3,H,W]
    lab = labels.float().unsqueeze(0).unsqueeze(0)          # [1,1,H,W]
    if flip:
        img = img.flip(-1)
        lab = flip_permutation.to(torch.float32)[lab.flip(-1).long()]
    if scale != 1.0 or tx or ty or (h, w) != (out_size, out_size):
        # affine_grid maps output coordinates to input ones (both in [-1,1]): zoom by `scale`,
        # shift by a fraction `t` of the image size (2t in normalised units).
        theta = torch.tensor([[1.0 / scale, 0.0, -2.0 * tx], [0.0, 1.0 / scale, -2.0 * ty]]).unsqueeze(0)
        grid = F.affine_grid(theta, [1, 1, out_size, out_size], align_corners=False)
        img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        lab = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if cj > 0:
        img = img * brightness
        grey = (0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)  # [1,1,S,S]
        img = (img - grey.mean()) * contrast + grey.mean()
        grey = (0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)
        img = (img - grey) * saturation + grey
    image_out = (img.clamp(0, 1) * 255).round().to(torch.uint8)[0]
    labels_out = lab.round().to(torch.uint8)[0, 0]
    return image_out.contiguous(), labels_out.contiguous()


def region_centroids(labels: torch.Tensor, num_regions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """labels [H,W] (ints < num_regions) -> (centroids [R,2] as (x, y) in [-1,1], present [R] bool)."""
    h, w = labels.shape
    flat = labels.reshape(-1).long()
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    xs = (xs.reshape(-1) + 0.5) / w * 2 - 1
    ys = (ys.reshape(-1) + 0.5) / h * 2 - 1
    count = torch.bincount(flat, minlength=num_regions).double()
    cx = torch.bincount(flat, weights=xs, minlength=num_regions) / count.clamp_min(1)
    cy = torch.bincount(flat, weights=ys, minlength=num_regions) / count.clamp_min(1)
    return torch.stack([cx, cy], dim=-1).float(), count > 0
