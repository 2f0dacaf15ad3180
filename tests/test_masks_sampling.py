"""Patch membership and the three mask samplers: exact counts, group coverage, determinism, edge cases."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paco_fr.masks import (FLIP_PERMUTATION, REGION_GROUPS, REGION_INDEX, REGIONS, STRATEGIES, block_masks,
                           num_masked, patch_membership, region_groups, sample_masks, structured_masks)
from paco_fr.masks.sampling import STRATUM_PRIORITY, _primary_stratum

torch.set_num_threads(1)
R = len(REGIONS)


def face_layout(side: int, patch: int, present: frozenset[str] | None = None) -> torch.Tensor:
    """A schematic upright face label map (side*patch pixels square) with the given classes present."""
    size = side * patch
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    lab = torch.zeros(size, size, dtype=torch.uint8)
    parts = [
        ("head_other", (yy / 0.95) ** 2 + (xx / 0.8) ** 2 < 1),
        ("skin", (yy / 0.75) ** 2 + (xx / 0.6) ** 2 < 1),
        ("left_brow", ((yy + 0.35).abs() < 0.05) & ((xx + 0.3).abs() < 0.17)),
        ("right_brow", ((yy + 0.35).abs() < 0.05) & ((xx - 0.3).abs() < 0.17)),
        ("left_eye", ((yy + 0.2) / 0.07) ** 2 + ((xx + 0.3) / 0.15) ** 2 < 1),
        ("right_eye", ((yy + 0.2) / 0.07) ** 2 + ((xx - 0.3) / 0.15) ** 2 < 1),
        ("nose", (yy > -0.15) & (yy < 0.2) & (xx.abs() < 0.1 + 0.3 * (yy + 0.15))),
        ("mouth", ((yy - 0.42) / 0.08) ** 2 + (xx / 0.25) ** 2 < 1),
    ]
    for name, where in parts:
        if present is None or name in present:
            lab[where] = REGION_INDEX[name]
    return lab


def random_label_maps(seed: int, batch: int, side: int, patch: int, present: list[int]) -> torch.Tensor:
    """Blocky random label maps using only the `present` labels (so some regions may be missing)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, len(present), (batch, side, side), generator=g)
    labels = torch.tensor(present, dtype=torch.uint8)[cells]
    # Sub-patch detail: a random pixel per patch may carry another present label.
    maps = labels.repeat_interleave(patch, 1).repeat_interleave(patch, 2).clone()
    if patch > 1:
        noise = torch.randint(0, len(present), maps.shape, generator=g)
        keep = torch.rand(maps.shape, generator=g) < 0.9
        maps = torch.where(keep, maps, torch.tensor(present, dtype=torch.uint8)[noise])
    return maps


