"""Configuration of evaluation (section `eval`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=lambda: [
        "synthetic_attributes", "synthetic_expression", "synthetic_landmarks",
        "synthetic_parsing", "synthetic_verification", "lfw_subset_faces",
    ])
    protocol: str = "linear"
    n_train: int = 600
    n_val: int = 150
    n_test: int = 300
    seed: int = 1234
    bootstrap: int = 1000
    batch_size: int = 64
