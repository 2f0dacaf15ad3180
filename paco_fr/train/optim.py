"""AdamW with MAE's parameter groups and a warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters named like these get no weight decay besides 1-d ones (norms, biases).
NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token", "mask_token", "codebook.codes")


# The parts that incubation trains: the codebook with its belief predictor, the code-to-pixel head.
CODEBOOK_PREFIXES = ("codebook.", "code_to_pixel.")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decayed weight matrices and undecayed norms, biases, tokens, position embeddings and codes
    (decay would pull codes towards the origin, where they lose their direction), each split into
    the codebook part and the rest so that the codebook's learning rate can be scaled on its own."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decayed = not (param.ndim <= 1 or any(key in name for key in NO_DECAY_NAMES))
        groups.setdefault((decayed, name.startswith(CODEBOOK_PREFIXES)), []).append(param)
    return [{"params": params, "weight_decay": weight_decay if decayed else 0.0, "codebook": codebook,
             "name": f"{'codebook' if codebook else 'model'}_{'decay' if decayed else 'no_decay'}"}
            for (decayed, codebook), params in sorted(groups.items())]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                    device: torch.device) -> torch.optim.AdamW:
    fused = device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), fused=fused)


def lr_at(step: int, *, base_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup from 0 over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float, codebook_lr: float | None = None) -> None:
    """Set the rate of every group; the codebook's groups get `codebook_lr` when given."""
    for group in optimizer.param_groups:
        group["lr"] = codebook_lr if codebook_lr is not None and group.get("codebook") else lr
