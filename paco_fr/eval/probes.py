"""Estimators fitted on frozen features: standardisation, logistic regression (full-batch LBFGS),
ridge regression (closed form over a whole path of L2 strengths), cosine kNN, and an LDA
projection for verification. No hyperparameter is chosen here: callers (paco_fr.eval.protocols)
fit on train, score on val, pick, and refit.

All of it is deterministic for fixed inputs (closed forms; LBFGS from a zero start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# --- standardisation ----------------------------------------------------------------------------


@dataclass
class Standardizer:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        """Per-column statistics of the training rows; constant columns keep scale 1."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        return cls(mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.scale).astype(np.float32)


# --- logistic regression ------------------------------------------------------------------------


@dataclass
class LinearModel:
    weight: np.ndarray   # (D, O)
    bias: np.ndarray     # (O,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32) @ self.weight + self.bias


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, *, multilabel: bool = False,
                 n_classes: int | None = None, max_iter: int = 100,
                 init: LinearModel | None = None) -> LinearModel:
    """Minimise mean cross-entropy + l2/2 * ||W||^2 (bias unpenalised) with full-batch LBFGS.

    x: (N, D) standardised features; y: (N,) int class ids, or (N, O) {0, 1} for `multilabel`
    (independent sigmoid outputs). `init` warm-starts (see :func:`fit_logistic_path`)."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if multilabel:
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
        n_out = yt.shape[1]
    else:
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        n_out = int(n_classes if n_classes is not None else int(yt.max()) + 1)
    if init is None:
        weight = torch.zeros(xt.shape[1], n_out)
        bias = torch.zeros(n_out)
    else:
        weight = torch.as_tensor(init.weight.copy())
        bias = torch.as_tensor(init.bias.copy())
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=10,
                            tolerance_grad=1e-5, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = xt @ weight + bias
        if multilabel:
            loss = F.binary_cross_entropy_with_logits(logits, yt)
        else:
            loss = F.cross_entropy(logits, yt)
        loss = loss + 0.5 * l2 * (weight * weight).sum()
        loss.backward()
        return loss

    # Small full-batch problems: one thread avoids the pool's overhead on each of LBFGS's many
    # tiny operations.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    return LinearModel(weight.detach().numpy().copy(), bias.detach().numpy().copy())


def fit_logistic_path(x: np.ndarray, y: np.ndarray, l2s: tuple[float, ...], **kwargs) -> dict[float, LinearModel]:
    """One model per L2 strength, fitted from the strongest to the weakest, each warm-started from
    the previous solution (the weakly regularised fits converge in far fewer iterations)."""
    models: dict[float, LinearModel] = {}
    previous = None
    for l2 in sorted(l2s, reverse=True):
        previous = fit_logistic(x, y, l2, init=previous, **kwargs)
        models[l2] = previous
    return {l2: models[l2] for l2 in l2s}


# --- ridge regression ---------------------------------------------------------------------------


class RidgePath:
    """Closed-form ridge regression for a whole list of L2 strengths from one eigendecomposition.

    Centres x and y (unpenalised intercept). Uses the primal (D x D Gram) when D <= N and the dual
    (N x N kernel) otherwise, so concatenated patch tokens (N << D) stay cheap.
    Strengths are relative: lambda = alpha * trace(Gram) / rank-dimension, which makes the grid
    independent of the feature scale and dimension.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, chunk: int = 65536) -> None:
        x = np.asarray(x)
        y64 = np.asarray(y, dtype=np.float64)
        n, d = x.shape
        self.x_mean = x.mean(axis=0, dtype=np.float64)
        self.y_mean = y64.mean(axis=0)
        yc = y64 - self.y_mean
        self.dual = d > n
        if self.dual:
            self.xc = x.astype(np.float64) - self.x_mean
            gram = self.xc @ self.xc.T
            rhs = yc
        else:
            # Accumulate X'X and X'Y in chunks: parsing has ~10^5 rows and the centred float64
            # copy of all of them is not needed.
            self.xc = None
            gram = np.zeros((d, d))
            rhs = np.zeros((d, yc.shape[1]))
            for start in range(0, n, chunk):
                xb = x[start:start + chunk].astype(np.float64) - self.x_mean
                gram += xb.T @ xb
                rhs += xb.T @ yc[start:start + chunk]
        self.evals, self.evecs = np.linalg.eigh(gram)
        self.evals = np.clip(self.evals, 0.0, None)
        self.scale = float(np.trace(gram)) / gram.shape[0]
        # Projected targets, shared by every lambda.
        self.proj = self.evecs.T @ rhs

    def coefficients(self, alpha: float) -> np.ndarray:
        lam = alpha * self.scale
        inner = self.evecs @ (self.proj / (self.evals + lam)[:, None])
        return self.xc.T @ inner if self.dual else inner  # (D, O)

    def model(self, alpha: float) -> LinearModel:
        w = self.coefficients(alpha)
        b = self.y_mean - self.x_mean @ w
        return LinearModel(w.astype(np.float32), b.astype(np.float32))


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> LinearModel:
    return RidgePath(x, y).model(alpha)


