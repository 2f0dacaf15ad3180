"""Which encoder is evaluated, and its features.

Specs accepted by :func:`resolve_encoder`:

- ``DIR`` (or a ``.safetensors`` file): a pre-trained encoder, ``paco_fr.model.export.load_encoder``.
- ``random``: the same architecture as params ``model:`` (name, img_size, patch_size), randomly
  initialised with a fixed seed (timm's own initialisation under ``torch.manual_seed(seed)``).
- ``random:DIR``: the architecture recorded in that encoder's model card, randomly initialised.
- ``pixels``: no network; the image itself, downsampled, as features (a sanity baseline: a task a
  linear probe solves from raw pixels says little about a representation).
- ``hog``: no network; histograms of oriented gradients (scikit-image's ``hog``, Dalal and Triggs'
  descriptor), the classical baseline a learned representation should beat.

Features (all computed in one pass, batched, under ``torch.inference_mode``):

- ``cls``: the first prefix token after the final norm, (N, D)
- ``mean``: the mean of the patch tokens, (N, D)
- ``patch``: the patch tokens, (N, h*w, D) in row-major grid order
- ``grid``: the patch tokens average-pooled onto a POOL_GRID x POOL_GRID grid and flattened,
  (N, POOL_GRID**2 * D): a global feature that keeps *where* a feature is (mouth vs eyes), which
  CLS and the mean discard; masked-image-modelling encoders put most of what they learn there
For ``pixels``: ``cls``, ``mean`` and ``grid`` are the image area-downsampled to PIXEL_GRID x
PIXEL_GRID x 3 (flattened, in [0, 1]), ``patch`` is each p x p patch's raw pixels (p*p*3 values).
For ``hog``: ``cls``, ``mean`` and ``grid`` are one HOG descriptor of the crop (9 orientations,
HOG_CELLS x HOG_CELLS cells, i.e. 8 px cells at 112 px, 2 x 2-cell blocks, L2-Hys, the colour
channel with the largest gradient: 6,084 values at 112 px); ``patch`` is, per patch, one block of
2 x 2 cells of half the patch size (36 values), so the dense tasks see the same grid as a ViT's tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from paco_fr.model.patches import to_model_input

PIXEL_GRID = 16
POOL_GRID = 4
HOG_ORIENTATIONS = 9
HOG_CELLS = 14
FEATURE_KINDS = ("cls", "mean", "patch", "grid")


@dataclass
class EncoderHandle:
    label: str
    model: torch.nn.Module | None       # None for the pixels baseline
    card: dict[str, Any]
    kind: str = "vit"                    # vit | pixels | hog
    source_dir: str | None = None        # the encoder directory when loaded from disk
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def img_size(self) -> int:
        return int(self.card["encoder"]["img_size"])

    @property
    def patch_size(self) -> int:
        return int(self.card["encoder"]["patch_size"])

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size


def _architecture(name: str, img_size: int, patch_size: int) -> dict[str, Any]:
    return {"name": name, "img_size": int(img_size), "patch_size": int(patch_size)}


def _random_vit(arch: dict[str, Any], seed: int) -> torch.nn.Module:
    import timm

    # timm initialises from torch's global generator; fork it so the caller's state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(arch["name"], pretrained=False, img_size=arch["img_size"],
                                  patch_size=arch["patch_size"], num_classes=0)
    return model.eval()


def _read_card(directory: Path) -> dict[str, Any]:
    from paco_fr.model.export import CARD_FILE, ENCODER_FILE, read_encoder_metadata

    card_path = directory / CARD_FILE
    if card_path.exists():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if "encoder" in card:
            return card
    weights = directory / ENCODER_FILE
    if weights.exists():
        return {"encoder": read_encoder_metadata(weights)}
    raise FileNotFoundError(f"{directory}: neither model_card.json nor encoder.safetensors found")


def resolve_encoder(spec: str, model_cfg: Any | None = None, *, seed: int = 0,
                    default_img_size: int = 112, default_patch_size: int = 8) -> EncoderHandle:
    """Turn an ``--encoder`` value into an :class:`EncoderHandle` (see the module docstring)."""
    if spec == "pixels":
        img = int(getattr(model_cfg, "img_size", default_img_size))
        patch = int(getattr(model_cfg, "patch_size", default_patch_size))
        card = {"encoder": {"name": "pixels", "img_size": img, "patch_size": patch,
                            "embed_dim": PIXEL_GRID * PIXEL_GRID * 3}, "preset": "pixels"}
        return EncoderHandle("pixels", None, card, kind="pixels")
    if spec == "hog":
        img = int(getattr(model_cfg, "img_size", default_img_size))
        patch = int(getattr(model_cfg, "patch_size", default_patch_size))
        card = {"encoder": {"name": "hog", "img_size": img, "patch_size": patch, "embed_dim": _hog_patch_dim(patch)},
                "preset": "hog", "hog": {"orientations": HOG_ORIENTATIONS, "cells_across": HOG_CELLS,
                                         "cells_per_block": 2, "block_norm": "L2-Hys", "library": "scikit-image"}}
        return EncoderHandle("hog", None, card, kind="hog")
    if spec == "random" or spec.startswith("random:"):
        if spec == "random":
            if model_cfg is None:
                raise ValueError("--encoder random needs the model section of params (model_cfg)")
            arch = _architecture(model_cfg.encoder, model_cfg.img_size, model_cfg.patch_size)
            based_on = "params model section"
        else:
            directory = Path(spec.split(":", 1)[1])
            enc = _read_card(directory)["encoder"]
            arch = _architecture(enc["name"], int(enc["img_size"]), int(enc["patch_size"]))
            based_on = str(directory)
        model = _random_vit(arch, seed)
        card = {"encoder": {**arch, "embed_dim": int(model.embed_dim)}, "preset": "random",
                "random_init": {"seed": seed, "architecture_from": based_on}}
        return EncoderHandle("random", model, card, kind="vit")
    from paco_fr.model.export import load_encoder

    path = Path(spec)
    model, card = load_encoder(path)
    card = dict(card)
    card.setdefault("encoder", {})
    directory = path if path.is_dir() else path.parent
    label = str(card.get("preset") or directory.name)
    return EncoderHandle(label, model, card, kind="vit", source_dir=str(directory))


@torch.inference_mode()
def extract_features(handle: EncoderHandle, images: np.ndarray, kinds: Iterable[str], *,
                     batch_size: int = 64, desc: str = "features", device: str = "cpu") -> dict[str, np.ndarray]:
    """images (N, S, S, 3) uint8 -> {kind: float32 array}; see the module docstring for shapes.
    `device`: where the encoder runs ("cpu", "cuda", or "auto" = cuda when available); the
    features always come back as CPU arrays."""
    kinds = tuple(dict.fromkeys(kinds))
    unknown = set(kinds) - set(FEATURE_KINDS)
    if unknown:
        raise ValueError(f"unknown feature kinds {sorted(unknown)} (known: {FEATURE_KINDS})")
    if images.shape[1] != handle.img_size or images.shape[2] != handle.img_size:
        raise ValueError(f"images are {images.shape[1]} px, the encoder expects {handle.img_size}")
    if handle.kind == "pixels":
        return _pixel_features(images, handle.patch_size, kinds)
    if handle.kind == "hog":
        return _hog_features(images, handle.patch_size, kinds, desc)
    model = handle.model
    assert model is not None
    model.eval()
    dev = resolve_device(device)
    original = next(model.parameters()).device
    model.to(dev)
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2)
        tokens = model.forward_features(to_model_input(batch.to(dev))).float()  # [B, prefix + h*w, D], final norm
        patches = tokens[:, prefix:]
        if "cls" in kinds:
            chunks["cls"].append((tokens[:, 0] if prefix else patches.mean(1)).cpu().numpy())
        if "mean" in kinds:
            chunks["mean"].append(patches.mean(1).cpu().numpy())
        if "patch" in kinds:
            chunks["patch"].append(patches.cpu().numpy())
        if "grid" in kinds:
            side = int(round(patches.shape[1] ** 0.5))
            grid = patches.transpose(1, 2).reshape(len(patches), -1, side, side)  # [B, D, h, w]
            pooled = torch.nn.functional.adaptive_avg_pool2d(grid, POOL_GRID)  # [B, D, g, g]
            chunks["grid"].append(pooled.permute(0, 2, 3, 1).flatten(1).cpu().numpy())
    model.to(original)
    return {k: np.concatenate(v) for k, v in chunks.items()}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available")
    return torch.device(device)


def _pixel_features(images: np.ndarray, patch: int, kinds: tuple[str, ...]) -> dict[str, np.ndarray]:
    n, s = images.shape[0], images.shape[1]
    x = images.astype(np.float32) / 255.0
    out: dict[str, np.ndarray] = {}
    if "cls" in kinds or "mean" in kinds or "grid" in kinds:
        f = s // PIXEL_GRID
        if f * PIXEL_GRID != s:
            # area-average over the largest multiple, then the grid
            x_crop = x[:, : f * PIXEL_GRID, : f * PIXEL_GRID]
        else:
            x_crop = x
        pooled = x_crop.reshape(n, PIXEL_GRID, f, PIXEL_GRID, f, 3).mean(axis=(2, 4)).reshape(n, -1)
        for k in ("cls", "mean", "grid"):
            if k in kinds:
                out[k] = pooled
    if "patch" in kinds:
        g = s // patch
        out["patch"] = (x[:, : g * patch, : g * patch].reshape(n, g, patch, g, patch, 3)
                        .transpose(0, 1, 3, 2, 4, 5).reshape(n, g * g, patch * patch * 3))
    return out


def _hog_patch_dim(patch: int) -> int:
    return HOG_ORIENTATIONS * (4 if patch % 2 == 0 else 1)


def _hog_features(images: np.ndarray, patch: int, kinds: tuple[str, ...], desc: str) -> dict[str, np.ndarray]:
    from skimage.feature import hog

    n, s = images.shape[0], images.shape[1]
    g = s // patch
    cell = max(1, s // HOG_CELLS)
    # Per patch one 2 x 2 block of half-patch cells: blocks start at every cell, so every second one
    # lines up with the patch grid. An odd patch gets one cell (and one histogram) per patch.
    patch_cell, patch_block = (patch // 2, 2) if patch % 2 == 0 else (patch, 1)
    want_global = any(k in kinds for k in ("cls", "mean", "grid"))
    glob, tokens = [], []
    for img in tqdm(images, desc=desc, unit="img", leave=False):
        if want_global:
            glob.append(hog(img, orientations=HOG_ORIENTATIONS, pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                            block_norm="L2-Hys", channel_axis=-1).astype(np.float32))
        if "patch" in kinds:
            blocks = hog(img, orientations=HOG_ORIENTATIONS, pixels_per_cell=(patch_cell, patch_cell),
                         cells_per_block=(patch_block, patch_block), block_norm="L2-Hys", channel_axis=-1,
                         feature_vector=False)  # (rows, cols, b, b, orientations)
            step = 2 if patch_block == 2 else 1
            tokens.append(blocks[::step, ::step][:g, :g].reshape(g * g, -1).astype(np.float32))
    out: dict[str, np.ndarray] = {}
    if want_global:
        stacked = np.stack(glob)
        out.update({k: stacked for k in ("cls", "mean", "grid") if k in kinds})
    if "patch" in kinds:
        out["patch"] = np.stack(tokens)
    return out
