"""PaCo-FR: patch-pixel aligned end-to-end codebook learning for facial representation pre-training.

The library knows nothing of the orchestrator: every stage is a plain function with a typed config
in and paths out, called alike by the CLI (`paco-fr`), by dvc.yaml and by Dagster.
"""

__version__ = "0.1.0"
