"""Export and load the pre-trained encoder as safetensors: plain tensors, never a pickle.

``encoder.safetensors`` holds the state dict of ``timm.create_model(name, pretrained=False,
img_size=..., patch_size=..., num_classes=0)``; its header metadata names the architecture, so the
file alone is enough to rebuild the model. ``model_card.json`` beside it adds the training record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

ENCODER_FILE = "encoder.safetensors"
CARD_FILE = "model_card.json"
FORMAT = "paco-fr-encoder/1"
METADATA_KEY = "paco_fr_encoder"


class EncoderLoadError(ValueError):
    """An encoder file that is missing, not safetensors, or does not match its architecture."""


def encoder_description(vit: nn.Module, name: str, img_size: int, patch_size: int) -> dict[str, Any]:
    return {"name": name, "img_size": int(img_size), "patch_size": int(patch_size),
            "embed_dim": int(getattr(vit, "embed_dim")), "num_classes": 0, "format": FORMAT}


def save_encoder(vit: nn.Module, path: str | os.PathLike[str], *, name: str, img_size: int, patch_size: int,
                 card: Mapping[str, Any] | None = None) -> Path:
    """Write the timm ViT's weights to `path` (a .safetensors file, or a directory that gets
    encoder.safetensors) atomically; also write `card` as model_card.json beside it when given."""
    from safetensors.torch import save_file

    from paco_fr.io import atomic_path, write_json_atomic

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / ENCODER_FILE
    description = encoder_description(vit, name, img_size, patch_size)
    # Shared or non-contiguous storage is not allowed in safetensors: store plain copies.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in vit.state_dict().items()}
    # One metadata entry: safetensors writes several in hash-map order, and the file's bytes
    # should depend on the weights and the architecture only.
    metadata = {METADATA_KEY: json.dumps(description, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    if card is not None:
        write_json_atomic(path.parent / CARD_FILE, {**dict(card), "encoder": {**description,
                                                                             **dict(card.get("encoder", {}))}})
    return path


def _resolve(path_or_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / ENCODER_FILE
    if not path.exists():
        raise EncoderLoadError(f"no encoder at {path}")
    return path, path.parent / CARD_FILE


def read_encoder_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The architecture recorded in a safetensors header ({} when there is none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for a foreign file
        raise EncoderLoadError(f"{path} is not a safetensors file ({exc})") from exc
    if METADATA_KEY in raw:
        try:
            return dict(json.loads(raw[METADATA_KEY]))
        except ValueError as exc:
            raise EncoderLoadError(f"{path}: unreadable encoder metadata ({exc})") from exc
    return raw


def load_encoder(path_or_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the timm encoder and load its weights strictly. Returns (model in eval mode, card)."""
    import timm
    from safetensors.torch import load_file

    path, card_path = _resolve(path_or_dir)
    meta = read_encoder_metadata(path)
    card: dict[str, Any] = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    arch = {**{k: v for k, v in meta.items()}, **card.get("encoder", {})}
    missing = [k for k in ("name", "img_size", "patch_size") if k not in arch]
    if missing:
        raise EncoderLoadError(f"{path}: the architecture is not recorded (missing {', '.join(missing)})")
    model = timm.create_model(str(arch["name"]), pretrained=False, img_size=int(arch["img_size"]),
                              patch_size=int(arch["patch_size"]), num_classes=0)
    state = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EncoderLoadError(f"{path} does not match {arch['name']} at {arch['img_size']} px / patch "
                               f"{arch['patch_size']}: {exc}") from exc
    if not card:
        card = {"encoder": {k: meta[k] for k in meta}}
    return model.to(device).eval(), card
