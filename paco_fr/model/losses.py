"""The loss terms of PaCo-FR. Each is a mean over a per-sample quantity whose count is the same for
every sample (patches masked, patches replaced) or is normalised per sample first, so that the mean
over a batch split across DDP ranks equals the mean over the whole batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_patch_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """pred, target [B,N,P]; weight [B,N] bool (which patches count) -> mean squared error per pixel."""
    per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)  # [B,N]
    w = weight.to(per_patch.dtype)
    return (per_patch * w).sum() / w.sum().clamp_min(1.0)


def soft_token_cross_entropy(logits: torch.Tensor, top_idx: torch.Tensor, top_weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a multi-candidate soft target without building the dense [...,K] target.

    logits [...,K]; top_idx, top_weight [...,k] (weights sum to 1, no gradient)."""
    log_prob = F.log_softmax(logits.float(), dim=-1)
    return -(log_prob.gather(-1, top_idx) * top_weight.detach()).sum(dim=-1).mean()


def pairwise_valid(valid: torch.Tensor) -> torch.Tensor:
    """valid [B,R] -> [B,R,R]: both regions valid and i != j."""
    r = valid.shape[1]
    off_diag = ~torch.eye(r, dtype=torch.bool, device=valid.device)
    return valid.unsqueeze(2) & valid.unsqueeze(1) & off_diag


def per_sample_pair_mean(err: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """err [B,R,R], pairs [B,R,R] bool -> mean over samples of each sample's mean over its valid pairs
    (a sample without a valid pair contributes 0)."""
    w = pairs.to(err.dtype)
    per_sample = (err * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2)).clamp_min(1.0)
    return per_sample.mean()


def centroid_offset_loss(pred: torch.Tensor, centroids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """pred [B,R,R,2] (entry i,j predicts centroid_j - centroid_i), centroids [B,R,2] in [-1,1],
    valid [B,R] -> mean squared error over valid ordered pairs."""
    target = centroids.unsqueeze(1) - centroids.unsqueeze(2)  # [B,R,R,2]: c_j - c_i
    err = (pred.float() - target.float()).pow(2).sum(dim=-1)
    return per_sample_pair_mean(err, pairwise_valid(valid))


def relation_consistency_loss(relation: torch.Tensor, relation_flipped: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Two [B,R,R] relation matrices in the same region order -> mean squared difference over valid pairs."""
    err = (relation.float() - relation_flipped.float()).pow(2)
    return per_sample_pair_mean(err, pairwise_valid(valid))
