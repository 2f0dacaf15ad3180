"""The PaCo-FR module: shapes for every preset, what each switch changes, the codebook's health
mechanics. Small ViT-tiny at 32 px / patch 8 (a 4x4 grid) so every test runs in about a second."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from paco_fr.config import load_config
from paco_fr.masks import FLIP_PERMUTATION, REGIONS, patch_membership, sample_masks
from paco_fr.model import ModelConfig, PaCoFR, PatchCodebook
from paco_fr.model.losses import soft_token_cross_entropy
from paco_fr.model.paco import split_visible
from paco_fr.model.patches import flip_patch_grid, normalise_patches, patchify, unpatchify
from paco_fr.train.augment import region_centroids
from paco_fr.train.data import choose_replaced
from paco_fr.train.toydata import toy_face

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SMALL = ["model.img_size=32", "model.patch_size=8", "model.codebook_size=32", "model.decoder_dim=32",
         "model.decoder_depth=1", "model.belief_hidden=32", "model.relation_dim=16"]

torch.set_num_threads(1)


def small_cfg(preset: str | None = None, *extra: str) -> ModelConfig:
    return load_config(PARAMS, preset=preset, overrides=[*SMALL, *extra]).model


def make_batch(cfg: ModelConfig, b: int = 4, seed: int = 0, strategy: str = "structured",
               ratio: float = 0.75) -> dict[str, torch.Tensor]:
    """A batch built the way the data pipeline builds it, from cartoon faces."""
    import numpy as np

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    faces = [toy_face(cfg.img_size, rng) for _ in range(b)]
    images = torch.stack([torch.from_numpy(img).permute(2, 0, 1) for img, _ in faces])
    labels = torch.stack([torch.from_numpy(lab) for _, lab in faces])
    membership = patch_membership(labels.long(), cfg.patch_size)
    mask = sample_masks(membership, strategy, ratio, gen)
    replaced = torch.stack([choose_replaced(m, cfg.replace_ratio, gen) for m in mask])
    cents = [region_centroids(lab, len(REGIONS)) for lab in labels]
    return {"images": images, "labels": labels, "mask": mask, "replaced": replaced, "membership": membership,
            "centroids": torch.stack([c for c, _ in cents]), "present": torch.stack([p for _, p in cents])}


@pytest.mark.parametrize("preset", ["paco_fr", "mae", "no_structured_mask", "single_candidate", "no_replacement",
                                    "no_spatial", "no_incubation"])
def test_every_preset_builds_and_runs_with_the_right_terms(preset):
    cfg = small_cfg(preset)
    torch.manual_seed(0)
    model = PaCoFR(cfg)
    batch = make_batch(cfg)
    out = model(batch)
    n = (cfg.img_size // cfg.patch_size) ** 2
    assert out.pred.shape == (4, n, cfg.patch_size ** 2 * 3)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    with_codebook = cfg.codebook != "off"
    assert ("tok" in out.terms) == with_codebook and ("align" in out.terms) == with_codebook
    assert ("spatial" in out.terms) == cfg.spatial
    assert (model.code_to_embed is not None) == (cfg.replace_ratio > 0)
    # Every parameter that exists gets a gradient: nothing is built that the loss does not use.
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused, unused
    if with_codebook:
        assert model.codebook.top_k == (1 if cfg.codebook == "single" else cfg.top_k)


def test_mae_preset_is_plain_mae():
    cfg = small_cfg("mae")
    model = PaCoFR(cfg)
    assert model.codebook is None and model.token_head is None and model.relation_head is None
    out = model(make_batch(cfg))
    assert set(out.terms) == {"rec", "loss"}
    assert torch.allclose(out.loss, out.terms["rec"])


def test_codebook_off_removes_token_loss_and_replacement_needs_a_codebook():
    with pytest.raises(Exception, match="needs a codebook"):
        small_cfg(None, "model.codebook='off'")
    cfg = small_cfg(None, "model.codebook='off'", "model.replace_ratio=0")
    out = PaCoFR(cfg)(make_batch(cfg))
    assert "tok" not in out.terms and "align" not in out.terms and "spatial" in out.terms


def test_replacement_changes_encoder_input_and_reconstruction_targets():
    cfg = small_cfg(None, "model.replace_ratio=0.5")
    torch.manual_seed(0)
    model = PaCoFR(cfg)
    batch = make_batch(cfg)
    assert batch["replaced"].sum(1).tolist() == [2] * 4  # round(0.5 * 4 visible)
    assert not (batch["replaced"] & batch["mask"]).any()
    with_rep = model(batch)
    without = model({**batch, "replaced": torch.zeros_like(batch["replaced"])})
    assert not torch.allclose(with_rep.pred, without.pred)
    # The code token's gradient reaches the belief predictor through the encoder path too.
    model(batch).pred.sum().backward()
    assert model.codebook.belief[0].weight.grad.abs().sum() > 0


def test_incubation_trains_only_codebook_belief_and_code_to_pixel():
    cfg = small_cfg()
    model = PaCoFR(cfg)
    out = model(make_batch(cfg), incubation=True)
    out.loss.backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    expected = {name for name, p in model.named_parameters()
                if name.startswith(("codebook.", "code_to_pixel."))}
    assert trained == expected
    # The encoder and decoder do not even run.
    assert out.pred is None and "rec" not in out.terms and {"align", "perplexity"} <= set(out.terms)


def test_soft_targets_sum_to_one_and_hold_the_top_k():
    torch.manual_seed(0)
    cb = PatchCodebook(patch_dim=12, num_codes=16, code_dim=8, top_k=4, hidden=16)
    out = cb(torch.randn(2, 5, 12))
    dense = PatchCodebook.soft_targets(out.top_idx, out.top_weight, 16)
    assert torch.allclose(dense.sum(-1), torch.ones(2, 5))
    assert ((dense > 0).sum(-1) == 4).all()
    # Candidates are the most likely codes, most likely first, weights ordered alike.
    assert (out.top_weight[..., :-1] >= out.top_weight[..., 1:]).all()
    # The sparse cross-entropy equals the dense one.
    pred = torch.randn(2, 5, 16)
    dense_ce = -(dense * pred.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(soft_token_cross_entropy(pred, out.top_idx, out.top_weight), dense_ce, atol=1e-6)


def test_token_target_is_stop_gradient():
    """The token loss trains the decoder's prediction, never the belief predictor that made the target."""
    from paco_fr.model.paco import gather_rows

    cfg = small_cfg()
    model = PaCoFR(cfg)
    batch = make_batch(cfg)
    _, ids_masked = split_visible(batch["mask"])
    cb = model.codebook(normalise_patches(patchify(batch["images"].float() / 255, 8))[0])
    logits = torch.randn(4, ids_masked.shape[1], cfg.codebook_size, requires_grad=True)
    loss = soft_token_cross_entropy(logits, gather_rows(cb.top_idx, ids_masked), gather_rows(cb.top_weight, ids_masked))
    loss.backward()
    assert logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.codebook.parameters())
    # The token head scores codes without moving them either.
    features = torch.randn(4, ids_masked.shape[1], cfg.decoder_dim)
    head_logits = model.token_head(features, model.codebook.unit_codes())
    soft_token_cross_entropy(head_logits, gather_rows(cb.top_idx, ids_masked),
                             gather_rows(cb.top_weight, ids_masked)).backward()
    assert model.codebook.codes.grad is None
    assert model.token_head.proj[1].weight.grad.abs().sum() > 0


