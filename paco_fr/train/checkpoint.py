"""Training checkpoints: the full state needed to continue a run bit for bit.

A checkpoint is ``torch.save`` of tensors and plain data only (model and optimizer state, step,
the RNG states of torch, CUDA, numpy and Python, the metric history), written to a temporary name
and renamed into place. Loading uses ``torch.load(weights_only=True)``, which refuses any pickle
that would construct other objects or call functions.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paco_fr.io import atomic_path, remove_stale_temporaries

FORMAT = "paco-fr-checkpoint/1"
LAST = "last.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unsafe to load, or from another run configuration."""


def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version), "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def remove_partial_checkpoints(ckpt_dir: str | os.PathLike[str]) -> int:
    """Delete what a run killed mid-save left beside ``last.pt``; returns how many files."""
    return remove_stale_temporaries(Path(ckpt_dir) / LAST)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; refuse anything that is not one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {path}: it is not a weights-only checkpoint "
                              f"(it would run or build arbitrary Python objects): {exc}") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a PaCo-FR training checkpoint (format {FORMAT!r} expected)")
    return state
