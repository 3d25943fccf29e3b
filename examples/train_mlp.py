"""A small real training job on the CPU: a NumPy MLP on a synthetic classification set (a few seconds).

Used by `make demo` (measured with `airflow-carbon measure`) and, later, by the example DAG.
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


def train(x: np.ndarray, y: np.ndarray, hidden: int = 256, lr: float = 0.05, epochs: int = 8, batch: int = 256, seed: int = 0) -> dict[str, float]:
    """Train a one-hidden-layer MLP with SGD; return final loss and training accuracy."""
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
    accuracy = float(((np.maximum(x @ w1, 0) @ w2).argmax(axis=1) == y).mean())
    return {"loss": loss, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args()
    t0 = time.monotonic()
    x, y = make_dataset()
    metrics = train(x, y, hidden=args.hidden, epochs=args.epochs)
    print(f"trained {args.epochs} epochs in {time.monotonic() - t0:.1f} s: loss {metrics['loss']:.3f}, accuracy {metrics['accuracy']:.3f}")


if __name__ == "__main__":
    main()