def naive_membership(label_maps: torch.Tensor, p: int) -> torch.Tensor:
    b, h, w = label_maps.shape
    out = torch.zeros(b, (h // p) * (w // p), R, dtype=torch.bool)
    for i in range(b):
        for row in range(h // p):
            for col in range(w // p):
                for label in label_maps[i, row * p:(row + 1) * p, col * p:(col + 1) * p].unique():
                    out[i, row * (w // p) + col, int(label)] = True
    return out


# --- patch membership ------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), side=st.integers(1, 6), patch=st.sampled_from([1, 2, 3, 4]),
       wide=st.booleans())
def test_patch_membership_matches_a_pixel_loop(seed, side, patch, wide):
    g = torch.Generator().manual_seed(seed)
    height, width = side * patch, (side + (2 if wide else 0)) * patch
    maps = torch.randint(0, R, (2, height, width), generator=g, dtype=torch.uint8)
    got = patch_membership(maps, patch)
    assert got.shape == (2, (height // patch) * (width // patch), R) and got.dtype == torch.bool
    assert torch.equal(got, naive_membership(maps, patch))
    assert torch.equal(patch_membership(maps.long(), patch), got)


def test_a_patch_belongs_to_every_region_any_of_its_pixels_has():
    maps = torch.zeros(1, 4, 4, dtype=torch.uint8)
    maps[0, 1, 1] = REGION_INDEX["left_eye"]   # one pixel in patch 0 of a 2x2 grid of 2 px patches
    maps[0, 2:, 2:] = REGION_INDEX["mouth"]    # all of patch 3
    m = patch_membership(maps, 2)[0]
    assert m[0, REGION_INDEX["left_eye"]] and m[0, REGION_INDEX["background"]]
    assert m[3, REGION_INDEX["mouth"]] and not m[3, REGION_INDEX["background"]]
    assert m.sum().item() == 5


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(4, 4, dtype=torch.uint8), r"\(B, H, W\)"),
    (torch.zeros(1, 4, 4), "integer"),
    (torch.zeros(1, 5, 4, dtype=torch.uint8), "divide"),
    (torch.full((1, 4, 4), R, dtype=torch.uint8), "labels must lie"),
    (torch.full((1, 4, 4), -1, dtype=torch.long), "labels must lie"),
])
def test_patch_membership_rejects_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        patch_membership(bad, 2)


# --- counts, ratios, determinism ---------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), side=st.integers(7, 28), ratio=st.floats(0.0, 1.0),
       strategy=st.sampled_from(STRATEGIES), batch=st.integers(1, 5),
       present=st.lists(st.integers(0, R - 1), min_size=1, max_size=R, unique=True))
def test_every_strategy_masks_exactly_round_ratio_n(seed, side, ratio, strategy, batch, present):
    membership = patch_membership(random_label_maps(seed, batch, side, 2, present), 2)
    masks = sample_masks(membership, strategy, ratio, torch.Generator().manual_seed(seed))
    assert masks.shape == (batch, side * side) and masks.dtype == torch.bool
    assert (masks.sum(1) == round(ratio * side * side)).all()


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("side", [7, 14, 28])
def test_ratio_zero_masks_nothing_and_ratio_one_masks_everything(strategy, side):
    membership = patch_membership(face_layout(side, 4).expand(3, -1, -1), 4)
    g = torch.Generator().manual_seed(0)
    assert not sample_masks(membership, strategy, 0.0, g).any()
    assert sample_masks(membership, strategy, 1.0, g).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), strategy=st.sampled_from(STRATEGIES), ratio=st.floats(0.05, 0.95))
def test_same_generator_state_gives_the_same_masks(seed, strategy, ratio):
    membership = patch_membership(face_layout(14, 8).expand(8, -1, -1), 8)
    first = sample_masks(membership, strategy, ratio, torch.Generator().manual_seed(seed))
    second = sample_masks(membership, strategy, ratio, torch.Generator().manual_seed(seed))
    assert torch.equal(first, second)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_masks_vary_across_draws_and_across_the_batch(strategy):
    membership = patch_membership(face_layout(14, 8).expand(16, -1, -1), 8)
    g = torch.Generator().manual_seed(1)
    first, second = sample_masks(membership, strategy, 0.5, g), sample_masks(membership, strategy, 0.5, g)
    assert not torch.equal(first, second)
    assert len({tuple(row.tolist()) for row in first}) > 8


def test_num_masked_rounds_and_rejects_bad_ratios():
    assert num_masked(196, 0.75) == 147
    assert num_masked(49, 0.75) == 37          # 36.75
    assert num_masked(784, 0.75) == 588
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="ratio"):
            num_masked(196, bad)


def test_bad_arguments_are_rejected_with_a_reason():
    membership = patch_membership(face_layout(14, 8)[None], 8)
    g = torch.Generator()
    with pytest.raises(ValueError, match="unknown masking strategy"):
        sample_masks(membership, "checkerboard", 0.5, g)
    with pytest.raises(TypeError, match="BoolTensor"):
        sample_masks(membership.long(), "random", 0.5, g)
    with pytest.raises(ValueError, match="square grid"):
        sample_masks(membership[:, :150], "block", 0.5, g)
    with pytest.raises(ValueError, match=r"\(B, N, 9\)"):
        sample_masks(membership[..., :4], "structured", 0.5, g)


