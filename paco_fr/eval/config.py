"""Configuration of evaluation (section `eval`). Imports nothing beyond the standard library."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=lambda: [
        "synthetic_attributes", "synthetic_expression", "synthetic_landmarks",
        "synthetic_parsing", "synthetic_verification", "lfw_subset_faces",
    ])
    # linear (frozen features; the default) | knn (cosine) | finetune (light head, a few epochs)
    protocol: Literal["linear", "knn", "finetune"] = "linear"
    # Items per split of the synthetic benchmarks; caps on the official splits of real datasets
    # when real_subsample is true (lfw_subset_faces has a fixed 100/40/60 split).
    n_train: int = 300
    n_val: int = 100
    n_test: int = 300
    real_subsample: bool = True
    seed: int = 1234
    bootstrap: int = 1000            # bootstrap resamples for the 95 % intervals
    batch_size: int = 64             # feature extraction
    device: str = "cpu"              # where features are extracted: cpu | cuda | auto (cuda when available)
    probe_threads: int = 1           # BLAS/torch threads while probes run (see eval/threads.py); 0 = library default
    cache_dir: str = "data/benchmarks"
    feature_cache: bool = True       # keep extracted features under <cache_dir>/features (see feature_cache.py)
    data_root: str | None = None     # official dataset folder for the standard adapters (--data-root)
    # Crops are aligned like the pre-training corpus: None = the encoder card's
    # config.curation.template_zoom, else params curation.template_zoom, else 0.8.
    template_zoom: float | None = None
    verification_images_per_identity: int = 4
    # Landmark benchmarks: random similarity after alignment (degrees, |log scale|, shift / crop).
    landmark_jitter: list[float] = field(default_factory=lambda: [10.0, 0.1, 0.05])
    # Hyperparameter grids searched on val.
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    ridge_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])
    knn_k: list[int] = field(default_factory=lambda: [1, 3, 5, 10, 20])
    lda_shrinkage: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.6, 0.9])
    parsing_subgrid: int = 4         # s x s class cells per patch in the parsing probe
    finetune_epochs: int = 30
    finetune_lr: float = 3e-3
    finetune_encoder_lr: float = 0.0  # 0 = encoder frozen; e.g. 1e-5 trains it gently
    finetune_batch_size: int = 64

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_val, self.n_test) < 1:
            raise ValueError("n_train, n_val and n_test must be at least 1")
        if self.bootstrap < 0:
            raise ValueError("bootstrap must be >= 0")
        if len(self.landmark_jitter) != 3 or min(self.landmark_jitter) < 0:
            raise ValueError("landmark_jitter must be three non-negative numbers [degrees, log-scale, shift]")
        if not (self.l2_grid and self.ridge_grid and self.knn_k and self.lda_shrinkage):
            raise ValueError("hyperparameter grids must not be empty")
        if any(not 0.0 <= s < 1.0 for s in self.lda_shrinkage):
            raise ValueError("lda_shrinkage values must lie in [0, 1)")
        if not (self.device in ("cpu", "auto") or self.device.startswith("cuda")):
            raise ValueError(f"device must be cpu, cuda[:N] or auto, got {self.device!r}")
        if self.parsing_subgrid < 1 or self.verification_images_per_identity < 2:
            raise ValueError("parsing_subgrid >= 1 and verification_images_per_identity >= 2 required")