def test_single_candidate_passes_gradient_to_belief_predictor():
    torch.manual_seed(0)
    cb = PatchCodebook(patch_dim=12, num_codes=16, code_dim=8, top_k=1, hidden=16)
    out = cb(torch.randn(2, 5, 12))
    assert torch.allclose(out.top_weight, torch.ones_like(out.top_weight))
    out.token.pow(2).sum().backward()
    assert cb.belief[0].weight.grad.abs().sum() > 0


def test_dead_codes_are_restarted_from_recent_embeddings():
    torch.manual_seed(0)
    cb = PatchCodebook(patch_dim=12, num_codes=16, code_dim=8, top_k=2, hidden=16, usage_decay=0.5,
                       dead_threshold=0.02)
    # Collapse: every code but 0 far from any embedding, code 0 takes every patch.
    cb.initialised.fill_(True)  # keep these codes: no data-dependent initialisation
    with torch.no_grad():
        cb.belief[-1].weight.zero_()
        cb.belief[-1].bias.copy_(torch.nn.functional.normalize(torch.ones(8), dim=0))
        cb.codes.copy_(-torch.nn.functional.normalize(torch.ones(16, 8), dim=-1) + 0.01 * torch.randn(16, 8))
        cb.codes[0] = torch.ones(8)
    for _ in range(10):
        out = cb(torch.randn(4, 16, 12))
    assert float(out.perplexity) == pytest.approx(1.0)
    dead_before = int(cb.dead_codes().sum())
    assert dead_before == 15
    recent = torch.nn.functional.normalize(torch.randn(200, 8), dim=-1)
    assert cb.restart_dead_codes(recent) == 15
    assert int(cb.dead_codes().sum()) == 0 and int(cb.restarts) == 15
    # Each revived code sits on (a jittered copy of) one of the recent embeddings.
    codes = torch.nn.functional.normalize(cb.codes.detach()[1:], dim=-1)
    assert (codes @ recent.t()).max(dim=1).values.min() > 0.99
    # ... and revived codes are picked again.
    with torch.no_grad():
        cb.belief[-1].weight.normal_()
    out = cb(torch.randn(4, 64, 12))
    assert float(out.perplexity) > 2.0