# --- cosine kNN ---------------------------------------------------------------------------------


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_vote(train_x: np.ndarray, train_y: np.ndarray, query_x: np.ndarray, k: int,
             temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
    """Similarity-weighted average of the k nearest (cosine) training targets, weights
    exp(sim / temperature) as in DINO's kNN. train_y: (N, O) float (one-hot for classes, 0/1 for
    attributes, coordinates for landmarks). Returns (Q, O)."""
    tx, qx = l2_normalise(train_x), l2_normalise(query_x)
    ty = np.asarray(train_y, dtype=np.float64)
    k = min(k, len(tx))
    out = np.empty((len(qx), ty.shape[1]))
    for start in range(0, len(qx), chunk):
        sim = qx[start:start + chunk] @ tx.T  # (q, N)
        nn_idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        nn_sim = np.take_along_axis(sim, nn_idx, axis=1).astype(np.float64)
        w = np.exp((nn_sim - nn_sim.max(axis=1, keepdims=True)) / temperature)
        w /= w.sum(axis=1, keepdims=True)
        out[start:start + chunk] = np.einsum("qk,qko->qo", w, ty[nn_idx])
    return out


# --- LDA projection (verification) --------------------------------------------------------------


@dataclass
class Projection:
    mean: np.ndarray     # (D,)
    matrix: np.ndarray   # (D, M)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.matrix


def fit_lda(x: np.ndarray, identity: np.ndarray, shrinkage: float, n_components: int | None = None) -> Projection:
    """Fisher LDA with a shrunk within-class scatter, (1 - s) Sw + s * tr(Sw)/D * I; the projection
    whitens the within-class scatter, so cosine similarity after it is a Mahalanobis-style score."""
    return fit_lda_path(x, identity, (shrinkage,), n_components)[shrinkage]


def fit_lda_path(x: np.ndarray, identity: np.ndarray, shrinkages: tuple[float, ...],
                 n_components: int | None = None) -> dict[float, Projection]:
    """:func:`fit_lda` for several shrinkages at the cost of about one: shrinking towards a multiple
    of the identity keeps the eigenvectors of Sw, so Sw is decomposed once; and the between-class
    scatter has rank < n_identities, so its whitened form is decomposed by an SVD of the
    (n_identities, D) class-mean matrix rather than an eigh of a (D, D) one.

    With more dimensions than samples (grid features, HOG) the problem is solved in the span of the
    centred samples (rank <= N) instead of all D dimensions: Sw and Sb are zero outside that span,
    where the shrunk Sw is the constant s * tr(Sw) / D, so the whitened between-class directions,
    and hence the projection, lie inside it. Exact, and an (N, N) eigh instead of a (D, D) one."""
    x = np.asarray(x, dtype=np.float64)
    ids, inverse = np.unique(identity, return_inverse=True)
    if len(ids) < 2:
        raise ValueError("LDA needs at least two identities")
    n, d = x.shape
    mean = x.mean(axis=0)
    basis = None
    if d > n:
        _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)  # rows of vt span the centred samples
        basis = vt[sv > sv[0] * 1e-10].T                          # (D, r)
        x = (x - mean) @ basis                                    # (N, r), centred
    class_means = np.zeros((len(ids), x.shape[1]))
    np.add.at(class_means, inverse, x)
    counts = np.bincount(inverse).astype(np.float64)
    class_means /= counts[:, None]
    within = x - class_means[inverse]
    sw = within.T @ within / len(x)
    between = (class_means - x.mean(axis=0)) * np.sqrt(counts / len(x))[:, None]  # Sb = between.T @ between
    sw_evals, sw_evecs = np.linalg.eigh(sw)
    isotropic = np.trace(sw) / d  # the trace is the same in the span; D is the full dimension
    max_comp = min(len(ids) - 1, d)
    n_comp = max_comp if not n_components else min(n_components, max_comp)
    out: dict[float, Projection] = {}
    for shrinkage in shrinkages:
        evals = (1 - shrinkage) * sw_evals + shrinkage * isotropic
        whiten = sw_evecs / np.sqrt(np.clip(evals, 1e-12, None))  # Sw^-1/2 (up to rotation)
        # Eigenvectors of whiten.T @ Sb @ whiten, largest first: right singular vectors.
        _, _, vt_b = np.linalg.svd(between @ whiten, full_matrices=False)
        matrix = whiten @ vt_b[:n_comp].T
        out[shrinkage] = Projection(mean, matrix if basis is None else basis @ matrix)
    return out


def cosine_pair_scores(features: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    f = l2_normalise(features)
    return np.einsum("pd,pd->p", f[pairs[:, 0]], f[pairs[:, 1]]).astype(np.float64)
