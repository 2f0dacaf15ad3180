"""Mask samplers over a square patch grid: random (MAE), block-wise (BEiT) and structured (PaCo-FR).

All three return exactly `num_masked(N, ratio)` masked patches per sample, are vectorised over the
batch (the only Python loop is over BEiT's block-drawing attempts) and draw every random number from
the caller's `torch.Generator`, so a generator in a given state always yields the same masks.
The exact algorithms are written down in docs/masks.md.
"""

from __future__ import annotations

import functools
import math

import torch

from paco_fr.masks.patches import grid_side
from paco_fr.masks.regions_def import REGION_INDEX, REGIONS

STRATEGIES: tuple[str, ...] = ("random", "block", "structured")

# The structured sampler masks one of these groups whole, picked uniformly among the groups that
# have at least one patch in the face.
REGION_GROUPS: tuple[str, ...] = ("brows", "eyes", "nose", "mouth", "face_boundary", "head_other")

# The proportional fill stratifies patches by one primary region each: the first region in this order
# that the patch touches (small facial parts first, so a patch touching an eye counts as an eye patch).
STRATUM_PRIORITY: tuple[str, ...] = ("left_eye", "right_eye", "left_brow", "right_brow", "mouth", "nose",
                                     "skin", "head_other", "background")

# BEiT (Bao et al. 2022): blocks of at least 16 of 196 patches, aspect ratio in [0.3, 1/0.3], and a
# sample stops after 10 consecutive attempts that add nothing.
BLOCK_MIN_FRACTION = 16 / 196
BLOCK_LOG_ASPECT = (math.log(0.3), math.log(1 / 0.3))
BLOCK_MAX_FAILED_ATTEMPTS = 10

_KEY_BITS = 20  # random sort keys below 2**20, stratum index above


def num_masked(n_patches: int, ratio: float) -> int:
    """round(ratio * n_patches) with Python's round (halves to even): the count every strategy masks."""
    ratio = float(ratio)
    if not math.isfinite(ratio) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be within [0, 1], got {ratio}")
    return int(round(ratio * n_patches))


