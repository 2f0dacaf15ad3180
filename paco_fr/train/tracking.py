"""What a run records: metrics.jsonl, the optional wandb run, reconstruction grids and the loss curve.

wandb and matplotlib are imported lazily and are optional: without them the run still writes
metrics.jsonl and PNGs (through Pillow, which torchvision brings along with timm).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from paco_fr.io import atomic_path, write_text_atomic
from paco_fr.model.patches import from_model_input, normalise_patches, patchify, to_model_input, unpatchify

METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.jsonl"


class MetricsLog:
    """Append-only metrics.jsonl, one JSON object per logged step, flushed line by line.

    On resume the lines past the checkpoint's step are dropped first (they belong to the part of
    the interrupted run that is being redone)."""

    def __init__(self, path: Path, *, resume_step: int | None) -> None:
        self.path = path
        if resume_step is None:
            write_text_atomic(path, "")
        elif path.exists():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and _step_of(line) is not None and _step_of(line) <= resume_step]
            write_text_atomic(path, "".join(line + "\n" for line in kept))
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(record, sort_keys=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class ProgressLog:
    """RUN_DIR/progress.jsonl: what a person (or an orchestrator relaying it) watches during a run:
    step, loss, images/s, elapsed time and ETA. Facts of the run, so kept out of the artifact."""

    def __init__(self, path: Path, *, total_steps: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.total_steps = total_steps
        self.started = time.time()
        self._first_step: int | None = None
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, step: int, record: Mapping[str, Any], images_per_s: float) -> None:
        now = time.time()
        if self._first_step is None:
            self._first_step, self.started = step, now - 1e-9
        done = max(step - self._first_step, 1)
        eta = (self.total_steps - step) * (now - self.started) / done
        line = {"step": step, "total_steps": self.total_steps, "loss": record.get("loss"),
                "rec": record.get("rec"), "lr": record.get("lr"), "images_per_s": round(images_per_s, 2),
                "elapsed_s": round(now - self.started, 1), "eta_s": round(eta, 1), "time": round(now, 3)}
        self._handle.write(json.dumps(line) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


LOSS_COLUMNS = ("loss", "rec", "tok", "align", "spatial", "flip", "tok_acc", "perplexity")


def write_loss_csv(records: list[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """The training records' losses per step as CSV (empty cells where a term was not logged)."""
    train = [r for r in records if r.get("split", "train") == "train" and "step" in r]
    columns = [c for c in LOSS_COLUMNS if any(c in r for r in train)]
    lines = [",".join(["step", *columns])]
    lines += [",".join([str(r["step"]), *(repr(float(r[c])) if c in r else "" for c in columns)]) for r in train]
    return write_text_atomic(path, "\n".join(lines) + "\n")


class WandbRun:
    """A wandb run whose files live under RUN_DIR/wandb (beside the artifact, never inside it: they hold
    run ids and times). Mode and project come from the environment, as wandb's own settings do:
    WANDB_MODE (default offline; `disabled` for none) and WANDB_PROJECT (default paco-fr). A no-op
    when disabled or when wandb is not installed."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        self.run = None
        self.run_id = run_id
        mode = os.environ.get("WANDB_MODE", "offline")
        if mode == "disabled":
            return
        try:
            import wandb
        except ImportError:
            warnings.warn("wandb is not installed: logging to metrics.jsonl only", RuntimeWarning, stacklevel=2)
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        # wandb puts its service's address in the environment of the process that started it, so a
        # training started from such a process (a notebook, a test, an orchestrator that logged to
        # wandb) joins that service; when the training is killed, its run stays open there and the
        # resumed run is refused ("run ID ... is in use"). The training owns its service instead.
        os.environ.pop("WANDB_SERVICE", None)
        self._wandb = wandb
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "paco-fr"), mode=mode, dir=str(run_dir),
                              config=dict(config), id=run_id, resume="allow" if run_id else None,
                              reinit="create_new")
        self.run_id = self.run.id
        self.dir = Path(self.run.dir).parent

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        if self.run is not None:
            self.run.log(dict(scalars), step=step)

    def log_image(self, key: str, image: np.ndarray, step: int, caption: str) -> None:
        if self.run is not None:
            self.run.log({key: self._wandb.Image(image, caption=caption)}, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


@torch.no_grad()
def reconstruction_grid(images: torch.Tensor, mask: torch.Tensor, replaced: torch.Tensor | None,
                        pred: torch.Tensor, patch_size: int, norm_pix: bool, rows: int = 8) -> np.ndarray:
    """One row per face: original | input (masked patches grey, replaced patches tinted) |
    reconstruction (visible patches kept, masked and replaced ones predicted). uint8 [H', W', 3]."""
    rows = min(rows, images.shape[0])
    images, mask, pred = images[:rows].cpu(), mask[:rows].cpu().bool(), pred[:rows].detach().float().cpu()
    replaced = replaced[:rows].cpu().bool() & ~mask if replaced is not None else torch.zeros_like(mask)
    x = to_model_input(images)
    patches = patchify(x, patch_size)                                   # [B,N,P]
    if norm_pix:
        _, mean, std = normalise_patches(patches)
        pred = pred * std + mean
    grid = (x.shape[2] // patch_size, x.shape[3] // patch_size)
    predicted = mask | replaced
    recon = torch.where(predicted.unsqueeze(-1), pred, patches)
    def flat_patch(rgb: tuple[int, int, int]) -> torch.Tensor:  # one patch of a colour, [1,1,P]
        pixel = torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, patch_size, patch_size)
        return patchify(to_model_input(pixel.contiguous()), patch_size)

    shown = torch.where(mask.unsqueeze(-1), flat_patch((128, 128, 128)), patches)
    shown = torch.where(replaced.unsqueeze(-1), 0.5 * shown + 0.5 * flat_patch((255, 200, 0)), shown)
    columns = [images, from_model_input(unpatchify(shown, patch_size, grid)),
               from_model_input(unpatchify(recon, patch_size, grid))]
    pad = 2
    b, _, h, w = images.shape
    canvas = np.full((b * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for c, column in enumerate(columns):
        arr = column.permute(0, 2, 3, 1).numpy()
        for r in range(b):
            y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y0:y0 + h, x0:x0 + w] = arr[r]
    return canvas


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def plot_loss_curve(records: list[Mapping[str, Any]], path: str | os.PathLike[str],
                    keys: tuple[str, ...] = ("loss", "rec", "tok", "align", "spatial", "flip")) -> Path | None:
    """Loss terms against step from metrics.jsonl records, as a PNG (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed: no loss_curve.png", RuntimeWarning, stacklevel=2)
        return None
    train = [r for r in records if "step" in r and r.get("split", "train") == "train"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            axes[0].plot(*zip(*points), label=key)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].set_title("training losses")
    right = axes[1].twinx()
    colours = {"tok_acc": "tab:green", "tok_chance": "tab:grey", "perplexity": "tab:purple"}
    for key, axis in (("tok_acc", axes[1]), ("tok_chance", axes[1]), ("perplexity", right)):
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            axis.plot(*zip(*points), label=key, color=colours[key])
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("token top-1 accuracy")
    right.set_ylabel("codebook perplexity")
    handles = axes[1].get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    if handles:
        axes[1].legend(handles=handles, loc="upper left")
    axes[1].set_title("codebook: token accuracy vs chance, perplexity")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