# --- structured --------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), side=st.integers(7, 28), ratio=st.floats(0.0, 1.0),
       present=st.sets(st.sampled_from(REGIONS[1:])), random_maps=st.booleans())
def test_structured_masks_the_chosen_group_whole_when_it_fits(seed, side, ratio, present, random_maps):
    if random_maps:
        labels = [0, *sorted(REGION_INDEX[name] for name in present)]
        maps = random_label_maps(seed, 4, side, 2, labels)
        membership = patch_membership(maps, 2)
    else:
        membership = patch_membership(face_layout(side, 4, frozenset(present)).expand(4, -1, -1), 4)
    count = num_masked(side * side, ratio)
    mask, group = structured_masks(membership, count, torch.Generator().manual_seed(seed))
    groups = region_groups(membership)
    assert (mask.sum(1) == count).all()
    for b in range(membership.shape[0]):
        available = groups[b].any(0)
        if not available.any():
            assert group[b] == -1  # nothing to pick: the mask is the proportional fill alone
            continue
        assert available[group[b]], "picked a group with no patch"
        members = groups[b, :, group[b]]
        if members.sum() <= count:
            assert mask[b][members].all()
        else:
            assert not mask[b][~members].any()  # subsampled inside the group only


def test_structured_works_on_faces_with_missing_regions():
    no_features = face_layout(14, 8, frozenset({"skin"}))
    only_background = torch.zeros(14 * 8, 14 * 8, dtype=torch.uint8)
    one_eye = face_layout(14, 8, frozenset({"skin", "head_other", "left_eye"}))
    membership = patch_membership(torch.stack([no_features, only_background, one_eye]), 8)
    mask, group = structured_masks(membership, 147, torch.Generator().manual_seed(3))
    assert (mask.sum(1) == 147).all()
    assert REGION_GROUPS[group[0]] == "face_boundary"  # skin on background: only the boundary exists
    assert group[1] == -1
    assert REGION_GROUPS[group[2]] in {"eyes", "face_boundary", "head_other"}


def test_structured_picks_each_available_group_about_equally_often():
    membership = patch_membership(face_layout(14, 8).expand(3000, -1, -1), 8)
    _, group = structured_masks(membership, 147, torch.Generator().manual_seed(0))
    counts = torch.bincount(group, minlength=len(REGION_GROUPS)).float() / 3000
    assert torch.allclose(counts, torch.full_like(counts, 1 / 6), atol=0.03), counts


def test_structured_fill_masks_the_same_proportion_of_every_remaining_region():
    side, count = 28, num_masked(784, 0.6)
    membership = patch_membership(face_layout(side, 4).expand(64, -1, -1), 4)
    mask, group = structured_masks(membership, count, torch.Generator().manual_seed(5))
    groups, stratum = region_groups(membership), _primary_stratum(membership)
    for b in range(64):
        chosen = groups[b, :, group[b]]
        free = ~chosen
        rho = (count - chosen.sum()).item() / free.sum().item()
        for s in range(len(STRATUM_PRIORITY)):
            in_stratum = free & (stratum[b] == s)
            # floor per region plus at most one of the random top-up units
            assert abs(mask[b][in_stratum].sum().item() - rho * in_stratum.sum().item()) < 1


