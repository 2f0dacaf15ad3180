"""The ``finetune`` protocol: a light head trained for a few epochs with AdamW.

The encoder is frozen (``eval.finetune_encoder_lr = 0``: the head trains on features extracted
once) or trained with that small learning rate (every batch goes through the encoder). After
each epoch the head is scored on val; the epoch with the best val metric is kept and predicts
test (early stopping on val, no refit).

Heads (each starts with a LayerNorm, which plays the role of the linear protocol's
standardisation):

- attributes / expression / classification: linear on [CLS, mean-pooled] (2D); cross-entropy, or
  one binary cross-entropy per attribute.
- landmarks: soft-argmax over patches. Per landmark a linear score on each patch token, a softmax
  over the patches, and the expected position of (patch centre + a linear per-token offset); L1
  loss on coordinates as fractions of the crop.
- parsing: per-patch linear to s x s sub-cell class scores, bilinearly upsampled to pixels,
  pixel cross-entropy.
- verification: linear embedding (128-d) of [CLS, mean-pooled] trained as a cosine classifier
  over the train identities (normalised softmax, scale 16); pairs are scored by cosine
  similarity of the embeddings.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from paco_fr.eval import metrics as M
from paco_fr.eval.data import TEST, TRAIN, VAL, BenchmarkData
from paco_fr.eval.dense import maps_to_labels, subgrid_for
from paco_fr.eval.metrics import parsing_confusion
from paco_fr.eval.protocol_types import ProtocolOutput, ProtocolSettings
from paco_fr.model.patches import to_model_input

EMBED_DIM = 128
COSINE_SCALE = 16.0
WEIGHT_DECAY = 0.05


class GlobalHead(nn.Module):
    def __init__(self, dim: int, n_out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(2 * dim)
        self.fc = nn.Linear(2 * dim, n_out)

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(self.norm(torch.cat([f["cls"], f["mean"]], dim=1)))


class CosineEmbeddingHead(nn.Module):
    def __init__(self, dim: int, n_ids: int) -> None:
        super().__init__()
        self.embed = GlobalHead(dim, EMBED_DIM)
        self.classes = nn.Parameter(torch.randn(n_ids, EMBED_DIM) * 0.02)

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.embed(f), dim=1)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return COSINE_SCALE * emb @ F.normalize(self.classes, dim=1).T


class SoftArgmaxHead(nn.Module):
    def __init__(self, dim: int, n_points: int, grid: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, n_points)
        self.offset = nn.Linear(dim, 2 * n_points)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        centres = torch.stack([xs.flatten(), ys.flatten()], dim=1).float().add(0.5).div(grid)  # [N,2] (x, y)
        self.register_buffer("centres", centres)
        self.n_points = n_points

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.norm(f["patch"])                                   # [B,N,D]
        weights = self.score(tokens).softmax(dim=1)                      # [B,N,K]
        offsets = self.offset(tokens).view(*tokens.shape[:2], self.n_points, 2)  # [B,N,K,2]
        pos = self.centres[None, :, None, :] + offsets                   # [B,N,K,2]
        return (weights.unsqueeze(-1) * pos).sum(dim=1)                  # [B,K,2] fractions of the crop


class PatchClassifierHead(nn.Module):
    def __init__(self, dim: int, n_classes: int, grid: int, sub: int, size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, sub * sub * n_classes)
        self.grid, self.sub, self.n_classes, self.size = grid, sub, n_classes, size

    def maps(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        b = f["patch"].shape[0]
        g, s, c = self.grid, self.sub, self.n_classes
        x = self.fc(self.norm(f["patch"])).view(b, g, g, s, s, c)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, g * s, g * s)  # [B,C,g*s,g*s] sub-cell logits

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.interpolate(self.maps(f), size=(self.size, self.size), mode="bilinear", align_corners=False)  # [B,C,S,S]


class FeatureSource:
    """Frozen: slices of the features extracted once. Trainable: the encoder run on the images."""

    def __init__(self, features: dict[str, np.ndarray], images: np.ndarray, encoder: nn.Module | None) -> None:
        self.features = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in features.items()}
        self.images = images
        self.encoder = encoder
        self.prefix = int(getattr(encoder, "num_prefix_tokens", 1)) if encoder is not None else 0

    def __call__(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        if self.encoder is None:
            return {k: v[torch.as_tensor(idx)] for k, v in self.features.items()}
        batch = torch.from_numpy(np.ascontiguousarray(self.images[idx])).permute(0, 3, 1, 2)
        tokens = self.encoder.forward_features(to_model_input(batch))
        patches = tokens[:, self.prefix:]
        return {"cls": tokens[:, 0] if self.prefix else patches.mean(1), "mean": patches.mean(1), "patch": patches}


def _batches(idx: np.ndarray, size: int) -> list[np.ndarray]:
    return [idx[i:i + size] for i in range(0, len(idx), size)]


def run_finetune(data: BenchmarkData, features: dict[str, np.ndarray], s: ProtocolSettings, *,
                 encoder: nn.Module | None, patch_size: int) -> ProtocolOutput:
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    train_encoder = encoder is not None and s.finetune_encoder_lr > 0
    enc = copy.deepcopy(encoder) if train_encoder else None
    source = FeatureSource(features, data.images, enc)
    dim = next(iter(features.values())).shape[-1]
    tr, va, te = data.indices(TRAIN), data.indices(VAL), data.indices(TEST)
    task = data.task
    head, loss_fn, predict, val_metric, selection = _task_parts(data, dim, patch_size, s)

    params = [{"params": head.parameters(), "lr": s.finetune_lr}]
    if enc is not None:
        params.append({"params": enc.parameters(), "lr": s.finetune_encoder_lr})
    opt = torch.optim.AdamW(params, weight_decay=WEIGHT_DECAY)

    def infer(idx: np.ndarray) -> list[torch.Tensor]:
        head.eval()
        if enc is not None:
            enc.eval()
        with torch.inference_mode():
            return [predict(head, source(b)) for b in _batches(idx, s.finetune_batch_size)]

    best_state, best_score, best_epoch, history = None, -np.inf, -1, []
    for epoch in tqdm(range(s.finetune_epochs), desc=f"finetune {task}", unit="epoch", leave=False):
        head.train()
        if enc is not None:
            enc.train()
        for b in _batches(rng.permutation(tr), s.finetune_batch_size):
            opt.zero_grad()
            loss = loss_fn(head, source(b), b)
            loss.backward()
            opt.step()
        score = val_metric(infer(va), va)
        history.append({"epoch": epoch + 1, "val_score": float(score)})
        if np.isfinite(score) and score > best_score:
            best_score, best_epoch = score, epoch + 1
            best_state = (copy.deepcopy(head.state_dict()), copy.deepcopy(enc.state_dict()) if enc is not None else None)
    if best_state is None:
        raise RuntimeError("fine-tuning never produced a finite validation score")
    head.load_state_dict(best_state[0])
    if enc is not None and best_state[1] is not None:
        enc.load_state_dict(best_state[1])
    outputs = infer(te)
    predictions = _collect(task, data, outputs, te)
    protocol = {"name": "finetune", "estimator": type(head).__name__, "selection_metric": selection,
                "chosen": {"epoch": best_epoch, "epochs": s.finetune_epochs, "lr": s.finetune_lr,
                           "encoder_lr": s.finetune_encoder_lr if train_encoder else 0.0,
                           "encoder": "trained" if train_encoder else "frozen", "weight_decay": WEIGHT_DECAY,
                           "batch_size": s.finetune_batch_size},
                "val_scores": history, "refit_on": "none (best val epoch kept)"}
    return ProtocolOutput(protocol=protocol, test_index=te, predictions=predictions)


def _task_parts(data: BenchmarkData, dim: int, patch_size: int, s: ProtocolSettings):
    """(head, loss(head, feats, idx), predict(head, feats) -> tensor, val_metric(outputs, idx), name)."""
    task = data.task
    if task in ("attributes", "expression", "classification"):
        multilabel = task == "attributes"
        if multilabel:
            y = torch.from_numpy(data.targets["attributes"].astype(np.float32))
            head = GlobalHead(dim, y.shape[1])
            loss = lambda h, f, idx: F.binary_cross_entropy_with_logits(h(f), y[idx])  # noqa: E731
            metric = lambda outs, idx: M.mean_attribute_accuracy(  # noqa: E731
                data.targets["attributes"][idx], torch.cat(outs).numpy() > 0)
            return head, loss, lambda h, f: h(f), metric, "mean attribute accuracy"
        labels = torch.from_numpy(data.targets["label"])
        n_classes = len(data.meta.get("class_names", [])) or int(labels.max()) + 1
        head = GlobalHead(dim, n_classes)
        loss = lambda h, f, idx: F.cross_entropy(h(f), labels[idx])  # noqa: E731
        metric = lambda outs, idx: M.accuracy(data.targets["label"][idx], torch.cat(outs).argmax(1).numpy())  # noqa: E731
        return head, loss, lambda h, f: h(f), metric, "accuracy"
    if task == "landmarks":
        lm = data.targets["landmarks"]
        size = float(data.crop_size)
        y = torch.from_numpy(lm / size)
        grid = data.crop_size // patch_size
        head = SoftArgmaxHead(dim, lm.shape[1], grid)
        norm = tuple(data.meta["norm_indices"])
        loss = lambda h, f, idx: (h(f) - y[idx]).abs().mean()  # noqa: E731
        metric = lambda outs, idx: -float(M.nme_per_image(torch.cat(outs).numpy() * size, lm[idx], norm).mean())  # noqa: E731
        return head, loss, lambda h, f: h(f), metric, "-NME (inter-ocular)"
    if task == "parsing":
        maps = data.targets["label_map"]
        labels = torch.from_numpy(maps.astype(np.int64))
        n_classes = len(data.meta["class_names"])
        sub = subgrid_for(patch_size, s.parsing_subgrid)
        head = PatchClassifierHead(dim, n_classes, data.crop_size // patch_size, sub, data.crop_size)
        ignore = tuple(data.meta.get("ignore_in_mean", [0]))
        loss = lambda h, f, idx: F.cross_entropy(h(f), labels[idx])  # noqa: E731
        predict = lambda h, f: h.maps(f)  # noqa: E731  (low-resolution logits; labels by maps_to_labels)
        metric = lambda outs, idx: M.mean_f1(  # noqa: E731
            parsing_confusion(maps_to_labels(torch.cat(outs).numpy(), data.crop_size), maps[idx], n_classes).sum(0),
            exclude=ignore)
        return head, loss, predict, metric, "mean F1 (background excluded)"
    if task == "verification":
        identity = data.targets["identity"]
        tr = data.indices(TRAIN)
        ids, inverse = np.unique(identity[tr], return_inverse=True)
        id_index = np.full(len(identity), -1, dtype=np.int64)
        id_index[tr] = inverse
        targets = torch.from_numpy(id_index)
        head = CosineEmbeddingHead(dim, len(ids))
        loss = lambda h, f, idx: F.cross_entropy(h.logits(h(f)), targets[idx])  # noqa: E731
        pairs, same, pair_split = data.targets["pairs"], data.targets["pair_same"], data.targets["pair_split"]

        def metric(outs: list[torch.Tensor], idx: np.ndarray) -> float:
            return M.roc_auc(_pair_scores(outs, idx, pairs[pair_split == VAL]), same[pair_split == VAL])

        return head, loss, lambda h, f: h(f), metric, "ROC AUC"
    raise ValueError(f"no fine-tune head for task {task!r}")


def _pair_scores(outs: list[torch.Tensor], idx: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    emb = torch.cat(outs).numpy()
    position = {int(i): k for k, i in enumerate(idx)}
    a = emb[[position[int(p)] for p in pairs[:, 0]]]
    b = emb[[position[int(p)] for p in pairs[:, 1]]]
    return np.einsum("pd,pd->p", a, b).astype(np.float64)


def _collect(task: str, data: BenchmarkData, outs: list[torch.Tensor], te: np.ndarray) -> dict[str, np.ndarray]:
    out = torch.cat(outs).numpy()
    if task == "attributes":
        return {"attributes": out > 0}
    if task in ("expression", "classification"):
        return {"label": out.argmax(1), "scores": out}
    if task == "landmarks":
        return {"landmarks": (out * data.crop_size).astype(np.float32)}
    if task == "parsing":
        preds = {"label_map": maps_to_labels(out, data.crop_size)}
        if "orig_label_flat" in data.targets:  # scored on the original image: scoring warps the maps back
            preds["score_maps"] = out.astype(np.float32)
        return preds
    pairs, same, pair_split = data.targets["pairs"], data.targets["pair_same"], data.targets["pair_split"]
    test_pairs = pairs[pair_split == TEST]
    return {"pair_scores": _pair_scores(outs, te, test_pairs), "pair_same": same[pair_split == TEST]}