def test_codes_start_on_embeddings_of_the_first_training_batch():
    torch.manual_seed(0)
    cb = PatchCodebook(patch_dim=12, num_codes=16, code_dim=8, top_k=2, hidden=16)
    x = torch.randn(2, 20, 12)
    cb.eval()
    cb(x)
    assert not bool(cb.initialised)  # evaluation never initialises
    cb.train()
    out = cb(x)
    assert bool(cb.initialised)
    z = out.z.detach().reshape(-1, 8)
    assert (cb.unit_codes() @ z.t()).max(dim=1).values.min() > 0.99
    assert float(out.perplexity) > 4  # random unit codes gave a collapsed start
    # The flag travels with the state dict, so a resumed run does not initialise again.
    fresh = PatchCodebook(patch_dim=12, num_codes=16, code_dim=8, top_k=2, hidden=16)
    fresh.load_state_dict(cb.state_dict())
    fresh(x)
    assert torch.equal(fresh.codes, cb.codes)  # a grad-updated codebook's forward leaves codes alone


def test_ema_update_moves_codes_towards_assigned_embeddings_without_gradient():
    torch.manual_seed(0)
    cb = PatchCodebook(patch_dim=12, num_codes=8, code_dim=4, top_k=2, hidden=16, update="ema", ema_decay=0.5)
    assert "codes" not in dict(cb.named_parameters())
    x = torch.randn(2, 20, 12)
    before = cb.unit_codes().clone()
    out = cb(x)
    used = out.top_idx[..., 0].unique()
    after = cb.unit_codes()
    z = out.z.detach().reshape(-1, 4)
    for k in used.tolist():
        mean_z = torch.nn.functional.normalize(z[out.top_idx[..., 0].reshape(-1) == k].mean(0), dim=0)
        assert float(after[k] @ mean_z) > float(before[k] @ mean_z)
    assert float(out.codebook_loss) == 0.0
    cb.eval()
    frozen = cb.unit_codes().clone()
    cb(x)
    assert torch.equal(frozen, cb.unit_codes())  # no update outside training


def test_patchify_roundtrip_and_grid_flip_match_image_flip():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 8)
    assert p.shape == (2, 16, 192)
    assert torch.equal(unpatchify(p, 8, (4, 4)), x)
    assert torch.equal(flip_patch_grid(p, (4, 4)).reshape(2, 16, 8, 8, 3).flip(3).reshape(2, 16, 192),
                       patchify(x.flip(-1), 8))
    # Order matches timm's patch embedding (row-major): patch 1 is the top row, second column.
    assert torch.equal(p[:, 1].reshape(2, 8, 8, 3).permute(0, 3, 1, 2), x[:, :, :8, 8:16])


def test_flip_consistency_adds_a_term_that_is_zero_for_a_symmetric_encoder_input():
    cfg = small_cfg(None, "model.flip_consistency=true")
    torch.manual_seed(0)
    model = PaCoFR(cfg)
    assert model.flip_permutation == tuple(FLIP_PERMUTATION)
    batch = make_batch(cfg)
    out = model(batch)
    assert "flip" in out.terms and float(out.terms["flip"]) > 0
    out.loss.backward()
    with pytest.raises(Exception, match="needs model.spatial"):
        small_cfg(None, "model.flip_consistency=true", "model.spatial=false")


def test_spatial_loss_uses_region_centroids_and_needs_region_data():
    cfg = small_cfg("no_replacement")
    model = PaCoFR(cfg)
    batch = make_batch(cfg)
    base = float(model(batch).terms["spatial"])
    moved = {**batch, "centroids": batch["centroids"] + 0.5}
    # A uniform shift leaves offsets between regions unchanged: the loss sees relative geometry only.
    assert float(model(moved).terms["spatial"]) == pytest.approx(base, rel=1e-5)
    flipped_geometry = {**batch, "centroids": -batch["centroids"]}
    assert float(model(flipped_geometry).terms["spatial"]) != pytest.approx(base, rel=1e-3)
    with pytest.raises(KeyError, match="membership"):
        model({k: v for k, v in batch.items() if k != "membership"})


def test_uneven_masks_are_rejected():
    cfg = small_cfg("mae")
    batch = make_batch(cfg)
    batch["mask"][0, ~batch["mask"][0]] = True
    with pytest.raises(ValueError, match="same number"):
        PaCoFR(cfg)(batch)


def test_model_config_rejects_bad_switch_combinations():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ModelConfig(img_size=30, patch_size=8)
    with pytest.raises(ValueError, match="top_k"):
        ModelConfig(top_k=0)
    assert dataclasses.replace(ModelConfig(), codebook="single").candidates == 1


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "test_vit"])
def test_encoder_matches_timm_on_full_images(name):
    """With nothing masked and nothing replaced, the MAE-style encoder is timm's forward_features:
    the matmul patch embedding (plain ViTs) and timm's own (dynamic-size ViTs) give the same result."""
    from paco_fr.model.encoder import MaskedViTEncoder

    torch.manual_seed(0)
    enc = MaskedViTEncoder(name, 32, 8).eval()
    assert enc._use_matmul_embed == (name == "vit_tiny_patch16_224")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(enc(x), enc.vit.forward_features(x), atol=1e-5)
        # The tokens that enter the blocks are timm's, whichever patch embedding ran.
        ours = enc.vit._pos_embed(enc.embed_patches(x))
        timms = enc.vit._pos_embed(enc.vit.patch_embed(x))
        assert torch.allclose(ours, timms, atol=1e-5)
