"""The patch codebook with multiple candidate tokens: one self-contained module.

A belief predictor maps a normalised pixel patch to a unit vector z; its logits over the K codes
are cosine similarities divided by a temperature. The top-k codes are the patch's candidates and
its *code token* is their mix weighted by the softmax of their logits (the belief). Codes learn by
gradient (they are a parameter) or by an exponential moving average of the z assigned to them
(they are a buffer). A running share of top-1 assignments per code tracks usage; codes whose share
falls below a threshold are restarted from recent patch embeddings. The codes start on patch
embeddings of the first training batch (data-dependent initialisation). The gap between log K and the
entropy of the batch-mean belief is returned as a usage term: minimising it spreads patches over
the codes (without it the belief predictor collapses onto a handful of codes).

Under torch.distributed the statistics are summed over ranks and restarts are broadcast from rank
0, so every rank holds the same codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass
class CodebookOutput:
    token: torch.Tensor          # [B,N,d_c] belief-weighted mix of the candidates' unit codes
    z: torch.Tensor              # [B,N,d_c] unit patch embedding from the belief predictor
    top_idx: torch.Tensor        # [B,N,k] candidate code indices, most likely first
    top_weight: torch.Tensor     # [B,N,k] belief over the candidates (sums to 1), detached
    commit: torch.Tensor         # scalar: ||z - sg(c_top1)||^2
    codebook_loss: torch.Tensor  # scalar: ||sg(z) - c_top1||^2 (0 under EMA updates)
    perplexity: torch.Tensor     # scalar: exp(entropy) of this batch's top-1 assignments (all ranks)
    code_share: torch.Tensor     # [K] this batch's top-1 assignment shares (all ranks)
    usage_gap: torch.Tensor      # scalar: log K - entropy of the batch-mean belief over all K codes (all ranks)


class PatchCodebook(nn.Module):
    def __init__(
        self,
        patch_dim: int,
        num_codes: int,
        code_dim: int,
        top_k: int,
        *,
        hidden: int = 256,
        temperature: float = 0.1,
        update: Literal["grad", "ema"] = "grad",
        ema_decay: float = 0.99,
        usage_decay: float = 0.9,
        dead_threshold: float = 1e-3,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_codes:
            raise ValueError(f"top_k must be in [1, {num_codes}], got {top_k}")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.top_k = top_k
        self.temperature = temperature
        self.update = update
        self.ema_decay = ema_decay
        self.usage_decay = usage_decay
        self.dead_threshold = dead_threshold
        self.belief = nn.Sequential(nn.Linear(patch_dim, hidden), nn.GELU(), nn.Linear(hidden, code_dim))
        init = F.normalize(torch.randn(num_codes, code_dim), dim=-1)
        if update == "grad":
            self.codes = nn.Parameter(init)
        elif update == "ema":
            self.register_buffer("codes", init.clone())
            self.register_buffer("ema_count", torch.full((num_codes,), 1.0 / num_codes))
            self.register_buffer("ema_sum", init / num_codes)
        else:
            raise ValueError(f"codebook update must be 'grad' or 'ema', got {update!r}")
        self.register_buffer("usage", torch.full((num_codes,), 1.0 / num_codes))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def unit_codes(self) -> torch.Tensor:
        return F.normalize(self.codes.float(), dim=-1)  # [K,d_c]

    def logits(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised pixel patches [...,P] -> (unit embedding z [...,d_c], logits [...,K])."""
        z = F.normalize(self.belief(patches.float()), dim=-1)
        return z, z @ self.unit_codes().t() / self.temperature

    def forward(self, patches: torch.Tensor) -> CodebookOutput:
        """patches: [B,N,P] per-patch normalised pixels."""
        # The codebook is small and its top-k and softmax are sensitive to rounding: keep it in fp32.
        with torch.autocast(device_type=patches.device.type, enabled=False):
            if self.training and not self._initialised_flag():
                self.init_from_data(patches)
            z, logits = self.logits(patches)                       # [B,N,d_c], [B,N,K]
            top_logit, top_idx = logits.topk(self.top_k, dim=-1)   # [B,N,k]
            weight = top_logit.softmax(dim=-1)                     # [B,N,k]
            codes = self.unit_codes()
            # Mixing and picking codes as products with sparse [B,N,K] weights rather than indexing
            # codes[top_idx]: the backward of that gather is an accumulating scatter into K rows,
            # which took a quarter of a ViT-B training step on an H200; a matmul costs little.
            belief = torch.zeros_like(logits).scatter(-1, top_idx, weight)   # [B,N,K], k non-zeros
            token = belief @ codes                                             # [B,N,d_c]
            if self.top_k == 1:
                # One candidate has belief 1 whatever the logits: pass the gradient straight
                # through to z (VQ-VAE) so that the belief predictor still learns from the token.
                token = token + z - z.detach()
            one_hot = torch.zeros_like(logits).scatter_(-1, top_idx[..., :1], 1.0)
            top1 = one_hot @ codes                                             # [B,N,d_c]
            commit = F.mse_loss(z, top1.detach(), reduction="none").sum(-1).mean()
            codebook_loss = (F.mse_loss(z.detach(), top1, reduction="none").sum(-1).mean()
                             if self.update == "grad" else z.new_zeros(()))
            code_share = self._assignment_share(top_idx[..., 0])
            if self.training:
                self._track(z.detach(), top_idx[..., 0], code_share)
            entropy = -(code_share * code_share.clamp_min(1e-12).log()).sum()
            usage_gap = math.log(self.num_codes) - self._marginal_entropy(logits)
        return CodebookOutput(token=token, z=z, top_idx=top_idx, top_weight=weight.detach(), commit=commit,
                              codebook_loss=codebook_loss, perplexity=entropy.exp(), code_share=code_share,
                              usage_gap=usage_gap)

    def _marginal_entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """Entropy of the belief averaged over every patch of the batch (of all ranks, with gradient)."""
        mass = logits.softmax(dim=-1).reshape(-1, self.num_codes).sum(dim=0)   # [K]
        # Patches in this batch; torch.full, not new_tensor: a host-to-GPU copy would sync every step.
        count = torch.full((), float(logits[..., 0].numel()), device=logits.device)
        if _distributed():
            # Autograd-aware sum: with DDP's gradient averaging this gives the gradient of the
            # global batch's entropy, as one process with the whole batch would.
            import torch.distributed.nn.functional as dist_fn

            mass = dist_fn.all_reduce(mass) if torch.is_grad_enabled() else _summed(mass)
            count = _summed(count)
        marginal = mass / count
        return -(marginal * marginal.clamp_min(1e-12).log()).sum()

    def _initialised_flag(self) -> bool:
        # One device sync on the first step; a Python flag afterwards.
        if not getattr(self, "_initialised_cache", False):
            self._initialised_cache = bool(self.initialised)
        return self._initialised_cache

    @torch.no_grad()
    def init_from_data(self, patches: torch.Tensor) -> None:
        """Place the codes on patch embeddings of the first training batch (of all ranks).

        Random unit codes sit far from where a fresh belief predictor's embeddings cluster, so
        nearly every patch picks the same few codes and the codebook starts collapsed."""
        z = F.normalize(self.belief(patches.float()), dim=-1)
        z = gather_batch(z).reshape(-1, self.code_dim)
        pick = torch.randperm(z.shape[0], device="cpu")[: self.num_codes].to(z.device)
        if pick.numel() < self.num_codes:  # fewer patches than codes: repeat them, jittered below
            pick = pick[torch.arange(self.num_codes, device=z.device) % pick.numel()]
        jitter = torch.randn(self.num_codes, self.code_dim, device="cpu").to(z.device)
        fresh = F.normalize(z[pick] + 0.01 * jitter, dim=-1)
        self.codes.data.copy_(fresh)
        if self.update == "ema":
            self.ema_count.fill_(1.0 / self.num_codes)
            self.ema_sum.copy_(fresh / self.num_codes)
        self.initialised.fill_(True)
        self._initialised_cache = True

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super()._load_from_state_dict(*args, **kwargs)
        self._initialised_cache = False  # re-read the loaded flag

    @torch.no_grad()
    def _assignment_share(self, top1: torch.Tensor) -> torch.Tensor:
        counts = code_counts(top1, self.num_codes)
        if _distributed():
            dist.all_reduce(counts)
        return counts / counts.sum().clamp_min(1.0)

    @torch.no_grad()
    def _track(self, z: torch.Tensor, top1: torch.Tensor, share: torch.Tensor) -> None:
        self.usage.mul_(self.usage_decay).add_(share, alpha=1.0 - self.usage_decay)
        if self.update != "ema":
            return
        flat_z = z.reshape(-1, self.code_dim)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, top1.reshape(-1), flat_z)  # [K,d_c]
        counts = code_counts(top1, self.num_codes)
        if _distributed():
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        total = counts.sum().clamp_min(1.0)
        # Shares, not raw counts, so the decay means the same at any batch size.
        self.ema_count.mul_(self.ema_decay).add_(counts / total, alpha=1 - self.ema_decay)
        self.ema_sum.mul_(self.ema_decay).add_(sums / total, alpha=1 - self.ema_decay)
        smoothed = self.ema_count + 1e-5 / self.num_codes
        self.codes.copy_(F.normalize(self.ema_sum / smoothed.unsqueeze(-1), dim=-1))

    def dead_codes(self) -> torch.Tensor:
        """Bool [K]: codes whose running share of top-1 assignments is below the threshold."""
        return self.usage < self.dead_threshold

    @torch.no_grad()
    def restart_dead_codes(self, recent: torch.Tensor, generator: torch.Generator | None = None) -> int:
        """Move each dead code onto a randomly chosen recent patch embedding (recent: [B,N,d_c] or
        [M,d_c]; under DDP the embeddings of all ranks, gathered in global batch order).

        Returns how many codes were restarted. The restarted codes get a grace share of 1/K so
        that they are not declared dead again before they had a chance to be picked."""
        dead = self.dead_codes()
        n_dead = int(dead.sum())
        recent = gather_batch(recent) if n_dead or _distributed() else recent
        if n_dead and recent.numel():
            recent = recent.reshape(-1, self.code_dim).float()
            pick = torch.randint(recent.shape[0], (n_dead,), generator=generator, device="cpu").to(recent.device)
            # A small jitter keeps two restarts onto the same embedding from staying identical.
            jitter = torch.randn(n_dead, self.code_dim, generator=generator, device="cpu").to(recent.device)
            fresh = F.normalize(recent[pick] + 0.01 * jitter, dim=-1).to(self.codes.dtype)
            self.codes.data[dead] = fresh
            self.usage[dead] = 1.0 / self.num_codes
            if self.update == "ema":
                self.ema_count[dead] = 1.0 / self.num_codes
                self.ema_sum[dead] = fresh.float() / self.num_codes
            self.restarts += n_dead
        return n_dead

    @staticmethod
    def soft_targets(top_idx: torch.Tensor, top_weight: torch.Tensor, num_codes: int) -> torch.Tensor:
        """Dense multi-candidate target distribution [...,K] (each row sums to 1)."""
        out = top_weight.new_zeros(*top_idx.shape[:-1], num_codes)
        return out.scatter_(-1, top_idx, top_weight)

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, code_dim={self.code_dim}, top_k={self.top_k}, "
                f"update={self.update}, temperature={self.temperature}")


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Under DDP, every rank's [b, ...] tensor as one [world*b, ...] tensor in the order of the
    global batch, identical on all ranks; x itself in a single process.

    Rank r holds the global batch positions r, r + world, r + 2 world, ... (the DataLoader stream
    and torch's DistributedSampler both interleave), so row i*world + r of the result is row i of
    rank r. Choices drawn from the result with the same RNG state then agree across ranks and with
    a one-process run on the whole batch."""
    if not _distributed():
        return x
    world = dist.get_world_size()
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts, dim=1).reshape(world * x.shape[0], *x.shape[1:])


def code_counts(idx: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code occurs in `idx`, as float [K]. (torch.bincount would sync a GPU.)"""
    flat = idx.reshape(-1)
    return torch.zeros(num_codes, device=idx.device).scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))


def _summed(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor
