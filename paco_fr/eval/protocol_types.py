"""What every probing protocol takes and returns (shared by paco_fr.eval.protocols and
paco_fr.eval.finetune, so that neither imports the other's internals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ProtocolSettings:
    """The parts of EvalConfig that protocols read (kept separate so tests can build one)."""

    protocol: str = "linear"
    l2_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    ridge_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    knn_k: tuple[int, ...] = (1, 3, 5, 10, 20)
    lda_shrinkage: tuple[float, ...] = (0.1, 0.3, 0.6, 0.9)
    parsing_subgrid: int = 4
    finetune_epochs: int = 30
    finetune_lr: float = 3e-3
    finetune_encoder_lr: float = 0.0
    finetune_batch_size: int = 64
    seed: int = 0


@dataclass
class ProtocolOutput:
    protocol: dict[str, Any]                      # name, feature, chosen values, val scores
    test_index: np.ndarray                        # image indices of the test split
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
