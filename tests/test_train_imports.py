"""paco_fr.model and paco_fr.train import on a GPU worker that has torch, timm, numpy, safetensors,
tqdm and pyyaml only: the data stack, wandb and matplotlib are imported where they are used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Import everything, build a model, then see which data-stack modules got loaded (blocking them
# outright would also trip torch's own probing of optional packages).
PROBE = """
import sys
import timm, torch  # timm itself imports wandb when it is installed: that is not ours
before = {m.split(".")[0] for m in sys.modules}
import paco_fr.model, paco_fr.model.export, paco_fr.train.loop, paco_fr.train.stage, paco_fr.train.cli
import paco_fr.train.data, paco_fr.train.tracking, paco_fr.train.toydata, paco_fr.train.checkpoint
from paco_fr.model import PaCoFR, ModelConfig
model = PaCoFR(ModelConfig(img_size=32, patch_size=8, codebook_size=16))
HEAVY = {"pandas", "pyarrow", "wandb", "matplotlib", "mediapipe", "great_expectations", "dagster", "dvc",
         "skimage", "cv2"}
print("loaded:", sorted(({m.split(".")[0] for m in sys.modules} - before) & HEAVY))
"""


def test_model_and_train_import_without_the_data_stack():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "loaded: []"
