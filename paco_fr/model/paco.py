"""PaCo-FR: the encoder, decoder, codebook and heads combined, with every switch of the method.

One forward pass takes a batch of faces with their masks and region data and returns the total
loss and its terms. With ``codebook=off``, ``replace_ratio=0`` and ``spatial=false`` it is MAE.

Batch (a dict, as the training data pipeline produces it; N patches, R regions):
    images      uint8 [B,3,H,W] (or float in 0..1)
    mask        bool  [B,N]   True = masked; the same count in every row
    ids_keep    long  [B,L]   optional: visible patch indices, ascending (else derived from mask)
    ids_masked  long  [B,M]   optional: masked patch indices, ascending
    replaced    bool  [B,N]   visible patches swapped for their code token (ignored where masked)
    membership  bool  [B,N,R] patch i touches region r          (spatial consistency)
    centroids   float [B,R,2] region centroids, x and y in [-1,1] (spatial consistency)
    present     bool  [B,R]   region r has at least one pixel    (spatial consistency)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from paco_fr.model.codebook import CodebookOutput, PatchCodebook, code_counts
from paco_fr.model.config import ModelConfig
from paco_fr.model.decoder import MAEDecoder
from paco_fr.model.encoder import MaskedViTEncoder
from paco_fr.model.heads import CodeToPixelHead, RelationHead, TokenHead, region_pool, relation_matrix
from paco_fr.model.losses import (centroid_offset_loss, masked_patch_mse, relation_consistency_loss,
                                  soft_token_cross_entropy)
from paco_fr.model.patches import (IMAGENET_MEAN, IMAGENET_STD, flip_patch_grid, normalise_patches, patchify,
                                   to_model_input)


@dataclass
class ModelOutput:
    loss: torch.Tensor                         # the scalar to backpropagate
    terms: dict[str, torch.Tensor]             # detached scalars for logging
    pred: torch.Tensor | None                  # [B,N,P] decoder's pixel prediction (None in incubation)
    embeddings: torch.Tensor | None = None     # [B,N,d_c] detached patch embeddings, for code restarts
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def split_visible(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mask [B,N] bool with the same count per row -> (ids_keep [B,L], ids_masked [B,M]), ascending."""
    n_masked = mask.sum(dim=1)
    m = int(n_masked[0])
    if not bool((n_masked == m).all()):
        raise ValueError("every row of the mask must mask the same number of patches")
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # visible first, each part ascending
    return order[:, : mask.shape[1] - m], order[:, mask.shape[1] - m:]


