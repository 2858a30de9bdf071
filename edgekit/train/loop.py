"""The training loop: seeded, mini-batch AdamW, early stopping on validation loss, best weights kept."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8
    seed: int = 0
    # Random per-window gain, log-uniform in [1/x, x]: vibration amplitude changes with load and sensor mounting,
    # the fault signature (where the energy is, how impulsive it is) does not. 1.0 turns it off.
    gain_augmentation: float = 1.0
    # White noise at a random SNR in [noise_snr_db, noise_snr_db + 20] dB added to half the windows of each batch:
    # field sensors are noisier than a test rig, and noise hides recording-specific detail the model could
    # memorize. None turns it off.
    noise_snr_db: float | None = None


@dataclass
class Curves:
    """Per-epoch history, stored in the run as ``curves.json``."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    """The same seed gives the same weights on the same machine and thread count."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _add_noise(batch: torch.Tensor, low_db: float, generator: torch.Generator) -> torch.Tensor:
    n = batch.shape[0]
    snr_db = low_db + 20 * torch.rand(n, generator=generator)
    keep = torch.rand(n, generator=generator) < 0.5
    shape = (n,) + (1,) * (batch.dim() - 1)
    power = batch.pow(2).mean(dim=tuple(range(1, batch.dim())))
    sigma = torch.sqrt(power / 10 ** (snr_db / 10)) * (~keep)
    return batch + torch.randn(batch.shape, generator=generator) * sigma.view(shape)


def predict_logits(model: nn.Module, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            outputs.append(model(torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size]))).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def _evaluate(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, loss_fn) -> tuple[float, float]:
    logits = predict_logits(model, inputs)
    loss = float(loss_fn(torch.from_numpy(logits), torch.from_numpy(labels)))
    return loss, float((logits.argmax(1) == labels).mean())


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    config: TrainConfig,
    progress=None,
) -> Curves:
    """Train ``model`` in place and leave it holding the weights of its best validation epoch.

    ``progress`` wraps the epoch range (e.g. tqdm) and receives ``set_postfix`` updates when it supports them.
    """
    x_train, y_train = train
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    loss_fn = nn.CrossEntropyLoss()
    x_all, y_all = torch.from_numpy(x_train), torch.from_numpy(y_train)
    curves = Curves()
    best_state, best_loss, stale = copy.deepcopy(model.state_dict()), np.inf, 0
    epochs = progress(range(config.epochs)) if progress else range(config.epochs)
    for epoch in epochs:
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on a batch of one
                continue
            optimizer.zero_grad()
            batch = x_all[idx]
            if config.gain_augmentation > 1.0:
                spread = float(np.log(config.gain_augmentation))
                gains = torch.exp((torch.rand(len(idx), generator=generator) * 2 - 1) * spread)
                batch = batch * gains.view(-1, *([1] * (batch.dim() - 1)))
            if config.noise_snr_db is not None:
                batch = _add_noise(batch, config.noise_snr_db, generator)
            logits = model(batch)
            loss = loss_fn(logits, y_all[idx])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_all[idx]).sum())
        scheduler.step()
        curves.train_loss.append(total_loss / len(order))
        curves.train_accuracy.append(correct / len(order))
        if val is not None:
            val_loss, val_acc = _evaluate(model, *val, loss_fn)
        else:
            val_loss, val_acc = curves.train_loss[-1], curves.train_accuracy[-1]
        curves.val_loss.append(val_loss)
        curves.val_accuracy.append(val_acc)
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(loss=f"{curves.train_loss[-1]:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        if val_loss < best_loss - 1e-4:
            best_loss, stale, curves.best_epoch = val_loss, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                curves.stopped_early = True
                break
    model.load_state_dict(best_state)
    model.eval()
    return curves
