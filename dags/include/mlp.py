"""A small real training job: a one-hidden-layer MLP on a synthetic classification set.

NumPy on the CPU; PyTorch on a GPU when torch and a CUDA GPU are present (same model, same data).
Used by the example DAG (dags/carbon_training.py) and runnable alone: `python dags/include/mlp.py`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_dataset(n: int = 20_000, features: int = 64, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: ``n`` samples of ``features`` floats, ``classes`` labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.6, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(0, 3.0, size=(n, features))
    return x.astype(np.float32), y


def predict(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Class predictions of a trained model (``weights``: w1, w2) for ``x``."""
    return (np.maximum(x @ weights["w1"], 0) @ weights["w2"]).argmax(axis=1)


def train(x: np.ndarray, y: np.ndarray, hidden: int = 256, lr: float = 0.05, epochs: int = 8, batch: int = 256, seed: int = 0) -> dict:
    """Train a one-hidden-layer MLP with SGD; return final loss, training accuracy and the weights."""
    rng = np.random.default_rng(seed)
    classes = int(y.max()) + 1
    w1 = rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32)
    w2 = rng.normal(0, np.sqrt(2 / hidden), (hidden, classes)).astype(np.float32)
    onehot = np.eye(classes, dtype=np.float32)[y]
    loss = 0.0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            h = np.maximum(x[idx] @ w1, 0)
            logits = h @ w2
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            loss = float(-np.log(p[np.arange(len(idx)), y[idx]] + 1e-9).mean())
            g = (p - onehot[idx]) / len(idx)
            gh = (g @ w2.T) * (h > 0)
            w2 -= lr * h.T @ g
            w1 -= lr * x[idx].T @ gh
    weights = {"w1": w1, "w2": w2}
    return {"loss": loss, "accuracy": float((predict(weights, x) == y).mean()), "weights": weights}


def train_torch(
    x: np.ndarray, y: np.ndarray, hidden: int = 256, lr: float = 0.05, epochs: int = 8, batch: int = 256, seed: int = 0
) -> dict:
    """The same model and SGD loop as :func:`train`, with PyTorch on the first CUDA GPU."""
    import torch

    torch.manual_seed(seed)
    device = torch.device("cuda")
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden, bias=False), torch.nn.ReLU(), torch.nn.Linear(hidden, int(y.max()) + 1, bias=False)
    ).to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), device=device).split(batch):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        accuracy = (model(xt).argmax(dim=1) == yt).float().mean().item()
    weights = {"w1": model[0].weight.T.cpu().numpy(), "w2": model[2].weight.T.cpu().numpy()}
    return {"loss": float(loss.item()), "accuracy": accuracy, "weights": weights}


def gpu_available() -> bool:
    """True when PyTorch is installed and sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def fit(x: np.ndarray, y: np.ndarray, **params: float) -> dict:
    """Train on the GPU with PyTorch when one is available, else on the CPU with NumPy."""
    if gpu_available():
        return {**train_torch(x, y, **params), "device": "cuda"}  # type: ignore[arg-type]
    return {**train(x, y, **params), "device": "cpu"}  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args()
    t0 = time.monotonic()
    x, y = make_dataset()
    metrics = fit(x, y, hidden=args.hidden, epochs=args.epochs)
    print(f"trained {args.epochs} epochs on {metrics['device']} in {time.monotonic() - t0:.1f} s: "
          f"loss {metrics['loss']:.3f}, accuracy {metrics['accuracy']:.3f}")


if __name__ == "__main__":
    main()