def gather_rows(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [B,N,...], ids [B,L] -> [B,L,...] with one index op."""
    index = ids.reshape(*ids.shape, *([1] * (x.dim() - 2))).expand(*ids.shape, *x.shape[2:])
    return x.gather(1, index)


class PaCoFR(nn.Module):
    def __init__(self, cfg: ModelConfig, flip_permutation: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = MaskedViTEncoder(cfg.encoder, cfg.img_size, cfg.patch_size)
        enc_dim = self.encoder.embed_dim
        self.grid = self.encoder.grid
        self.patch_dim = cfg.patch_size * cfg.patch_size * 3
        self.decoder = MAEDecoder(enc_dim, cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads, self.grid,
                                  self.encoder.num_prefix_tokens)
        self.pixel_head = nn.Linear(cfg.decoder_dim, self.patch_dim)
        self.codebook: PatchCodebook | None = None
        self.code_to_pixel: CodeToPixelHead | None = None
        self.token_head: TokenHead | None = None
        self.code_to_embed: nn.Linear | None = None
        self.relation_head: RelationHead | None = None
        if cfg.codebook != "off":
            self.codebook = PatchCodebook(
                self.patch_dim, cfg.codebook_size, cfg.code_dim, cfg.candidates, hidden=cfg.belief_hidden,
                temperature=cfg.code_temperature, update=cfg.codebook_update, ema_decay=cfg.ema_decay,
                usage_decay=cfg.usage_decay, dead_threshold=cfg.dead_code_threshold)
            self.code_to_pixel = CodeToPixelHead(cfg.code_dim, self.patch_dim, hidden=cfg.belief_hidden)
            self.token_head = TokenHead(cfg.decoder_dim, cfg.code_dim, cfg.code_temperature)
            if cfg.replace_ratio > 0:
                self.code_to_embed = nn.Linear(cfg.code_dim, enc_dim)
        if cfg.spatial:
            self.relation_head = RelationHead(enc_dim, cfg.relation_dim)
        # Constants live on the model's device (a per-step host-to-device copy would sync a GPU).
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.flip_permutation: tuple[int, ...] | None = None
        if cfg.flip_consistency:
            if flip_permutation is None:
                from paco_fr.masks import FLIP_PERMUTATION

                flip_permutation = tuple(FLIP_PERMUTATION)
            self.flip_permutation = tuple(flip_permutation)
            self.register_buffer("flip_index", torch.tensor(self.flip_permutation), persistent=False)
        self._init_new_layers()

    def _init_new_layers(self) -> None:
        # timm initialises the encoder; the layers added here get MAE's xavier/zero init.
        for module in [self.decoder, self.pixel_head, self.code_to_pixel, self.token_head, self.code_to_embed,
                       self.relation_head, self.codebook.belief if self.codebook is not None else None]:
            if module is None:
                continue
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, batch: Mapping[str, torch.Tensor], *, incubation: bool = False) -> ModelOutput:
        cfg = self.cfg
        images = to_model_input(batch["images"], self.pixel_mean, self.pixel_std)  # [B,3,H,W]
        mask = batch["mask"].bool()                                # [B,N]
        b = images.shape[0]
        if mask.shape != (b, self.num_patches):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected ({b}, {self.num_patches})")
        patches = patchify(images, cfg.patch_size)                 # [B,N,P]
        normed, _, _ = normalise_patches(patches)
        target = normed if cfg.norm_pix_loss else patches
        if "ids_keep" in batch and "ids_masked" in batch:
            # Precomputed by the data pipeline on the CPU: no device sync to size them.
            ids_keep, ids_masked = batch["ids_keep"], batch["ids_masked"]
        else:
            ids_keep, ids_masked = split_visible(mask)
        terms: dict[str, torch.Tensor] = {}
        zero = images.new_zeros(())

        # Codebook path: trains in incubation and afterwards.
        cb: CodebookOutput | None = None
        align_total = zero
        if self.codebook is not None and self.code_to_pixel is not None:
            # What the codes see and reconstruct: per-patch standardised pixels (structure only) or
            # the normalised pixels themselves (colour and brightness too).
            code_pixels = normed if cfg.code_pixels == "norm_pix" else patches
            cb = self.codebook(code_pixels)
            from_code = self.code_to_pixel(cb.token)               # [B,N,P]
            align_pix = masked_patch_mse(from_code, code_pixels, torch.ones_like(mask))
            align_total = (align_pix + cfg.commit_weight * cb.commit + cb.codebook_loss
                           + cfg.usage_weight * cb.usage_gap)
            terms.update(align=align_pix.detach(), commit=cb.commit.detach(), codebook=cb.codebook_loss.detach(),
                         usage_gap=cb.usage_gap.detach(), perplexity=cb.perplexity.detach())

        embeddings = cb.z.detach() if cb is not None else None
        if incubation:
            # Only the codebook path trains. The encoder and decoder would get no gradient, so they
            # do not run at all: an incubation step costs a small fraction of a full one.
            loss = cfg.loss_weights.align * align_total
            terms["loss"] = loss.detach()
            return ModelOutput(loss=loss, terms=terms, pred=None, embeddings=embeddings)

        replaced = None
        replace_tokens = None
        if self.code_to_embed is not None and cb is not None and "replaced" in batch:
            replaced = batch["replaced"].bool() & ~mask
            replace_tokens = self.code_to_embed(cb.token)          # [B,N,D]

        latent = self.encoder(images, ids_keep, replace_tokens, replaced)   # [B,prefix+L,D]
        features = self.decoder(latent, ids_keep)                           # [B,N,d]
        pred = self.pixel_head(features)                                    # [B,N,P]
        rec_weight = mask if replaced is None else mask | replaced
        rec = masked_patch_mse(pred, target, rec_weight)
        terms["rec"] = rec.detach()
        main = rec
        if cb is not None and self.token_head is not None:
            tok_logits = self.token_head(gather_rows(features, ids_masked), self.codebook.unit_codes())  # [B,M,K]
            tgt_idx = gather_rows(cb.top_idx, ids_masked)                   # [B,M,k]
            tgt_w = gather_rows(cb.top_weight, ids_masked)
            tok = soft_token_cross_entropy(tok_logits, tgt_idx, tgt_w)
            main = main + cfg.loss_weights.tok * tok
            terms.update(tok=tok.detach(), **self._token_accuracy(tok_logits, tgt_idx))
        if self.relation_head is not None:
            spatial, flip = self._spatial_terms(batch, images, latent, mask, ids_keep)
            terms["spatial"] = spatial.detach()
            if flip is not None:
                terms["flip"] = flip.detach()
                spatial = spatial + flip
            main = main + cfg.loss_weights.spatial * spatial

        loss = main + cfg.loss_weights.align * align_total
        terms["loss"] = loss.detach()
        return ModelOutput(loss=loss, terms=terms, pred=pred, embeddings=embeddings)

    @torch.no_grad()
    def _token_accuracy(self, logits: torch.Tensor, tgt_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Top-1 accuracy of the token prediction against the belief's top candidate, and the accuracy
        of always guessing this batch's most frequent top candidate (the chance level to beat)."""
        top1 = tgt_idx[..., 0]
        acc = (logits.argmax(dim=-1) == top1).float().mean()
        counts = code_counts(top1, logits.shape[-1])
        chance = counts.max().float() / counts.sum().clamp_min(1)
        in_candidates = (logits.argmax(dim=-1, keepdim=True) == tgt_idx).any(dim=-1).float().mean()
        return {"tok_acc": acc, "tok_chance": chance, "tok_hit_k": in_candidates}

    def _spatial_terms(self, batch: Mapping[str, torch.Tensor], images: torch.Tensor, latent: torch.Tensor,
                       mask: torch.Tensor, ids_keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert self.relation_head is not None
        for key in ("membership", "centroids", "present"):
            if key not in batch:
                raise KeyError(f"spatial consistency needs batch[{key!r}] (region data from the region maps)")
        membership = batch["membership"].bool()                    # [B,N,R]
        present = batch["present"].bool()                          # [B,R]
        p = self.encoder.num_prefix_tokens
        pooled, count = region_pool(latent[:, p:], gather_rows(membership, ids_keep))  # [B,R,D], [B,R]
        valid = (count > 0) & present
        spatial = centroid_offset_loss(self.relation_head(pooled), batch["centroids"], valid)
        if self.flip_permutation is None:
            return spatial, None
        perm = self.flip_index
        mask_f = flip_patch_grid(mask, self.grid)
        ids_keep_f, _ = split_visible(mask_f)
        membership_f = flip_patch_grid(membership, self.grid)[..., perm]
        latent_f = self.encoder(images.flip(-1), ids_keep_f)
        pooled_f, _ = region_pool(latent_f[:, p:], gather_rows(membership_f, ids_keep_f))
        # Region r of the flipped face is region perm[r] of the original: reorder to compare.
        relation_f = relation_matrix(pooled_f)[:, perm][:, :, perm]
        flip = relation_consistency_loss(relation_matrix(pooled), relation_f, valid)
        return spatial, flip
