"""PaCo-FR: patch-pixel aligned end-to-end codebook learning for facial representation pre-training.

The library knows nothing of the orchestrator: every stage is a plain function with a typed config
in and paths out, called alike by the CLI (`paco-fr`), by dvc.yaml and by Dagster.
"""

import os as _os

__version__ = "0.1.0"

# torch's OpenMP runtime (libgomp) spins waiting threads before it lets them sleep. Our processes share
# cores (a DataLoader worker beside training, two evaluations at once under `paco-fr run`, DDP ranks on
# one machine), and a spinning thread holds the core its partner needs: beside another busy process a
# 20-step pre-training took 122 s spinning, 24 s waiting passively. Passive waiting changes no result
# (same bytes) and cost nothing alone (default pre-training: same wall time, 11% less CPU). It must be
# set before torch loads; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
