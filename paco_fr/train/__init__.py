"""PaCo-FR pre-training: streaming data, the training loop, checkpoints, DDP and logging.

Imports torch, timm, numpy, safetensors, tqdm and pyyaml only at module level; pyarrow (manifest),
Pillow (PNG), wandb and matplotlib are imported where they are used.
"""
