"""The PaCo-FR model: a timm ViT encoder run MAE style, a patch codebook with multiple candidate
tokens, an MAE-style decoder, code-to-pixel, token-prediction and relation heads, and the losses.

Imports torch and timm only (no data stack), so a GPU worker can run it with a minimal install.
Names are resolved on first use, so that reading the configuration (`paco_fr.model.config`) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CodebookOutput": "paco_fr.model.codebook", "PatchCodebook": "paco_fr.model.codebook",
    "LossWeights": "paco_fr.model.config", "ModelConfig": "paco_fr.model.config",
    "MaskedViTEncoder": "paco_fr.model.encoder", "build_vit": "paco_fr.model.encoder",
    "EncoderLoadError": "paco_fr.model.export", "load_encoder": "paco_fr.model.export",
    "save_encoder": "paco_fr.model.export",
    "ModelOutput": "paco_fr.model.paco", "PaCoFR": "paco_fr.model.paco",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'paco_fr.model' has no attribute {name!r}")
