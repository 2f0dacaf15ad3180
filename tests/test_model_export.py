"""Exported encoders load strictly into plain timm; nothing is ever unpickled."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import timm
import torch

from paco_fr.model import EncoderLoadError, ModelConfig, PaCoFR, load_encoder, save_encoder
from paco_fr.train.checkpoint import CheckpointError, load_checkpoint, remove_partial_checkpoints, save_checkpoint

torch.set_num_threads(1)


def small_model() -> PaCoFR:
    torch.manual_seed(0)
    return PaCoFR(ModelConfig(img_size=32, patch_size=8, codebook_size=16, decoder_dim=32, decoder_depth=1))


def test_exported_encoder_loads_strict_into_timm(tmp_path):
    model = small_model()
    path = save_encoder(model.encoder.vit, tmp_path, name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                        card={"preset": "paco_fr", "metrics": {"rec": 0.5}})
    assert path == tmp_path / "encoder.safetensors"
    from safetensors.torch import load_file

    fresh = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=0)
    fresh.load_state_dict(load_file(str(path)), strict=True)
    x = torch.randn(2, 3, 32, 32)
    model.encoder.vit.eval()
    assert torch.allclose(fresh.eval()(x), model.encoder.vit(x), atol=1e-6)

    loaded, card = load_encoder(tmp_path)
    assert card["preset"] == "paco_fr" and card["encoder"]["embed_dim"] == 192
    assert torch.allclose(loaded(x), fresh(x), atol=1e-6)
    # The file alone is enough: the architecture is in the safetensors header.
    os.remove(tmp_path / "model_card.json")
    alone, card = load_encoder(path)
    assert card["encoder"]["name"] == "vit_tiny_patch16_224"
    assert torch.allclose(alone(x), fresh(x), atol=1e-6)


def test_load_encoder_refuses_pickles_and_mismatches(tmp_path):
    bad = tmp_path / "encoder.safetensors"
    torch.save({"x": torch.zeros(1)}, bad)  # a pickle under a safetensors name
    with pytest.raises(EncoderLoadError, match="not a safetensors file"):
        load_encoder(bad)
    with pytest.raises(EncoderLoadError, match="no encoder"):
        load_encoder(tmp_path / "missing")
    model = small_model()
    good = save_encoder(model.encoder.vit, tmp_path / "ok", name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                        card={})
    card = json.loads((good.parent / "model_card.json").read_text())
    card["encoder"]["patch_size"] = 16  # wrong architecture for these weights
    (good.parent / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(EncoderLoadError, match="does not match"):
        load_encoder(good.parent)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_malicious_pickle_checkpoint_is_refused(tmp_path):
    _Exploit.marker = str(tmp_path / "pwned")
    evil = tmp_path / "last.pt"
    evil.write_bytes(pickle.dumps({"format": "paco-fr-checkpoint/1", "model": _Exploit()}))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()
    # torch.save's zip format with a payload inside is refused alike.
    torch.save({"format": "paco-fr-checkpoint/1", "model": _Exploit()}, evil)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_roundtrip_and_foreign_files(tmp_path):
    model = small_model()
    path = save_checkpoint(tmp_path / "ck" / "last.pt", {"step": 3, "model": model.state_dict(),
                                                         "note": {"a": [1, 2.5, None, "x"]}})
    state = load_checkpoint(path)
    assert state["step"] == 3 and state["note"] == {"a": [1, 2.5, None, "x"]}
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert not list((tmp_path / "ck").glob(".*tmp"))  # written through a temporary name
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a PaCo-FR training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "trunc.pt")


def test_partial_checkpoint_left_by_a_kill_is_swept_and_never_read(tmp_path):
    ck = tmp_path / "ck"
    path = save_checkpoint(ck / "last.pt", {"step": 6})
    # What a SIGKILL during the next torch.save leaves: a truncated temporary beside the whole file.
    partial = ck / ".last.pt.k1ll3d.tmp"
    partial.write_bytes(path.read_bytes()[:40])
    assert load_checkpoint(ck / "last.pt")["step"] == 6
    assert remove_partial_checkpoints(ck) == 1
    assert not partial.exists() and (ck / "last.pt").exists()
    assert remove_partial_checkpoints(tmp_path / "missing") == 0
