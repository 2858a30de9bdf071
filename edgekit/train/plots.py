"""Training plots: learning curves and confusion matrices (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(curves: dict, out: Path) -> None:
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = np.arange(1, len(curves["train_loss"]) + 1)
    ax_loss.plot(epochs, curves["train_loss"], label="train")
    ax_loss.plot(epochs, curves["val_loss"], label="validation")
    ax_loss.set_yscale("log")
    ax_loss.set_title("loss")
    ax_acc.plot(epochs, curves["train_accuracy"], label="train")
    ax_acc.plot(epochs, curves["val_accuracy"], label="validation")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.axvline(curves["best_epoch"] + 1, color="grey", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], out: Path, title: str = "") -> None:
    plt = _pyplot()
    size = 2.5 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if normalized[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="recall")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