def test_face_boundary_is_the_skin_band_next_to_hair_or_background():
    side = 14
    membership = patch_membership(face_layout(side, 8)[None], 8)
    boundary = region_groups(membership)[0, :, REGION_GROUPS.index("face_boundary")].view(side, side)
    skin = membership[0, :, REGION_INDEX["skin"]].view(side, side)
    assert boundary.any() and (skin & ~boundary).any()  # a band, not the whole face
    assert not (boundary & ~skin).any()
    assert not boundary[side // 2, side // 2]  # the centre of the face is not on the boundary


def test_structured_accepts_a_generator_on_another_device_than_membership():
    # On a GPU machine the generator may live on CUDA; here both are CPU but the path is the same.
    membership = patch_membership(face_layout(14, 8).expand(2, -1, -1), 8)
    out = sample_masks(membership, "structured", 0.75, torch.Generator(device="cpu").manual_seed(0))
    assert out.device == membership.device


# --- block -------------------------------------------------------------------------------------

def _adjacent_pairs(mask: torch.Tensor, side: int) -> float:
    grid = mask.view(-1, side, side)
    return ((grid[:, 1:, :] & grid[:, :-1, :]).sum() + (grid[:, :, 1:] & grid[:, :, :-1]).sum()).item()


def test_block_masks_are_much_more_contiguous_than_random_ones():
    g = torch.Generator().manual_seed(0)
    membership = patch_membership(face_layout(14, 8).expand(64, -1, -1), 8)
    block = sample_masks(membership, "block", 0.4, g)
    random = sample_masks(membership, "random", 0.4, g)
    assert _adjacent_pairs(block, 14) > 1.5 * _adjacent_pairs(random, 14)


@pytest.mark.parametrize("side", [7, 14, 28])
def test_block_masks_reach_the_count_on_every_grid(side):
    count = num_masked(side * side, 0.75)
    masks = block_masks(32, side, count, torch.Generator().manual_seed(side))
    assert (masks.sum(1) == count).all()


# --- exports and imports -----------------------------------------------------------------------

def test_flip_permutation_swaps_left_and_right_and_is_an_involution():
    perm = np.array(FLIP_PERMUTATION)
    assert REGIONS[perm[REGION_INDEX["left_eye"]]] == "right_eye"
    assert REGIONS[perm[REGION_INDEX["right_brow"]]] == "left_brow"
    assert perm[REGION_INDEX["nose"]] == REGION_INDEX["nose"]
    assert (perm[perm] == np.arange(R)).all()
    # Flipping a label map and permuting its labels gives the membership of the mirrored face.
    maps = face_layout(14, 8)[None]
    flipped = torch.tensor(perm, dtype=torch.uint8)[maps.long()].flip(-1)
    assert torch.equal(patch_membership(flipped, 8), patch_membership(maps, 8))  # the layout is symmetric


def test_the_package_imports_with_torch_and_numpy_alone():
    code = ("import sys, paco_fr.masks as m; "
            "heavy = [n for n in ('mediapipe', 'pandas', 'great_expectations', 'PIL', 'cv2', 'pyarrow') "
            "if n in sys.modules]; "
            "assert not heavy, heavy; "
            "assert {'REGIONS', 'FLIP_PERMUTATION', 'patch_membership', 'sample_masks'} <= set(m.__all__)")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- CUDA (runs only where a GPU is present) ---------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("generator_device", ["cuda", "cpu"])
def test_sampling_on_cuda_membership(generator_device):
    maps = torch.stack([face_layout(14, 8), face_layout(14, 8, frozenset({"skin"})),
                        torch.zeros(112, 112, dtype=torch.uint8)]).repeat(40, 1, 1).cuda()
    membership = patch_membership(maps, 8)
    assert membership.is_cuda
    for strategy in STRATEGIES:
        first = sample_masks(membership, strategy, 0.75,
                             torch.Generator(device=generator_device).manual_seed(7))
        again = sample_masks(membership, strategy, 0.75,
                             torch.Generator(device=generator_device).manual_seed(7))
        assert first.is_cuda and torch.equal(first, again)
        assert (first.sum(1) == 147).all()
    mask, group = structured_masks(membership, 147, torch.Generator(device=generator_device).manual_seed(1))
    groups = region_groups(membership)
    for b in range(membership.shape[0]):
        if group[b] >= 0 and groups[b, :, group[b]].sum() <= 147:
            assert mask[b][groups[b, :, group[b]]].all()
    assert (group[2::3] == -1).all()
