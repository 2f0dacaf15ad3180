"""Features are extracted once per (encoder weights, image set) and kept on disk.

Three synthetic benchmarks share one image pool and every DVC stage is its own process, so the
cache is on disk: `<cache_dir>/features/<encoder fingerprint>/<images hash>.npz` with the CLS,
mean-pooled and patch-token features (float32; about 105 MB for 700 images of ViT-tiny at 112/8).
The encoder fingerprint hashes its architecture and every weight tensor, so a retrained encoder
never reads stale features; the pixels baseline is cheap and never cached, the HOG baseline is
cached like an encoder (keyed by its parameters).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from paco_fr.eval.encoders import FEATURE_KINDS, EncoderHandle, extract_features, resolve_device
from paco_fr.io import atomic_path


def encoder_fingerprint(handle: EncoderHandle) -> str:
    digest = hashlib.sha256()
    enc = handle.card.get("encoder", {})
    digest.update(f"{handle.kind}|{enc.get('name')}|{enc.get('img_size')}|{enc.get('patch_size')}".encode())
    if handle.kind == "hog":  # no weights: the descriptor's parameters are its identity
        digest.update(repr(sorted(handle.card.get("hog", {}).items())).encode())
    if handle.model is not None:
        for name, tensor in sorted(handle.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def images_hash(images: np.ndarray) -> str:
    digest = hashlib.sha256(f"{images.shape}|{images.dtype.str}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()[:24]


def features_for(handle: EncoderHandle, images: np.ndarray, kinds: tuple[str, ...], *, batch_size: int,
                 cache_dir: str | os.PathLike[str] | None, desc: str = "features",
                 device: str = "cpu") -> tuple[dict[str, np.ndarray], bool]:
    """(features of the requested kinds, whether they came from the cache)."""
    if cache_dir is None or handle.kind == "pixels":
        return extract_features(handle, images, kinds, batch_size=batch_size, desc=desc, device=device), False
    device_type = resolve_device(device).type  # GPU and CPU features differ in the last bits
    path = Path(cache_dir) / "features" / encoder_fingerprint(handle) / f"{images_hash(images)}-{device_type}.npz"
    stored: dict[str, np.ndarray] = {}
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if all(k in z.files for k in kinds):
                    return {k: z[k] for k in kinds}, True
                stored = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            stored = {}  # unreadable: extract again and overwrite
    # A ViT's forward pass gives every kind at once, so all are kept; HOG computes each kind on its
    # own (the patch blocks cost three times the global descriptor), so only what is asked is added.
    todo = FEATURE_KINDS if handle.kind == "vit" else tuple(k for k in kinds if k not in stored)
    features = {**stored, **extract_features(handle, images, todo, batch_size=batch_size, desc=desc, device=device)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle_file:
            np.savez(handle_file, **features)
    return {k: features[k] for k in kinds}, False