def sample_masks(membership: torch.Tensor, strategy: str, ratio: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Masks for a batch: BoolTensor (B, N), True = masked, exactly round(ratio * N) per row.

    membership: BoolTensor (B, N, R) from `patch_membership` on a square grid (N = g * g). The
    `random` and `block` strategies use only its shape. Random numbers are drawn on the generator's
    device and the result is returned on membership's device.
    """
    _check_membership(membership)
    batch, n_patches, _ = membership.shape
    count = num_masked(n_patches, ratio)
    device = membership.device
    if strategy == "random":
        return random_masks(batch, n_patches, count, generator, device=device)
    if strategy == "block":
        return block_masks(batch, grid_side(n_patches), count, generator, device=device)
    if strategy == "structured":
        return structured_masks(membership, count, generator)[0]
    raise ValueError(f"unknown masking strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


def random_masks(batch: int, n_patches: int, count: int, generator: torch.Generator,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """MAE: `count` patches drawn uniformly without replacement per sample. (B, N) bool."""
    eligible = torch.ones(batch, n_patches, dtype=torch.bool, device=generator.device)
    wanted = torch.full((batch,), count, dtype=torch.long, device=generator.device)
    return _pick_random(eligible, wanted, generator).to(device or generator.device)


def block_masks(batch: int, side: int, count: int, generator: torch.Generator,
                device: torch.device | str | None = None) -> torch.Tensor:
    """BEiT block-wise masking on a side x side grid, vectorised over the batch. (B, side*side) bool.

    Each iteration makes one BEiT attempt for every unfinished sample: a rectangle with area uniform in
    [min_block, remaining] (either order) and log-uniform aspect ratio, placed uniformly, accepted when it
    adds between 1 and `remaining` new patches. A sample stops when it reaches `count` or after 10
    consecutive failed attempts; any shortfall is topped up at random, preferring patches 4-adjacent to a
    masked one, so every sample has exactly `count` masked patches.
    """
    gen_device = generator.device
    n_patches = side * side
    if not 0 <= count <= n_patches:
        raise ValueError(f"cannot mask {count} of {n_patches} patches")
    min_block = max(1, round(BLOCK_MIN_FRACTION * n_patches))
    mask = torch.zeros(batch, side, side, dtype=torch.bool, device=gen_device)
    masked = torch.zeros(batch, dtype=torch.long, device=gen_device)
    failed = torch.zeros(batch, dtype=torch.long, device=gen_device)
    coords = torch.arange(side, device=gen_device)
    log_lo, log_hi = BLOCK_LOG_ASPECT
    # Bounded: every iteration either fills patches or counts a failure for each active sample.
    for _ in range(count + BLOCK_MAX_FAILED_ATTEMPTS * (count + 1)):
        remaining = count - masked
        active = (remaining > 0) & (failed < BLOCK_MAX_FAILED_ATTEMPTS)
        if not bool(active.any()):
            break
        draws = torch.rand(batch, 4, generator=generator, device=gen_device)
        area = min_block + (remaining.float() - min_block) * draws[:, 0]
        aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[:, 1])
        height = torch.round(torch.sqrt(area * aspect)).long().clamp(min=1)
        width = torch.round(torch.sqrt(area / aspect)).long().clamp(min=1)
        fits = (height < side) & (width < side)
        height, width = height.clamp(max=side), width.clamp(max=side)
        top = (draws[:, 2] * (side - height + 1).float()).long()
        left = (draws[:, 3] * (side - width + 1).float()).long()
        rows = (coords >= top[:, None]) & (coords < (top + height)[:, None])    # (B, side)
        cols = (coords >= left[:, None]) & (coords < (left + width)[:, None])  # (B, side)
        block = rows[:, :, None] & cols[:, None, :]                              # (B, side, side)
        added = (block & ~mask).flatten(1).sum(1)
        accept = active & fits & (added > 0) & (added <= remaining)
        mask |= block & accept[:, None, None]
        masked += added * accept
        failed = torch.where(accept, torch.zeros_like(failed), failed + active.long())
    flat = mask.flatten(1)
    shortfall = count - flat.sum(1)
    # Prefer the frontier of the blocks so that the top-up keeps the masks blocky.
    frontier = (_dilate4(mask) & ~mask).flatten(1)
    scores = torch.rand(batch, n_patches, generator=generator, device=gen_device) + (~frontier).float()
    flat = flat | _pick_lowest(scores, ~flat, shortfall)
    return flat.to(device or gen_device)


def region_groups(membership: torch.Tensor) -> torch.Tensor:
    """Patch membership of the structured sampler's groups: BoolTensor (B, N, len(REGION_GROUPS)).

    face_boundary = skin patches that also touch head_other/background, or that are 4-adjacent to a
    patch touching only head_other/background (so the band is found when region edges fall on patch
    edges too)."""
    _check_membership(membership)
    batch, n_patches, _ = membership.shape
    side = grid_side(n_patches)
    m = membership
    skin = m[..., REGION_INDEX["skin"]]
    outside = m[..., REGION_INDEX["background"]] | m[..., REGION_INDEX["head_other"]]
    only_outside = (outside & ~skin).view(batch, side, side)
    boundary = skin & (outside | _dilate4(only_outside).flatten(1))
    return torch.stack([
        m[..., REGION_INDEX["left_brow"]] | m[..., REGION_INDEX["right_brow"]],
        m[..., REGION_INDEX["left_eye"]] | m[..., REGION_INDEX["right_eye"]],
        m[..., REGION_INDEX["nose"]],
        m[..., REGION_INDEX["mouth"]],
        boundary,
        m[..., REGION_INDEX["head_other"]],
    ], dim=-1)


def structured_masks(membership: torch.Tensor, count: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """PaCo-FR structured masking (FSFM's CRFR-P procedure). Returns (mask (B, N) bool, group (B,) long).

    group[b] indexes REGION_GROUPS, or is -1 when the face has no patch in any group (then the mask is
    the proportional fill alone). Steps, all vectorised over the batch:
      1. pick a group uniformly among the groups with at least one patch in this face;
      2. mask all of its patches, or `count` of them at random when it has more than `count`;
      3. fill the remaining target = count - masked by masking the same proportion rho = target / F of
         every remaining region (F = patches outside the group; each patch counts for its primary region,
         STRATUM_PRIORITY): floor(rho * n_r) patches of region r, chosen at random within it;
      4. top up at random to exactly `count`: the few rounding units left go to regions drawn at random
         with probability proportional to their rounding remainders (Efraimidis-Spirakis), one random
         patch of the region each. Every region ends within one patch of rho * n_r.
    """
    _check_membership(membership)
    out_device = membership.device
    gen_device = generator.device
    membership = membership.to(gen_device)
    batch, n_patches, n_regions = membership.shape
    if not 0 <= count <= n_patches:
        raise ValueError(f"cannot mask {count} of {n_patches} patches")
    # Every random number is drawn up front, whichever branch a sample takes: one generator state
    # always gives the same masks.
    group_draw = torch.rand(batch, len(REGION_GROUPS), generator=generator, device=gen_device)
    region_draw = torch.rand(batch, n_regions, generator=generator, device=gen_device)
    patch_keys = torch.randint(0, 1 << _KEY_BITS, (batch, n_patches), generator=generator, device=gen_device,
                               dtype=torch.int32)

    groups = region_groups(membership)                   # (B, N, G)
    available = groups.any(dim=1)                        # (B, G)
    group = group_draw.masked_fill(~available, -1.0).argmax(dim=1)
    has_group = available.any(dim=1)
    group = torch.where(has_group, group, torch.full_like(group, -1))
    chosen = groups.gather(2, group.clamp(min=0)[:, None, None].expand(batch, n_patches, 1)).squeeze(2)
    chosen &= has_group[:, None]                         # (B, N)

    # Strata: the primary region of each patch outside the group, and the group itself (index R).
    stratum = torch.where(chosen, n_regions, _primary_stratum(membership))       # (B, N)
    per_stratum = torch.zeros(batch, n_regions + 1, dtype=torch.long, device=gen_device)
    per_stratum.scatter_add_(1, stratum, torch.ones_like(stratum))
    n_chosen = per_stratum[:, n_regions]
    from_group = n_chosen.clamp(max=count)
    target = count - from_group                          # (B,) patches to fill outside the group
    n_free = (n_patches - n_chosen).clamp(min=1)
    # Exact integer apportionment: floor(target * n_r / F) per region, remainders kept exactly.
    scaled = target[:, None] * per_stratum[:, :n_regions]
    base, remainder = scaled // n_free[:, None], scaled % n_free[:, None]
    units = target - base.sum(dim=1)                     # < number of regions with a remainder
    # Weighted sampling without replacement: larger log(u) / w first.
    race = -torch.log(region_draw.clamp(min=1e-12)) / remainder.clamp(min=1).to(region_draw.dtype)
    extra = _pick_lowest(race, remainder > 0, units)
    quota = torch.cat([base + extra.long(), from_group[:, None]], dim=1)          # (B, R + 1)

    # One sort by (stratum, random key) puts each stratum's patches in a random order; a patch is
    # masked when its rank inside its stratum is below the stratum's quota.
    position = _ranks((stratum.to(torch.int32) << _KEY_BITS) | patch_keys)
    start = torch.cumsum(per_stratum, dim=1) - per_stratum
    rank_in_stratum = position - start.gather(1, stratum)
    mask = rank_in_stratum < quota.gather(1, stratum)
    return mask.to(out_device), group.to(out_device)


def _primary_stratum(membership: torch.Tensor) -> torch.Tensor:
    """Index into STRATUM_PRIORITY of the first region each patch touches. (B, N, R) -> (B, N) long.
    A patch that touches no region at all (not produced by patch_membership) counts as background."""
    n_regions = membership.shape[2]
    table = _stratum_table(n_regions, membership.device)
    # the set of regions a patch touches as an R-bit code; float32 sums of powers of two are exact
    codes = membership.to(torch.float32) @ (2.0 ** torch.arange(n_regions, device=membership.device))
    return table[codes.long()]


@functools.cache
def _stratum_table_cpu(n_regions: int) -> torch.Tensor:
    order = [REGION_INDEX[r] for r in STRATUM_PRIORITY]
    table = torch.full((1 << n_regions,), len(order) - 1, dtype=torch.long)
    for code in range(1, 1 << n_regions):
        table[code] = next(rank for rank, region in enumerate(order) if code >> region & 1)
    return table


def _stratum_table(n_regions: int, device: torch.device) -> torch.Tensor:
    return _stratum_table_cpu(n_regions).to(device)


def _check_membership(membership: torch.Tensor) -> None:
    if not isinstance(membership, torch.Tensor):
        raise TypeError(f"membership must be a torch.Tensor, got {type(membership).__name__}")
    if membership.dtype != torch.bool:
        raise TypeError(f"membership must be a BoolTensor (B, N, R), got {membership.dtype}")
    if membership.ndim != 3 or membership.shape[2] != len(REGIONS):
        raise ValueError(f"membership must be (B, N, {len(REGIONS)}), got shape {tuple(membership.shape)}")


def _dilate4(grid: torch.Tensor) -> torch.Tensor:
    """grid (B, g, g) bool OR its 4 neighbours (zero padding)."""
    out = grid.clone()
    out[:, 1:, :] |= grid[:, :-1, :]
    out[:, :-1, :] |= grid[:, 1:, :]
    out[:, :, 1:] |= grid[:, :, :-1]
    out[:, :, :-1] |= grid[:, :, 1:]
    return out


def _ranks(keys: torch.Tensor) -> torch.Tensor:
    """Position of each entry in its row's ascending sort. keys (B, N) -> (B, N) long."""
    order = keys.argsort(dim=1)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(keys.shape[1], device=keys.device).expand_as(order))
    return ranks


def _pick_lowest(scores: torch.Tensor, eligible: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """The min(wanted[b], eligible[b].sum()) eligible entries with the lowest scores. (B, N) bool."""
    ranks = _ranks(scores.masked_fill(~eligible, float("inf")))
    return eligible & (ranks < wanted[:, None])


def _pick_random(eligible: torch.Tensor, wanted: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    scores = torch.rand(eligible.shape, generator=generator, device=eligible.device)
    return _pick_lowest(scores, eligible, wanted)
